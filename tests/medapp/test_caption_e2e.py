"""Batch captioning end to end: a mixed folder with one corrupt file, resume, contact sheet, cancel."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pypdf import PdfReader

from medapp import paths
from medapp.cli import main
from medapp.jobs import caption_batch, list_items
from reports.captions import CaptionWriter, read_caption_rows

WHOLE = {"pub_224x224.png", "pub_1000x250_wide.png", "ct_small.dcm", "mr/mr_small.dcm"}


def test_caption_folder_resume_and_sheet(cli_engine, mixed_folder: Path, tmp_path: Path, medapp_home: Path, capsys) -> None:
    csv_path, jsonl, sheet = tmp_path / "c.csv", tmp_path / "c.jsonl", tmp_path / "sheet.pdf"
    argv = ["caption", str(mixed_folder), "-o", str(csv_path), "--jsonl", str(jsonl), "--sheet", str(sheet),
            "--tiles", "2", "--batch-size", "3", "--max-new-tokens", "4"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = read_caption_rows(csv_path)
    errors = [r for r in rows if r.error]
    assert [r.file for r in errors] == ["broken.dcm"] and "broken.dcm" in errors[0].error
    assert "broken.dcm" in captured.err  # reported while the batch went on
    ok = {(r.file, r.region) for r in rows if not r.error}
    assert {f for f, region in ok if region == ""} == WHOLE
    slide_regions = sorted(region for f, region in ok if f == "slide.tif")
    assert len(slide_regions) == 3 and "overview" in slide_regions  # overview + the 2 requested tissue tiles
    assert all(r.caption and r.model == "dragonfly-v2-tiny" and len(r.input_sha256) == 64 for r in rows if not r.error)
    assert len(jsonl.read_text().splitlines()) == len(rows) == 8
    assert len(PdfReader(sheet).pages) >= 1

    # a rerun with --resume adds nothing; without --resume the table is protected
    assert main([*argv, "--resume"]) == 0
    assert read_caption_rows(csv_path) == rows
    assert "captioned 0, failed 0, skipped 8" in capsys.readouterr().out
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err

    entries = [json.loads(x) for x in paths.audit_path().read_text().splitlines()]
    assert [e["event"] for e in entries] == ["caption", "caption"]
    assert entries[0]["details"]["n_done"] == 7 and entries[0]["details"]["n_failed"] == 1
    assert len(entries[0]["inputs"]) == 7 and "broken" not in paths.audit_path().read_text()


def test_caption_job_progress_and_cancel(tiny_engine, mixed_folder: Path, tmp_path: Path) -> None:
    items = [it for it in list_items(mixed_folder, tissue_tiles=0) if it.kind != "error"]
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
