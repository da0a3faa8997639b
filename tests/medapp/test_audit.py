"""Audit log: chained entries, tamper detection naming the line, no patient data unless opted in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medapp.audit import GENESIS, AuditError, AuditLog, verify

H = "ab" * 32


def _log(tmp_path: Path, n: int = 4, **opts: bool) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl", **opts)
    for i in range(n):
        log.record("ask", inputs=[H], model_sha256=H, question=f"question {i}", file_names=[f"/p/Doe^John/{i}.dcm"], turn=i)
    return log


def test_entries_chain_and_verify(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3, 4]
    assert lines[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in zip(lines, lines[1:], strict=False))
    assert lines[0]["user"] and lines[0]["event"] == "ask" and lines[0]["inputs"] == [H]
    result = verify(log.path)
    assert result.ok and result.entries == 4


def test_no_question_text_or_file_names_without_opt_in(tmp_path: Path) -> None:
    log = _log(tmp_path, n=1)
    text = log.path.read_text()
    assert "question 0" not in text and "Doe" not in text and "0.dcm" not in text


def test_opt_in_keeps_question_and_base_name_only(tmp_path: Path) -> None:
    log = _log(tmp_path, n=1, include_question_text=True, include_file_names=True)
    entry = json.loads(log.path.read_text())
    assert entry["details"]["question"] == "question 0"
    assert entry["details"]["file_names"] == ["0.dcm"]  # never the folder (which here holds a name)


def test_free_form_details_are_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(AuditError, match="patient_name"):
        log.record("open", patient_name="Doe^John")
    with pytest.raises(AuditError, match="SHA-256"):
        log.record("open", inputs=["/home/x/Doe.dcm"])
    with pytest.raises(AuditError, match="unknown audit event"):
        log.record("delete")


@pytest.mark.parametrize("edit", ["change", "delete", "insert", "truncate"])
def test_tampering_names_the_line(tmp_path: Path, edit: str) -> None:
    log = _log(tmp_path, n=5)
    lines = log.path.read_text().splitlines(keepends=True)
    if edit == "change":
        lines[2] = lines[2].replace('"turn":2', '"turn":7')
        expected = 3
    elif edit == "delete":
        del lines[1]
        expected = 2
    elif edit == "insert":
        lines.insert(3, lines[0])  # a replayed entry
        expected = 4
    else:
        lines[-1] = lines[-1][:40]
        expected = 5
    log.path.write_text("".join(lines))
    result = verify(log.path)
    assert not result.ok and result.line == expected, str(result)
    assert f"line {expected}:" in str(result)


def test_appending_after_reopen_keeps_the_chain(tmp_path: Path) -> None:
    _log(tmp_path, n=2)
    AuditLog(tmp_path / "audit.jsonl").record("export", inputs=[H], format="pdf")
    assert verify(tmp_path / "audit.jsonl").entries == 3


def test_sign_and_export_are_audited_without_content(tmp_path: Path) -> None:
    from medapp.errors import UserError
    from medapp.jobs.export import export_report, sign_report
    from reports.model import Report, Section

    log = AuditLog(tmp_path / "a.jsonl")
    report = Report(sections=(Section("findings", "Findings", "Secret finding text."),), modality="CT")
    with pytest.raises(UserError, match="clinician"):
        sign_report(report, "  ", audit=log)
    sign_report(report, "Dr Reader", audit=log)
    assert report.is_signed
    export_report(report, tmp_path / "r.pdf", audit=log)
    entries = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert [e["event"] for e in entries] == ["sign", "export"]
    assert entries[0]["inputs"] == [report.content_sha256()] and entries[1]["details"]["report_state"] == "signed"
    assert "Secret" not in log.path.read_text() and "Reader" not in log.path.read_text()
    assert verify(log.path).ok


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    """The window's workers and a command-line run may log at once (separate AuditLog objects, one file)."""
    import threading

    path = tmp_path / "shared.jsonl"

    def writer(n: int) -> None:
        log = AuditLog(path)
        for i in range(15):
            log.record("open", inputs=[H], frames=n * 100 + i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify(path)
    assert result.ok and result.entries == 60


def test_unwritable_or_damaged_log_is_a_user_error(tmp_path: Path) -> None:
    from medapp.audit import AuditWriteError
    from medapp.errors import UserError

    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    with pytest.raises(UserError, match="cannot write the audit log"):
        AuditLog(blocked / "audit.jsonl").record("open", inputs=[H])
    damaged = tmp_path / "d.jsonl"
    AuditLog(damaged).record("open", inputs=[H])
    damaged.write_text(damaged.read_text() + '{"seq": 2, "trunc')
    with pytest.raises(AuditWriteError, match="damaged"):
        AuditLog(damaged).record("open", inputs=[H])


def test_file_hashes(tmp_path: Path) -> None:
    """The full hash is plain SHA-256; a slide's fingerprint reads only its ends but still sees size and ends."""
    from medapp.hashing import file_sha256, slide_fingerprint

    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "slide.svs"
    data = bytearray(b"\x01" * (5 * 1024))
    big.write_bytes(data)
    first = slide_fingerprint(big, sample=1024)
    assert first != file_sha256(big) and len(first) == 64
    data[2048] = 0  # the middle is not read: same fingerprint (documented limit)
    big.write_bytes(data)
    assert slide_fingerprint(big, sample=1024) == first
    data[-1] = 0  # the tail is read
    big.write_bytes(data)
    assert slide_fingerprint(big, sample=1024) != first
    big.write_bytes(bytes(data) + b"\x01")  # so is the size
    assert slide_fingerprint(big, sample=1024) != first
    with pytest.raises(FileNotFoundError, match="gone.bin"):
        file_sha256(tmp_path / "gone.bin")
