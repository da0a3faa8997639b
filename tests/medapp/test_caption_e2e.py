"""Batch captioning end to end: a mixed folder with one corrupt file, resume, contact sheet, cancel."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from pypdf import PdfReader

from medapp import paths
from medapp.cli import main
from medapp.jobs import caption_batch, list_items
from medapp.model_holder import ModelHolder
from reports.captions import CaptionWriter, read_caption_rows

WHOLE = {"pub_224x224.png", "pub_1000x250_wide.png", "ct_small.dcm", "mr/mr_small.dcm"}


def test_caption_folder_resume_and_sheet(cli_engine, mixed_folder: Path, tmp_path: Path, medapp_home: Path, capsys,
                                        monkeypatch) -> None:
    csv_path, jsonl, sheet = tmp_path / "c.csv", tmp_path / "c.jsonl", tmp_path / "sheet.pdf"
    argv = ["caption", str(mixed_folder), "-o", str(csv_path), "--jsonl", str(jsonl), "--sheet", str(sheet),
            "--tiles", "2", "--batch-size", "3", "--max-new-tokens", "4"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = read_caption_rows(csv_path)
    errors = [r for r in rows if r.error]
    assert [r.file for r in errors] == ["broken.dcm"] and errors[0].error
    # the row holds the cause, never the absolute path (folder names often carry patient names)
    assert str(mixed_folder) not in csv_path.read_text() + jsonl.read_text()
    assert "skipped broken.dcm: " in captured.err  # reported (by name, to the user) while the batch went on
    ok = {(r.file, r.region) for r in rows if not r.error}
    assert {f for f, region in ok if region == ""} == WHOLE
    slide_regions = sorted(region for f, region in ok if f == "slide.tif")
    assert len(slide_regions) == 3 and "overview" in slide_regions  # overview + the 2 requested tissue tiles
    assert all(r.caption and r.model == "dragonfly-v2-tiny" and len(r.input_sha256) == 64 for r in rows if not r.error)
    assert len(jsonl.read_text().splitlines()) == len(rows) == 8
    assert len(PdfReader(sheet).pages) >= 1

    # one audit entry per batch of 3 (8 items), together accounting for every row
    entries = [json.loads(x) for x in paths.audit_path().read_text().splitlines()]
    assert [e["event"] for e in entries] == ["caption"] * 3
    assert [e["details"]["n_inputs"] for e in entries] == [3, 3, 2]
    assert sum(e["details"]["n_done"] for e in entries) == 7 and sum(e["details"]["n_failed"] for e in entries) == 1
    assert sorted(h for e in entries for h in e["inputs"]) == sorted(r.input_sha256 for r in rows if not r.error)
    assert "broken" not in paths.audit_path().read_text()

    # a rerun with --resume adds nothing and does not even load the model; without --resume the table is protected
    real_get = ModelHolder.get
    monkeypatch.setattr(ModelHolder, "get", lambda self: pytest.fail("model loaded with nothing left to caption"))
    assert main([*argv, "--resume"]) == 0
    assert read_caption_rows(csv_path) == rows
    assert "captioned 0, failed 0, skipped 8" in capsys.readouterr().out
    assert len(paths.audit_path().read_text().splitlines()) == 3  # no model use, no entry
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err

    # retrying the one failed file counts the earlier rows: the bar ends at 8/8, not 1/1
    monkeypatch.setattr(ModelHolder, "get", real_get)
    code = main([*argv, "--resume", "--retry-errors"])
    progress = capsys.readouterr().err.replace("\r", "\n")
    assert code == 0, progress[-800:]
    assert "8/8" in progress and "1/1" not in progress


def test_caption_rows_are_audited_per_batch_before_they_are_written(tiny_engine, mixed_folder: Path,
                                                                    tmp_path: Path) -> None:
    """A run killed after its first batch leaves that batch's captions with their audit entry already written."""
    from medapp.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl")
    items = [it for it in list_items(mixed_folder, tissue_tiles=0) if it.file != "broken.dcm"]
    rows_when_audited: list[int] = []
    record = log.record

    def spy(*args, **kwargs):
        rows_when_audited.append(len(read_caption_rows(tmp_path / "c.csv")))
        return record(*args, **kwargs)

    class Killed(Exception):
        pass

    def kill_after_first_batch(p) -> None:
        raise Killed  # the process dies right after the first batch's rows are on disk

    log.record = spy  # type: ignore[method-assign]
    with CaptionWriter(tmp_path / "c.csv") as writer, pytest.raises(Killed):
        caption_batch(tiny_engine, items, writer, batch_size=2, max_new_tokens=3, audit=log,
                      on_progress=kill_after_first_batch)
    rows = read_caption_rows(tmp_path / "c.csv")
    entries = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert len(rows) == 2 and rows_when_audited == [0]  # audited before its rows were written
    assert [e["event"] for e in entries] == ["caption"] and entries[0]["inputs"] == [r.input_sha256 for r in rows]


def test_listing_opens_only_slides_and_rendering_reuses_them(mixed_folder: Path, monkeypatch) -> None:
    """Work is not done twice: listing opens the slide (for its tiles) but no other file; the slide stays in the
    view cache, so rendering its overview and tiles does not open it again."""
    from cachetools import LRUCache

    import dicom_io
    import medapp.view
    from medapp.inputs import load_image

    monkeypatch.setattr(medapp.view, "_CACHE", LRUCache(maxsize=4))  # an earlier test may have the slide cached already
    opened: list[str] = []
    real_open = dicom_io.open_path
    monkeypatch.setattr(dicom_io, "open_path", lambda p: (opened.append(Path(p).name), real_open(p))[1])
    items = list_items(mixed_folder, tissue_tiles=2)
    assert opened == ["slide.tif"]
    assert {it.file: it.kind for it in items if it.region in ("", "overview")} == {
        "broken.dcm": "dicom", "ct_small.dcm": "dicom", "mr/mr_small.dcm": "dicom", "pub_1000x250_wide.png": "image",
        "pub_224x224.png": "image", "slide.tif": "slide-overview"}
    for it in items:
        if it.file == "slide.tif":
            load_image(it.path, region=it.box)
    assert opened == ["slide.tif"]


def test_caption_job_progress_and_cancel(tiny_engine, mixed_folder: Path, tmp_path: Path) -> None:
    items = [it for it in list_items(mixed_folder, tissue_tiles=0) if it.file != "broken.dcm"]
    assert len(items) == 5
    cancel = threading.Event()
    seen = []

    def on_progress(p) -> None:
        seen.append(p)
        cancel.set()  # stop after the first batch

    with CaptionWriter(tmp_path / "c.csv") as writer:
        summary = caption_batch(tiny_engine, items, writer, batch_size=2, max_new_tokens=3, on_progress=on_progress,
                                cancel=cancel)
    assert summary.cancelled and summary.done == 2 and len(seen) == 1
    assert (seen[0].done, seen[0].total) == (2, 5) and seen[0].eta_s is not None and seen[0].eta_s > 0
    with CaptionWriter(tmp_path / "c.csv") as writer:  # resume finishes the rest
        rest = caption_batch(tiny_engine, items, writer, batch_size=2, max_new_tokens=3)
    assert (rest.skipped, rest.done, rest.cancelled) == (2, 3, False)
    assert len(read_caption_rows(tmp_path / "c.csv")) == 5


def test_dicom_wsi_folder_is_one_slide(dicom_wsi_slide: Path) -> None:
    """Each level file of a DICOM-WSI opens the whole slide; the batch must caption it once, not once per level."""
    items = list_items(dicom_wsi_slide, tissue_tiles=1)
    assert [(it.kind, it.region) for it in items][0] == ("slide-overview", "overview")
    assert sum(it.kind == "slide-overview" for it in items) == 1 and len(items) == 2
