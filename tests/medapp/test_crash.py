"""An unexpected error is one sentence and exit 3, never a traceback; its crash log holds no patient data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PHI_FOLDER = "DOE_JOHN_19570101"


def _crash_logs(home: Path) -> list[Path]:
    return sorted((home / "crash").glob("crash-*.txt"))


def test_internal_error_is_one_line_exit_3_and_a_clean_crash_log(
    tmp_path: Path, medapp_home: Path, ct_small: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import dicom_io
    from medapp.cli import main

    patient_dir = tmp_path / PHI_FOLDER
    patient_dir.mkdir()
    target = patient_dir / "CT.dcm"
    target.write_bytes(ct_small.read_bytes())

    patient = "^".join(["Doe", "John"])  # data, as a DICOM value would be: not in any source line of the traceback

    def broken_info(path, *args, **kwargs):
        raise KeyError(f"no tag for {path} of patient {patient}")

    monkeypatch.setattr(dicom_io, "info", broken_info)
    status = main(["info", str(target)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 3
    assert len(lines) == 1, err
    assert lines[0].startswith("medapp: internal error: KeyError:")
    logs = _crash_logs(medapp_home)
    assert len(logs) == 1
    assert f"(details: {logs[0]})" in lines[0]
    text = logs[0].read_text()
    assert "Traceback" not in err
    assert text.startswith("medapp crash report: no patient data") and "context info" in text
    assert "broken_info" in text and "KeyError" in text, "the log must show where it failed"
    assert PHI_FOLDER not in text and str(tmp_path) not in text
    assert "Doe^John" not in text, "a patient name inside an exception message never reaches the log"
    assert oct(logs[0].stat().st_mode & 0o777) == "0o600"


def test_user_errors_stay_exit_2_and_write_no_crash_log(tmp_path: Path, medapp_home: Path, capsys) -> None:
    from medapp.cli import main

    missing = tmp_path / "nothing-here.dcm"
    assert main(["info", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medapp: ") and "internal error" not in err and str(missing) in err
    assert _crash_logs(medapp_home) == []


def test_out_of_memory_is_one_preformatted_line(medapp_home: Path, ct_small: Path, monkeypatch, capsys) -> None:
    import dicom_io
    from medapp.cli import main
    from medapp.crash import OUT_OF_MEMORY

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(dicom_io, "info", exhausted)
    assert main(["info", str(ct_small)]) == 2
    assert capsys.readouterr().err == f"medapp: {OUT_OF_MEMORY}\n"


def test_internal_error_in_a_real_process(tmp_path: Path, ct_small: Path) -> None:
    """The installed entry point, not just `main()`: a bug in a subcommand is exit 3 and one line on stderr."""
    home = tmp_path / "home"
    code = (
        "import sys, dicom_io\n"
        "def boom(*a, **k):\n"
        "    raise ZeroDivisionError('division by zero in ' + a[0])\n"
        "dicom_io.info = boom\n"
        "from medapp.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "info", str(ct_small)],
        capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "MEDAPP_HOME": str(home)},
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "internal error: ZeroDivisionError" in proc.stderr
    (log,) = _crash_logs(home)
    assert str(ct_small) not in log.read_text()
