"""A decoder that aborts inside the sandboxed worker costs one error row; the caption batch finishes (issue #10
item 6). Before the sandbox, GDCM ran in-process and an abort there ended the whole batch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pydicom import examples

from dicom_io import sandbox
from dicom_io._decode_worker import FAULT_ENV
from medapp.jobs import caption_batch, list_items
from reports.captions import CaptionWriter, read_caption_rows


def test_aborting_decoder_is_one_error_row_and_the_batch_finishes(tiny_engine, golden_dir: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(golden_dir / "cases-v2" / "pub_224x224.png", folder / "a.png")
    tool = shutil.which("gdcmconv") or str(Path(sys.executable).with_name("gdcmconv"))
    subprocess.run([tool, "--jpeg", examples.get_path("ct"), str(folder / "b_lossless.dcm")], check=True,
                   capture_output=True, timeout=120)
    shutil.copy(examples.get_path("ct"), folder / "c_ct.dcm")
    sandbox.shutdown()
    monkeypatch.setenv(FAULT_ENV, "abort")  # the worker's decoder calls os.abort() on every frame
    try:
        errors: list[tuple[str, str]] = []
        with CaptionWriter(tmp_path / "c.csv") as writer:
            summary = caption_batch(tiny_engine, list_items(folder, tissue_tiles=0), writer, batch_size=2,
                                    max_new_tokens=3, on_error=lambda f, m: errors.append((f, m)))
    finally:
        monkeypatch.delenv(FAULT_ENV)
        sandbox.shutdown()
    rows = read_caption_rows(tmp_path / "c.csv")
    assert (summary.done, summary.failed, summary.cancelled) == (2, 1, False)
    by_file = {r.file: r for r in rows}
    assert sorted(by_file) == ["a.png", "b_lossless.dcm", "c_ct.dcm"] and len(rows) == 3
    assert by_file["a.png"].caption and by_file["c_ct.dcm"].caption and not by_file["a.png"].error
    bad = by_file["b_lossless.dcm"].error
    assert "crashed (SIGABRT)" in bad and str(folder) not in bad  # the cause, never the absolute path
    assert [f for f, _ in errors] == ["b_lossless.dcm"]
