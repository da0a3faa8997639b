"""`medapp audit verify`: exit 0 on an intact log; exit 2 and the broken line's number after one edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from medapp.audit import AuditLog
from medapp.cli import main

H = "cd" * 32


def test_verify_intact_then_edited(medapp_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog()  # the default location under MEDAPP_HOME
    for i in range(3):
        log.record("open", inputs=[H], kind="dicom", frames=i + 1)
    assert main(["audit", "verify"]) == 0
    assert "3 entries" in capsys.readouterr().out

    lines = log.path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"frames":2', '"frames":5')
    log.path.write_text("".join(lines))
    assert main(["audit", "verify", str(log.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medapp: ") and "line 2:" in err and "\n" not in err


def test_verify_missing_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path / "none.jsonl")]) == 2
    assert "no audit log there" in capsys.readouterr().err
