"""Reading the benchmarks from local copies in their real formats; a wrong folder is one clear line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench._eval_data import PATH_VQA_ROWS, write_hf_parquet, write_path_vqa, write_slake, write_vqa_rad_json
from medapp.cli import main
from medapp.errors import UserError
from medapp.eval.datasets import ParquetImage, load_dataset
from medapp.eval.predictions import PredictionWriter, read_predictions


def test_vqa_rad_official_json_keeps_the_test_split(tmp_path: Path) -> None:
    write_vqa_rad_json(tmp_path)
    ds = load_dataset("vqa-rad", tmp_path)
    assert [q.qid for q in ds.questions] == ["1", "2", "3", "4", "5", "6"]  # train rows (7, 8) left out
    q4 = ds.questions[3]
    assert (q4.answer, q4.closed, q4.categories) == ("2", False, {"answer_type": "open", "organ": "ABD",
                                                                  "question_type": "COUNT"})
    assert ds.questions[4].closed and ds.questions[4].answer == "CT"  # closed, but not yes/no
    assert ds.load_image(ds.questions[0]).mode == "RGB"
    assert ds.source == "official-json" and [f.name for f in ds.files] == ["VQA_RAD Dataset Public.json"]


def test_vqa_rad_missing_image_is_one_line(tmp_path: Path, capsys) -> None:
    write_vqa_rad_json(tmp_path)
    (tmp_path / "VQA_RAD Image Folder" / "synpic200.jpg").unlink()
    with pytest.raises(UserError, match=r"1 image\(s\) named in VQA_RAD Dataset Public.json are missing "
                                        r"\(first: synpic200.jpg\)"):
        load_dataset("vqa-rad", tmp_path)
    assert main(["eval", "score", "--dataset", "vqa-rad", "--data", str(tmp_path), "--predictions",
                 str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("medapp: ") and "synpic200.jpg" in err


def test_vqa_rad_hf_parquet_copy(tmp_path: Path) -> None:
    rows = [("Is there a fracture?", "no"), ("What is shown?", "the chest"), ("Is it normal?", "Yes")]
    write_hf_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", rows, row_group_size=2)
    ds = load_dataset("vqa-rad", tmp_path)
    assert [(q.qid, q.answer, q.closed) for q in ds.questions] == [("0", "no", True), ("1", "the chest", False),
                                                                   ("2", "Yes", True)]
    assert ds.questions[2].image == ParquetImage(tmp_path / "data" / "test-00000-of-00001.parquet", 2)
    # the third row lives in the second row group; images differ per row
    assert ds.load_image(ds.questions[2]).tobytes() != ds.load_image(ds.questions[0]).tobytes()


def test_slake_language_filter_and_categories(tmp_path: Path) -> None:
    write_slake(tmp_path)
    en = load_dataset("slake", tmp_path)
    assert [q.qid for q in en.questions] == ["11", "12", "13", "14", "15", "16"]
    assert en.questions[2].categories == {"answer_type": "closed", "modality": "MRI", "organ": "Abdomen",
                                          "content_type": "Size"}
    assert [q.qid for q in load_dataset("slake", tmp_path / "test.json", lang="zh").questions] == ["17"]
    assert len(load_dataset("slake", tmp_path, lang="all").questions) == 7
    with pytest.raises(UserError, match="no questions in language 'fr'"):
        load_dataset("slake", tmp_path, lang="fr")


def test_slake_without_imgs_folder(tmp_path: Path) -> None:
    write_slake(tmp_path)
    (tmp_path / "imgs").rename(tmp_path / "images")
    with pytest.raises(UserError, match=r"no imgs/ folder; expected SLAKE's test.json with its imgs/"):
        load_dataset("slake", tmp_path)


def test_path_vqa_reads_test_parquet_only(tmp_path: Path) -> None:
    write_path_vqa(tmp_path)
    ds = load_dataset("path-vqa", tmp_path)
    assert [(q.question, q.answer) for q in ds.questions] == list(PATH_VQA_ROWS)  # the train file is ignored
    assert [q.closed for q in ds.questions] == [a in ("yes", "no") for _, a in PATH_VQA_ROWS]
    assert ds.questions[4].image.row == 0 and ds.questions[4].qid == "4"  # second file, numbered on
    assert len({ds.load_image(q).tobytes() for q in ds.questions}) == len(PATH_VQA_ROWS)


@pytest.mark.parametrize("as_file", [False, True])
def test_path_vqa_pickles_are_refused_naming_the_parquet_copy(tmp_path: Path, as_file: bool) -> None:
    (tmp_path / "qas").mkdir()
    pkl = tmp_path / "qas" / "test_vqa.pkl"
    pkl.write_bytes(b"\x80\x04N.")  # never unpickled
    with pytest.raises(UserError, match=r"pickles.*flaviagiammarino/path-vqa"):
        load_dataset("path-vqa", pkl if as_file else tmp_path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("vqa-rad", "not a VQA-RAD copy; expected the official VQA-RAD JSON"),
     ("slake", "not a SLAKE copy; expected SLAKE's test.json"),
     ("path-vqa", "not a Path-VQA copy; expected the Hugging Face parquet copy")],
)
def test_wrong_folder_says_what_was_expected(tmp_path: Path, name: str, expected: str, capsys) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["eval", "score", "--dataset", name, "--data", str(tmp_path), "--predictions",
                 str(tmp_path / "p.jsonl")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_parquet_without_image_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["q"], "answer": ["yes"]}), tmp_path / "test.parquet")
    with pytest.raises(UserError, match="columns question, answer; expected the Hugging Face parquet copy"):
        load_dataset("path-vqa", tmp_path)


def test_answer_file_resume_repairs_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with PredictionWriter(path) as w:
        w.add("1", "yes", prompt="p", model_id="m")
        w.add("2", "liver", prompt="p", model_id="m")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 9])  # the second line cut mid-way, as a kill would leave it
    read = read_predictions(path)
    assert read.texts == {"1": "yes"} and read.truncated_tail
    with PredictionWriter(path) as w:
        assert w.done == {"1"}
        w.add("2", "spleen", prompt="p", model_id="m")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["question_id"], x["text"]) for x in lines] == [("1", "yes"), ("2", "spleen")]


def test_answer_file_llava_med_form_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text('{"question_id": 7, "prompt": "q", "text": "Yes", "answer_id": "abc", "model_id": "llava"}\n'
                    '{"question_id": 7, "text": "No"}\n')
    read = read_predictions(path)
    assert read.texts == {"7": "Yes"} and read.duplicates == 1
    path.write_text('{"question_id": 1, "text": "a"}\nnot json\n{"question_id": 2, "text": "b"}\n')
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        read_predictions(path)
    path.write_text('{"id": 1, "answer": "a"}\n')
    with pytest.raises(UserError, match="line 1 has no question_id and text"):
        read_predictions(path)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from filelock import FileLock

    from medapp.eval.run import run_eval

    write_path_vqa(tmp_path / "pvqa")
    ds = load_dataset("path-vqa", tmp_path / "pvqa")
    out = tmp_path / "out"
    out.mkdir()
    engine = SimpleNamespace(info=SimpleNamespace(checkpoint_sha256="0" * 64, quant="none", model_id="m"))
    with FileLock(str(out / ".eval.lock")), pytest.raises(UserError, match="another `medapp eval run` is writing"):
        run_eval(engine, ds, out)
    assert not (out / "predictions.jsonl").exists()
