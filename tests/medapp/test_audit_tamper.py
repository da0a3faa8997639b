"""Tamper evidence that holds (issue #10 item 3): a cut end, an emptied log and a chain re-hashed without the key
all fail `verify`; old unkeyed logs still verify, said to be legacy; reports carry the anchor."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from medapp.audit import AuditLog, AuditWriteError, verify
from medapp.cli import main

H = "ef" * 32


def _log(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.record("open", inputs=[H], kind="dicom", frames=i + 1)
    return log


def _canonical(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _rehash(lines: list[str], *, keep_macs: bool) -> list[str]:
    """What an editor without the key can do: recompute every SHA-256 link and hash from the first line on."""
    prev = "0" * 64
    out = []
    for line in lines:
        entry = json.loads(line)
        entry.pop("hash", None)
        mac = entry.pop("mac", None)
        entry["prev"] = prev
        prev = hashlib.sha256((prev + _canonical(entry)).encode("utf-8")).hexdigest()
        entry["hash"] = prev
        if keep_macs and mac is not None:
            entry["mac"] = mac
        out.append(_canonical(entry) + "\n")
    return out


def test_verify_fails_on_a_cut_tail(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.jsonl")
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(lines[:-1]))
    result = verify(log.path)
    assert not result.ok and "cut" in str(result) and "ends at entry 4" in str(result), str(result)


def test_verify_fails_on_an_emptied_or_deleted_log(
    medapp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(None)  # the default log, key and anchor under MEDAPP_HOME
    log.path.write_text("")
    assert not verify().ok and "empty" in str(verify())
    assert main(["audit", "verify"]) == 2
    assert "entries were cut" in capsys.readouterr().err
    log.path.unlink()
    assert main(["audit", "verify"]) == 2  # not "no audit log there": the anchor says there was one
    assert "anchor records 5 entries" in capsys.readouterr().err


@pytest.mark.parametrize("keep_macs", [True, False])
def test_verify_fails_on_a_chain_rehashed_without_the_key(tmp_path: Path, keep_macs: bool) -> None:
    log = _log(tmp_path / "a.jsonl")
    lines = log.path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"frames":2', '"frames":9')
    forged = _rehash(lines, keep_macs=keep_macs)
    log.path.write_text("".join(forged))
    result = verify(log.path)
    assert not result.ok, str(result)
    # the old, SHA-only check is fooled: that is exactly the gap the key closes
    assert all(json.loads(x)["prev"] == json.loads(y)["hash"] for y, x in zip(forged, forged[1:], strict=False))
    if keep_macs:
        assert result.line == 2 and "HMAC" in str(result)
    else:
        assert "anchor" in str(result)


def test_verify_fails_on_a_forged_anchor(tmp_path: Path) -> None:
    """Cutting the log and writing a matching anchor needs the key too."""
    log = _log(tmp_path / "a.jsonl")
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(lines[:-1]))
    anchor = json.loads(log.anchor_path.read_text())
    last = json.loads(lines[-2])
    anchor.update(entries=4, head_hash=last["hash"], head_mac=last["mac"])
    log.anchor_path.write_text(json.dumps(anchor))
    result = verify(log.path)
    assert not result.ok and "anchor does not match its MAC" in str(result)


def test_verify_fails_without_the_key_or_the_anchor(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.jsonl", n=2)
    log.anchor_path.unlink()
    assert not verify(log.path).ok and "anchor" in str(verify(log.path))
    log.key_path.unlink()
    result = verify(log.path)
    assert not result.ok and result.line == 1 and "key" in str(result)


def test_key_is_private_random_and_never_in_the_log(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.jsonl", n=1)
    key = log.key_path.read_text().strip()
    assert len(key) == 64 and key not in log.path.read_text() and key not in log.anchor_path.read_text()
    if os.name == "posix":
        assert stat.S_IMODE(log.key_path.stat().st_mode) == 0o600
    other = _log(tmp_path / "b.jsonl", n=1)
    assert other.key_path.read_text().strip() != key


def test_an_interrupted_append_is_accepted_and_healed(tmp_path: Path) -> None:
    """A crash between the log line and the anchor leaves the anchor one entry behind: said, not an error."""
    log = _log(tmp_path / "a.jsonl", n=3)
    old_anchor = log.anchor_path.read_bytes()
    log.record("open", inputs=[H])
    log.anchor_path.write_bytes(old_anchor)  # as if the process died before the anchor moved
    result = verify(log.path)
    assert result.ok and "one entry behind" in str(result)
    log.record("open", inputs=[H])
    assert verify(log.path).ok and verify(log.path).note is None
    log.anchor_path.write_bytes(old_anchor)  # now two behind: an old anchor copied back
    assert not verify(log.path).ok


def test_append_refuses_a_log_cut_below_its_anchor(tmp_path: Path) -> None:
    """Logging on would hide the cut; fail closed instead."""
    log = _log(tmp_path / "a.jsonl")
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(lines[:-2]))
    with pytest.raises(AuditWriteError, match="cut off"):
        log.record("open", inputs=[H])
    assert log.path.read_text() == "".join(lines[:-2])


def _legacy_log(path: Path, n: int = 3) -> list[str]:
    """A log as medapp wrote it before keys: SHA chain only, no key, no anchor."""
    lines = []
    for i in range(n):
        body = {"seq": i + 1, "time": "2025-01-01T00:00:00.000+00:00", "user": "u", "event": "open",
                "inputs": [H], "model_sha256": None, "details": {"frames": i}, "prev": ""}
        lines.append(_canonical(body) + "\n")
    lines = _rehash(lines, keep_macs=False)
    path.write_text("".join(lines))
    return lines


def test_legacy_log_verifies_as_legacy_unkeyed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.jsonl"
    _legacy_log(path)
    result = verify(path)
    assert result.ok and result.entries == 3 and result.legacy == 3 and not result.anchored
    assert "legacy, unkeyed" in str(result)
    assert main(["audit", "verify", str(path)]) == 0
    assert "legacy, unkeyed" in capsys.readouterr().out


def test_legacy_log_continued_with_keys_protects_its_old_entries(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    _legacy_log(path)
    AuditLog(path).record("open", inputs=[H])
    result = verify(path)
    assert result.ok and result.legacy == 3 and result.anchored and "legacy" in str(result)
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"frames":0', '"frames":8')
    path.write_text("".join(_rehash(lines[:3], keep_macs=False) + lines[3:]))
    broken = verify(path)
    assert not broken.ok and broken.line == 4  # the first keyed entry's MAC binds the old chain's end


def test_report_provenance_carries_the_anchor(tiny_engine, ct_small: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str], medapp_home: Path) -> None:
    from medapp.inputs import load_image
    from medapp.jobs import draft_report
    from medapp.settings import GenerationLimits
    from reports.model import Provenance, Report

    log = AuditLog()
    log.record("open", inputs=[H])
    report = draft_report(tiny_engine, load_image(ct_small).image, modality="CT", audit=log,
                          limits=GenerationLimits(max_new_tokens=8))
    prov = report.provenance
    last = json.loads(log.path.read_text().splitlines()[-1])
    assert last["event"] == "report" and prov.audit_seq == last["seq"] == 2 and prov.audit_hmac == last["mac"]
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.provenance == prov and again.content_sha256() == report.content_sha256()
    from reports.pdf import PdfOptions, pdf_metadata

    keywords = pdf_metadata(report, deidentified=True, options=PdfOptions())["keywords"]
    assert f"audit_anchor={prov.audit_anchor}" in keywords
    assert main(["audit", "verify", "--expect", prov.audit_anchor]) == 0
    assert "matches --expect" in capsys.readouterr().out
    # the log rebuilt from scratch (new key, anchor and log): the printed anchor still exposes it
    for p in (log.path, log.key_path, log.anchor_path):
        p.unlink()
    for _ in range(3):
        log.record("open", inputs=[H])
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "verify", "--expect", prov.audit_anchor]) == 2
    capsys.readouterr()
    # reports from before the anchor existed keep their JSON and content hash
    old = Provenance(model_id="m", checkpoint_sha256=H)
    assert "audit_seq" not in old.to_dict() and Provenance.from_dict(old.to_dict()) == old
