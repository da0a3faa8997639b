"""Slide-level description end to end with the tiny golden Dragonfly v2 checkpoint: outputs written and valid,
citations only of regions that exist, the planted region first, the score cache, resume after a cancel, the CLI,
the audit trail, and `DragonflyEngine.mean_embeddings` (processor-exact pixels, batching-invariant)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.medapp.test_slide_level import PLANTED_RECT, DarknessScorer, write_test_slide

FAST = dict(top_k=4, caption_batch_size=2, caption_max_new_tokens=6, description_max_new_tokens=24,
            overview_side=512, score_batch_size=8)


@pytest.fixture(scope="module")
def test_slide(tmp_path_factory) -> Path:
    return write_test_slide(tmp_path_factory.mktemp("slide_level_e2e") / "synthetic.tif")


@pytest.fixture(scope="module")
def whole_run(tiny_engine, test_slide, tmp_path_factory):
    """One uninterrupted run (injected darkness scorer, audited) shared by the checks below: (folder, audit path)."""
    from medapp.audit import AuditLog
    from medapp.slide_level.job import describe_slide

    base = tmp_path_factory.mktemp("whole")
    audit = base / "audit.jsonl"
    outcome = describe_slide(tiny_engine, test_slide, base / "out", settings=_settings(), scorer=DarknessScorer(),
                             audit=AuditLog(audit))
    assert outcome.status == "done" and outcome.regions == 4
    return base / "out", audit


def _settings(**kw):
    from medapp.slide_level.settings import SlideLevelSettings

    return SlideLevelSettings().updated(**{**FAST, **kw})


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)


def test_outputs_are_written_valid_and_cite_only_existing_regions(tiny_engine, test_slide, tmp_path, whole_run):
    import shutil

    from PIL import Image

    from medapp.audit import verify
    from medapp.slide_level.job import describe_slide

    out = tmp_path / "out"
    shutil.copytree(whole_run[0], out)
    audit_path = whole_run[1]

    data = json.loads((out / "slide.json").read_text())
    assert data["complete"] is True and data["status"] == "AI DRAFT — not reviewed"
    regions = data["regions"]
    assert [r["number"] for r in regions] == [1, 2, 3, 4] == [r["rank"] for r in regions]
    assert all(r["caption"] is not None and r["magnification"] == 20 for r in regions)
    scores = [r["score"] for r in regions]
    assert scores == sorted(scores, reverse=True)
    x, y, w, h = regions[0]["box"]  # the planted texture is what the injected scorer prefers: it comes first
    x0, y0, x1, y1 = PLANTED_RECT
    assert x0 <= x + w / 2 <= x1 and y0 <= y + h / 2 <= y1
    centres = np.array([r["centre"] for r in regions])
    gaps = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))[~np.eye(4, dtype=bool)]
    assert (gaps >= 2 * 672).all()  # min_distance 2 tile sides of 672 level-0 px
    for r in regions:  # inside the slide
        bx, by, bw, bh = r["box"]
        assert bx >= 0 and by >= 0 and bx + bw <= 4096 and by + bh <= 4096 and r["tissue"] >= 0.5
    desc = data["description"]
    cited = {int(n) for n in __import__("re").findall(r"\[(\d+)\]", desc["text"])}
    assert cited <= {1, 2, 3, 4}
    assert all(set(s["regions"]) <= {1, 2, 3, 4} for s in desc["sentences"])
    prov = data["provenance"]
    assert prov["model_sha256"] == tiny_engine.info.checkpoint_sha256 and prov["app_version"]
    assert prov["prompts"]["region"] == data["settings"]["region_prompt"]
    assert "[1] " in desc["prompt"] and "[4] " in desc["prompt"]  # the captions went in as numbered text

    heat = Image.open(out / "heatmap.png")
    heat.verify()
    assert max(Image.open(out / "heatmap.png").size) == 512
    text = _pdf_text(out / "slide.pdf")
    assert "AI DRAFT" in text and "Description" in text
    words = [w for w in desc["text"].split() if len(w) > 3][:3]
    squashed = "".join(text.split())
    assert all("".join(w.split()) in squashed for w in words), (words, text[:500])

    log = audit_path.read_text()
    assert verify(audit_path).ok
    entries = [json.loads(line) for line in log.splitlines()]
    kinds = [e["details"].get("kind") for e in entries]
    assert kinds.count("slide-regions") == 2 and kinds.count("slide-description") == 1
    assert "synthetic" not in log and "/tmp" not in log  # no names or paths

    # second run: complete for the same model + settings → skipped, nothing scored
    again = DarknessScorer()
    second = describe_slide(tiny_engine, test_slide, out, settings=_settings(), scorer=again)
    assert second.status == "skipped" and again.calls == 0
    # other settings: the cached scores are reused (same grid), the regions are read again
    third = describe_slide(tiny_engine, test_slide, out, settings=_settings(top_k=2), scorer=again)
    assert third.status == "done" and again.calls == 0 and third.regions == 2


def test_cancel_after_some_regions_then_resume_gives_the_same_outputs(tiny_engine, test_slide, tmp_path, whole_run):
    from medapp.slide_level.job import STAGE_CAPTION, describe_slide

    whole = whole_run[0]

    cut = tmp_path / "cut"
    cancel = threading.Event()

    def stop_after_first_batch(p):
        if p.item == STAGE_CAPTION and p.done >= 2:
            cancel.set()

    first = describe_slide(tiny_engine, test_slide, cut, settings=_settings(), scorer=DarknessScorer(),
                           on_progress=stop_after_first_batch, cancel=cancel)
    assert first.status == "cancelled" and first.captions_done == 2
    partial = json.loads((cut / "slide.json").read_text())
    assert partial["complete"] is False and [r["caption"] is not None for r in partial["regions"]] == [True, True,
                                                                                                      False, False]
    assert not (cut / "slide.pdf").exists()

    scorer = DarknessScorer()
    second = describe_slide(tiny_engine, test_slide, cut, settings=_settings(), scorer=scorer)
    assert second.status == "done" and second.captions_done == 2 and scorer.calls == 0  # scores came from the cache
    a = json.loads((whole / "slide.json").read_text())
    b = json.loads((cut / "slide.json").read_text())
    assert [(r["box"], r["score"], r["caption"]) for r in a["regions"]] == [
        (r["box"], r["score"], r["caption"]) for r in b["regions"]]
    assert a["description"]["text"] == b["description"]["text"]
    assert (whole / "heatmap.png").read_bytes() == (cut / "heatmap.png").read_bytes()


def test_model_scorer_uses_the_vision_tower_once_per_tile_and_caches(tiny_engine, test_slide, tmp_path, monkeypatch):
    from medapp.slide_level.job import describe_slide
    from medapp.slide_level.scoring import EmbeddingScorer

    seen: list[int] = []
    original = type(tiny_engine).mean_embeddings

    def counting(self, images, batch_size=8):
        seen.append(len(images))
        return original(self, images, batch_size)

    monkeypatch.setattr(type(tiny_engine), "mean_embeddings", counting)
    settings = _settings(top_k=2)
    outcome = describe_slide(tiny_engine, test_slide, tmp_path / "m", settings=settings)
    data = json.loads((tmp_path / "m" / "slide.json").read_text())
    assert data["provenance"]["scorer"] == EmbeddingScorer.cache_id
    n = data["n_candidates"]
    assert sum(seen) == n + 1  # every tile once, plus the overview once
    assert max(seen) <= settings.score_batch_size
    assert outcome.scorer_calls == -(-n // settings.score_batch_size)
    cache = np.load(next((tmp_path / "m").glob("scores-*.npz")))
    assert np.isfinite(cache["scores"]).all() and len(cache["scores"]) == n
    seen.clear()
    (tmp_path / "m" / "slide.json").unlink()  # force a redo: the scores still come from the cache
    describe_slide(tiny_engine, test_slide, tmp_path / "m", settings=settings)
    assert seen == []


def test_mean_embeddings_are_processor_exact_and_batch_invariant(tiny_engine, golden_dir):
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in sorted((golden_dir / "cases-v2").glob("pub_*.png"))][:3]
    pixels = tiny_engine.crop_pixels(images)
    for image, crop in zip(images, pixels, strict=True):
        np.testing.assert_array_equal(crop, tiny_engine.processor.image_patches(image)[0])  # = the global crop
    batched = tiny_engine.mean_embeddings(images, batch_size=3)
    single = np.concatenate([tiny_engine.mean_embeddings([im], batch_size=1) for im in images])
    assert batched.shape == (3, tiny_engine.model.config.text_config.hidden_size) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5)
    assert not np.allclose(batched[0], batched[1])


def test_cli_slide_level_writes_a_folder_per_slide(cli_engine, test_slide, tmp_path, medapp_home, capsys):
    from medapp.cli import main

    out = tmp_path / "cli-out"
    code = main(["caption", str(test_slide), "--slide-level", "--top-k", "2", "--max-new-tokens", "4",
                 "--device", "cpu", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    data = json.loads((out / "synthetic.tif" / "slide.json").read_text())
    assert data["complete"] and len(data["regions"]) == 2 and data["settings"]["top_k"] == 2
    assert (out / "synthetic.tif" / "slide.pdf").is_file() and (out / "synthetic.tif" / "heatmap.png").is_file()
    code = main(["caption", str(test_slide), "--slide-level", "--top-k", "2", "--max-new-tokens", "4",
                 "--device", "cpu", "-o", str(out)])
    assert code == 0 and "already complete" in capsys.readouterr().out


def test_cli_names_the_slide_that_has_no_magnification(cli_engine, tmp_path, medapp_home, capsys):
    import tifffile

    from medapp.cli import main

    path = tmp_path / "no-mpp.tif"
    level = np.full((1024, 1024, 3), (226, 152, 192), np.uint8)
    with tifffile.TiffWriter(path) as tw:  # a pyramid without resolution tags: no µm/px, no objective power
        for k in range(3):
            tw.write(level[:: 2**k, :: 2**k], tile=(256, 256), photometric="rgb", compression="jpeg",
                     subfiletype=0 if k == 0 else 1, metadata=None)
    code = main(["caption", str(path), "--slide-level", "--device", "cpu", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "no-mpp.tif" in err and "neither" in err


def test_cli_refuses_more_magnification_than_scanned_before_loading_the_model(tmp_path, test_slide, medapp_home,
                                                                               capsys, monkeypatch):
    from medapp.cli import main
    from medapp.model_holder import ModelHolder

    def no_model(self):
        raise AssertionError("the model must not load for a slide that cannot be read at that magnification")

    monkeypatch.setattr(ModelHolder, "get", no_model)
    code = main(["caption", str(test_slide), "--slide-level", "--magnification", "80", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "synthetic.tif" in err and "40x" in err and "80x" in err


def test_a_folder_describes_every_slide_and_reports_the_bad_one(tiny_engine, test_slide, tmp_path):
    import shutil

    import tifffile

    from medapp.slide_level.folder import describe_slides

    folder = tmp_path / "cases"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(test_slide, folder / "sub" / "good.tif")
    (folder / "notes.txt").write_text("not a slide")
    level = np.full((1024, 1024, 3), (226, 152, 192), np.uint8)
    with tifffile.TiffWriter(folder / "bad.tif") as tw:  # no pixel size, no objective power
        for k in range(3):
            tw.write(level[:: 2**k, :: 2**k], tile=(256, 256), photometric="rgb", compression="jpeg",
                     subfiletype=0 if k == 0 else 1, metadata=None)
    errors = []
    summary = describe_slides(tiny_engine, folder, tmp_path / "out", settings=_settings(top_k=1),
                              scorer=DarknessScorer(), on_error=lambda key, message: errors.append((key, message)))
    assert [o.status for o in summary.outcomes] == ["done"]
    assert (tmp_path / "out" / "sub__good.tif" / "slide.json").is_file()
    assert len(errors) == 1 and errors[0][0] == "bad.tif" and "neither" in errors[0][1]
    assert str(folder) not in errors[0][1]  # the row names the file by its key, not its absolute path
