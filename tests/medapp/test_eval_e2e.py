"""`medapp eval` end to end with the tiny golden model: run, kill + resume, score, compare, outputs, audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from bench._eval_data import PATH_VQA_ROWS, write_path_vqa, write_slake
from medapp import paths
from medapp.cli import main
from medapp.model_holder import ModelHolder


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ModelHolder, "get", lambda self: pytest.fail("the model was loaded with nothing to answer"))


def test_run_resume_score_compare(cli_engine, v2_checkpoint: Path, tmp_path: Path, medapp_home: Path, capsys,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_path_vqa(tmp_path / "pvqa")
    out = tmp_path / "run-a"
    base = ["eval", "run", "--dataset", "path-vqa", "--data", str(data), "--model", str(v2_checkpoint),
            "--max-new-tokens", "3", "-o", str(out)]

    # a first, limited run: the first 3 questions, in batches of 2
    assert main([*base, "--limit", "3", "--batch-size", "2"]) == 0
    pred = out / "predictions.jsonl"
    first = _lines(pred)
    assert [x["question_id"] for x in first] == ["0", "1", "2"]
    assert first[0]["prompt"] == "Is there inflammation?\nAnswer the question using a single word or phrase."
    assert json.loads((out / "results.json").read_text())["scores"]["strict"]["n_questions"] == 3
    capsys.readouterr()

    # a kill mid-write leaves the third line cut; the full run repairs it and answers the rest exactly once
    raw = pred.read_bytes()
    pred.write_bytes(raw[: len(raw) - 20])
    assert main([*base, "--batch-size", "4"]) == 0
    lines = _lines(pred)
    assert [x["question_id"] for x in lines] == [str(i) for i in range(len(PATH_VQA_ROWS))]
    assert lines[:2] == first[:2]  # complete answers were kept, not redone
    run = json.loads((out / "run.json").read_text())
    assert [(s["skipped"], s["answered"]) for s in run["sessions"]] == [(0, 3), (2, 5)]
    assert "answered 5, 2 already in predictions.jsonl" in capsys.readouterr().out

    # the same questions one at a time give the same answers (batching changes speed, not answers)
    single = tmp_path / "run-b"
    assert main([*base[:-1], str(single), "--batch-size", "1"]) == 0
    assert [x["text"] for x in _lines(single / "predictions.jsonl")] == [x["text"] for x in lines]

    # outputs a reviewer reads
    results = json.loads((out / "results.json").read_text())
    assert results["provenance"]["model"]["checkpoint_sha256"] == cli_engine.info.checkpoint_sha256
    assert results["provenance"]["model"]["quant"] == "none"
    assert set(results["provenance"]["dataset"]["files_sha256"]) == {"data/test-00000-of-00002.parquet",
                                                                     "data/test-00001-of-00002.parquet"}
    assert results["prompt"]["template"].startswith("{question}")
    strict, llava = results["scores"]["strict"], results["scores"]["llava-med"]
    assert (strict["n_closed"], strict["n_open"]) == (llava["n_closed"], llava["n_open"]) == (4, 3)
    assert [p["model"] for p in results["published"]] == ["Dragonfly-Med v2"]  # the tiny checkpoint is a v2
    summary = (out / "summary.md").read_text()
    assert "| Dragonfly-Med v2 | token F1 | 67.1 |" in summary and cli_engine.info.checkpoint_sha256 in summary
    with Image.open(out / "chart_answer_type.png") as chart:
        assert chart.format == "PNG" and chart.width > 300

    # audited: one entry when answering starts and one when it stops, per run that used the model; no paths
    entries = _lines(paths.audit_path())
    assert [e["event"] for e in entries] == ["eval"] * 6
    assert [e["details"].get("n_done") for e in entries[:4]] == [None, 3, None, 5]
    assert all(e["details"]["kind"] == "path-vqa" and e["model_sha256"] == cli_engine.info.checkpoint_sha256
               for e in entries)
    assert str(tmp_path) not in paths.audit_path().read_text()

    # a finished run asked again re-reports without loading the model; a changed prompt is refused
    _no_model(monkeypatch)
    assert main([*base, "--batch-size", "4"]) == 0
    assert "answered 0, 7 already in predictions.jsonl" in capsys.readouterr().out
    assert main([*base, "--prompt-template", "Q: {question}"]) == 2
    assert "started with template=" in capsys.readouterr().err

    # compare: identical runs agree; a changed answer is listed
    assert main(["eval", "compare", str(out), str(single), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert (same["n_common"], same["disagreements"]) == (7, [])
    edited = tmp_path / "run-c"
    shutil.copytree(single, edited)
    rows = _lines(edited / "predictions.jsonl")
    rows[0]["text"] = "Yes, there is."
    (edited / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([*base[:-1], str(edited)]) == 0  # rescored from the edited answers, model not loaded
    capsys.readouterr()
    assert main(["eval", "compare", str(out), str(edited)]) == 0
    text = capsys.readouterr().out
    assert "judged differently: 1" in text and "0 [closed] truth 'yes'" in text and "'Yes, there is.' (right)" in text


def test_score_partial_twice_and_both_rules(tmp_path: Path, capsys) -> None:
    data = write_path_vqa(tmp_path / "pvqa")
    pred = tmp_path / "answers.jsonl"
    # LLaVA-Med's answer-file form; questions 0..3 only: yes (right), "granuloma" (exact), "yes" (wrong), open
    pred.write_text("".join(json.dumps({"question_id": i, "prompt": "p", "text": t, "answer_id": "x",
                                        "model_id": "llava-med"}) + "\n"
                            for i, t in enumerate(["yes", "A granuloma.", "yes", "hematoxylin"])))
    argv = ["eval", "score", "--dataset", "path-vqa", "--data", str(data), "--predictions", str(pred), "--json"]
    assert main(argv) == 0
    once = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == once  # scoring the same predictions twice gives identical numbers
    strict = json.loads(once)
    assert (strict["n_scored"], strict["n_missing"], strict["n_closed"], strict["n_open"]) == (4, 3, 2, 2)
    assert strict["closed_accuracy"] == 0.5 and strict["open_exact"] == 0.5
    assert strict["open_recall"] == pytest.approx((1 + 1 / 3) / 2)
    assert strict["by_category"]["answer_type"]["closed"]["n_closed"] == 2
    assert main([*argv, "--rule", "llava-med"]) == 0
    llava = json.loads(capsys.readouterr().out)
    assert (llava["n_closed"], llava["n_open"]) == (2, 2)  # the same split under both rules
    assert (llava["closed_counted"], llava["closed_accuracy"]) == (1, 1.0)  # the wrong "yes" left the denominator
    assert main(argv[:-1]) == 0
    assert "4 of 7 questions scored, 3 missing (no prediction)" in capsys.readouterr().out


def test_slake_run_writes_a_chart_per_category(cli_engine, v2_checkpoint: Path, tmp_path: Path,
                                               medapp_home: Path, capsys) -> None:
    data = tmp_path / "slake"
    write_slake(data)
    out = tmp_path / "out"
    assert main(["eval", "run", "--dataset", "slake", "--data", str(data), "--model", str(v2_checkpoint),
                 "--max-new-tokens", "2", "--batch-size", "3", "-o", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["charts"]) == {"answer_type", "modality", "organ", "content_type"}
    assert all((out / name).is_file() for name in results["charts"].values())
    assert set(results["scores"]["strict"]["by_category"]["modality"]) == {"CT", "MRI", "X-Ray"}
    assert results["provenance"]["dataset"]["n_images"] == 3 and results["provenance"]["dataset"]["images_sha256"]
    assert "| Dragonfly-Med v2 | accuracy | 91.6 |" in (out / "summary.md").read_text()


def test_eval_process_with_sockets_blocked(block_network_prelude: str, v2_checkpoint: Path, tmp_path: Path) -> None:
    """A fresh `medapp eval run` process (VQA-RAD official JSON): reading, model load and answers with no network."""
    import os
    import subprocess
    import sys

    from bench._eval_data import write_vqa_rad_json

    write_vqa_rad_json(tmp_path / "rad")
    out = tmp_path / "out"
    code = block_network_prelude + (
        "import sys\nfrom medapp.cli import main\n"
        f"sys.exit(main(['eval', 'run', '--dataset', 'vqa-rad', '--data', {str(tmp_path / 'rad')!r}, '--model', "
        f"{str(v2_checkpoint)!r}, '--device', 'cpu', '--max-new-tokens', '2', '--limit', '2', '-o', {str(out)!r}]))\n"
    )
    env = {**os.environ, "MEDAPP_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "network access attempted" not in proc.stderr
    assert [x["question_id"] for x in _lines(out / "predictions.jsonl")] == ["1", "2"]
    results = json.loads((out / "results.json").read_text())
    assert set(results["charts"]) == {"answer_type", "organ", "question_type"}
    assert results["published"] == []  # no published Dragonfly-Med number for VQA-RAD
