"""Caption tables survive crashes and resume; the contact sheet paginates and shows every row."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from reports import ReportError
from reports.captions import COLUMNS, CaptionRow, CaptionWriter, read_caption_rows, region_key
from reports.contact_sheet import ContactItem, contact_sheet_bytes, render_contact_sheet


def test_rows_round_trip_with_hostile_captions(tmp_path: Path) -> None:
    csv_path, jsonl_path = tmp_path / "c.csv", tmp_path / "c.jsonl"
    hostile = ['multi\nline, "quoted" caption', "=HYPERLINK(\"http://x\")", "'=already", "- a bullet", "王 µ ± <5 mm"]
    with CaptionWriter(csv_path, jsonl_path) as w:
        for i, cap in enumerate(hostile):
            w.add(f"img{i}.png", cap, region=(1, 2, 3, 4) if i % 2 else None, model="m", input_sha256="ab")
        w.add("bad.dcm", error=ValueError("decoder\nfailed"))
    rows = read_caption_rows(csv_path)
    assert [r.caption for r in rows[:-1]] == hostile
    assert rows[1].region == "1,2,3,4" and rows[0].region == ""
    assert rows[-1].error == "ValueError: decoder failed"
    raw_cells = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"), newline="")))
    assert tuple(raw_cells[0]) == COLUMNS
    assert raw_cells[2][2].startswith("'="), "formula not neutralised for spreadsheets"
    assert [json.loads(x)["caption"] for x in jsonl_path.read_text(encoding="utf-8").splitlines()][:5] == hostile


def test_partial_tail_is_cut_and_resume_skips_done(tmp_path: Path) -> None:
    csv_path, jsonl_path = tmp_path / "c.csv", tmp_path / "c.jsonl"
    with CaptionWriter(csv_path, jsonl_path) as w:
        w.add("a.png", "fine")
        w.add("b.png", error="timeout")
    with open(csv_path, "a", encoding="utf-8", newline="") as fh:  # a crash in the middle of a quoted caption
        fh.write('c.png,,"half a capt\nion that never')
    with open(jsonl_path, "a", encoding="utf-8") as fh:
        fh.write('{"file": "c.png", "capt')
    with CaptionWriter(csv_path, jsonl_path) as w:
        assert w.done_keys() == {("a.png", "")}
        assert w.done_keys(include_errors=True) == {("a.png", ""), ("b.png", "")}
        w.add("c.png", "redone")
    assert [r.file for r in read_caption_rows(csv_path)] == ["a.png", "b.png", "c.png"]
    assert [json.loads(x)["file"] for x in jsonl_path.read_text().splitlines()] == ["a.png", "b.png", "c.png"]


def test_csv_row_missing_from_jsonl_is_added_on_open(tmp_path: Path) -> None:
    """A crash after the CSV write and before the JSONL write: reopening puts the row into the JSONL too, so the
    two files hold the same rows although resume (which reads the CSV) will skip it."""
    csv_path, jsonl_path = tmp_path / "c.csv", tmp_path / "c.jsonl"
    with CaptionWriter(csv_path, jsonl_path) as w:
        w.add("a.png", "fine", input_sha256="aa")
        w.add("a.png", "=SUM(1)", region=(0, 0, 8, 8), input_sha256="bb")
    with CaptionWriter(csv_path) as w:  # the process died between the two writes of this row
        w.add("b.png", "only in the CSV", input_sha256="cc")
    with CaptionWriter(csv_path, jsonl_path) as w:
        assert ("b.png", "") in w.done_keys()
        w.add("c.png", "after the resume")
    jsonl_rows = [CaptionRow(**json.loads(x)) for x in jsonl_path.read_text(encoding="utf-8").splitlines()]
    assert jsonl_rows == read_caption_rows(csv_path)
    assert [r.file for r in jsonl_rows] == ["a.png", "a.png", "b.png", "c.png"]
    with CaptionWriter(csv_path, jsonl_path):  # nothing to add the second time
        pass
    assert len(jsonl_path.read_text(encoding="utf-8").splitlines()) == 4


def test_damaged_jsonl_line_names_the_file(tmp_path: Path) -> None:
    csv_path, jsonl_path = tmp_path / "c.csv", tmp_path / "c.jsonl"
    with CaptionWriter(csv_path, jsonl_path) as w:
        w.add("a.png", "fine")
    jsonl_path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(ReportError, match=r"c\.jsonl: line 1 is not a caption row"):
        CaptionWriter(csv_path, jsonl_path)


def test_killed_writer_leaves_valid_file(tmp_path: Path) -> None:
    """A process killed (SIGKILL, no close, no atexit) after 5 rows leaves a table with exactly those 5 rows."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL on this platform")
    code = (
        "import os, signal, sys\n"
        "from reports.captions import CaptionWriter\n"
        "w = CaptionWriter(sys.argv[1], sys.argv[2])\n"
        "for i in range(5): w.add(f'{i}.png', 'caption ' * 50 + str(i))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "k.csv"), str(tmp_path / "k.jsonl")],
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    rows = read_caption_rows(tmp_path / "k.csv")
    assert [r.file for r in rows] == [f"{i}.png" for i in range(5)] and rows[4].caption.endswith("4")
    assert len((tmp_path / "k.jsonl").read_text().splitlines()) == 5


def test_foreign_csv_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("name,age\nx,1\n")
    with pytest.raises(ReportError, match="other.csv: not a medapp caption table"):
        CaptionWriter(other)
    assert other.read_text() == "name,age\nx,1\n"


def test_helpers() -> None:
    assert region_key((0, 0, 512, 512, 2)) == "0,0,512,512@2" and region_key(None) == ""
    with pytest.raises(ReportError):
        region_key((1, 2))


def _tile(i: int) -> Image.Image:
    return Image.new("RGB", (200 + 40 * (i % 3), 150), ((i * 40) % 255, 90, 160))


def test_contact_sheet_paginates_and_keeps_rows(tmp_path: Path, ct_png: bytes) -> None:
    png_file = tmp_path / "plain.png"
    _tile(7).save(png_file)
    rows: list = [CaptionRow(f"/data/PATIENT_DOE/img{i}.dcm", caption=f"Caption {i}: nodule <5 mm & S&P µ 王.")
                  for i in range(12)]
    rows.append(CaptionRow("/data/broken.dcm", error="PixelDecodeError: no decoder"))
    rows.append(CaptionRow(str(png_file), caption="plain image read by path " + "very long caption " * 80))
    rows.append(ContactItem(ct_png, "ct.dcm [0,0,64,64]", "CT soft-tissue window"))
    thumbs = {(f"/data/PATIENT_DOE/img{i}.dcm", ""): _tile(i) for i in range(12)}
    out = render_contact_sheet(rows, tmp_path / "sheet.pdf", thumbnails=thumbs, title="Batch µ 王", model="dfm-v2")
    reader = PdfReader(out)
    assert len(reader.pages) == 2  # 15 items, 12 per page
    text = " ".join(p.extract_text() for p in reader.pages)
    for i in range(12):
        assert f"Caption {i}: nodule <5 mm & S&P" in text
    flat = text.replace("\n", " ")
    assert "PixelDecodeError: no decoder" in flat
    assert re.search(r"plain image read by path (very long caption )+[a-z ]*…", flat), "not shortened"
    assert "Page 2 of 2" in text and "img3.dcm" in text
    deid = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(
        contact_sheet_bytes(rows, thumbnails=thumbs, deidentified=True))).pages)
    assert "PATIENT_DOE" not in deid and "img3.dcm" not in deid and "#4" in deid


def test_deidentified_sheet_scrubs_names_from_errors() -> None:
    """The label is replaced by "#n" and the error text loses the file name, its folders and any path."""
    rows = [
        CaptionRow("Doe_John/scan 1.dcm", error="/mnt/pacs/Doe_John/scan 1.dcm: truncated pixel data (CT)"),
        CaptionRow("Roe_Jane.dcm", error="Roe_Jane.dcm: no decoder; see C:\\scans\\Roe_Jane.dcm"),
    ]

    def text(**kwargs) -> str:
        pdf = contact_sheet_bytes(rows, **kwargs)
        return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages)

    assert "Doe_John" in text() and "Roe_Jane" in text()  # the plain sheet shows what the table holds
    deid = text(deidentified=True)
    assert "Doe_John" not in deid and "Roe_Jane" not in deid and "pacs" not in deid and "scans" not in deid
    assert "truncated pixel data (CT)" in deid and "no decoder" in deid and "#2" in deid


def test_contact_sheet_empty_and_unreadable_thumbnail(tmp_path: Path) -> None:
    pdf = contact_sheet_bytes([ContactItem(b"not an image", "x", "cap")])
    assert "no preview" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert len(PdfReader(io.BytesIO(contact_sheet_bytes([]))).pages) == 1
    with pytest.raises(ReportError, match="item 1 is a str"):
        contact_sheet_bytes(["nope"])  # type: ignore[list-item]
