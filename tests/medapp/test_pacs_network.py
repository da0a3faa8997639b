"""`medapp pacs echo | find | get` against a real Orthanc on 127.0.0.1, with every other connection blocked."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from medapp.cli import main
from tests.medapp.pacs_support import (  # noqa: F401 — fixtures
    HOST,
    NetworkBlocked,
    audit_events,
    audit_text,
    copies_of,
    ct_mr_examples,
    orthanc,
    pacs_net,
    pacs_settings,
)

CT_PATIENT, MR_PATIENT = "1CT1", "4MR1"


def _find(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    assert main(["pacs", "find", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def _study_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def test_echo(pacs_settings, pacs_net, orthanc, capsys) -> None:
    assert main(["pacs", "echo"]) == 0
    assert f"{orthanc.aet}@{HOST}:{orthanc.dicom_port}: echo OK" in capsys.readouterr().out
    assert set(pacs_net.attempts) == {(HOST, orthanc.dicom_port)}  # medapp talked to the configured node only
    entry = audit_events()[-1]
    assert entry["event"] == "pacs_echo" and entry["details"]["node"] == orthanc.node


def test_find_by_patient_id_and_name_wildcard(pacs_settings, pacs_net, capsys) -> None:
    ct, mr = ct_mr_examples()
    found = _find(capsys, "--patient-id", CT_PATIENT)
    assert [s["study_uid"] for s in found] == [_study_uid(ct)]
    assert found[0]["modalities"] == "CT" and found[0]["n_instances"] == 1
    found = _find(capsys, "--name", "*MR1")
    assert [s["patient_id"] for s in found] == [MR_PATIENT]
    assert _find(capsys, "--patient-id", "NOBODY") == []


def test_find_by_date_range(pacs_settings, pacs_net, capsys) -> None:
    # CT_small was acquired 2004-01-19, MR_small 2004-08-26.
    assert [s["patient_id"] for s in _find(capsys, "--date-from", "2004-01-01", "--date-to", "2004-03-01")] == [CT_PATIENT]
    assert [s["patient_id"] for s in _find(capsys, "--date-from", "20040601")] == [MR_PATIENT]
    assert [s["patient_id"] for s in _find(capsys, "--date", "2004-08-26")] == [MR_PATIENT]
    both = _find(capsys, "--date-to", "2004-12-31")
    assert sorted(s["patient_id"] for s in both) == [CT_PATIENT, MR_PATIENT]
    assert [s["patient_id"] for s in both] == [MR_PATIENT, CT_PATIENT]  # newest first


def test_find_by_modality_and_series_level(pacs_settings, pacs_net, capsys) -> None:
    ct, mr = ct_mr_examples()
    assert [s["patient_id"] for s in _find(capsys, "--modality", "MR")] == [MR_PATIENT]
    assert [s["patient_id"] for s in _find(capsys, "--modality", "ct")] == [CT_PATIENT]
    series = _find(capsys, "--level", "series", "--study", _study_uid(ct))
    header = pydicom.dcmread(ct, stop_before_pixels=True)
    assert [s["series_uid"] for s in series] == [header.SeriesInstanceUID] and series[0]["modality"] == "CT"


def test_find_by_accession(pacs_settings, pacs_net, orthanc, capsys) -> None:
    ct, _ = ct_mr_examples()
    [blob] = copies_of(ct, 1, AccessionNumber="ACC-77", StudyDate="20240305")
    orthanc.upload(blob)
    found = _find(capsys, "--accession", "ACC-77")
    assert [(s["accession"], s["study_date"]) for s in found] == [("ACC-77", "20240305")]
    assert _find(capsys, "--accession", "ACC-7") == []  # exact match without a wildcard
    assert [s["accession"] for s in _find(capsys, "--accession", "ACC-7*")] == ["ACC-77"]


def test_find_table_and_audit_hold_no_patient_data_in_audit(pacs_settings, pacs_net, capsys) -> None:
    assert main(["pacs", "find", "--patient-id", CT_PATIENT]) == 0
    out = capsys.readouterr().out
    assert "PATIENT ID" in out.splitlines()[0] and CT_PATIENT in out  # the user sees the match
    entry = audit_events()[-1]
    assert entry["event"] == "pacs_find" and entry["details"]["filters"] == ["patient_id"]
    assert entry["details"]["n_results"] == 1
    assert CT_PATIENT not in audit_text() and "CompressedSamples" not in audit_text()


def test_get_study_into_cache_open_and_get_again(pacs_settings, pacs_net, orthanc, tmp_path, capsys) -> None:
    import dicom_io

    ct, _ = ct_mr_examples()
    study = _study_uid(ct)
    cache = tmp_path / "cache"
    assert main(["pacs", "get", study, "-o", str(cache)]) == 0
    assert "1 retrieved now, 0 already in the cache" in capsys.readouterr().out
    files = sorted((cache / study).rglob("*.dcm"))
    original = pydicom.dcmread(ct)
    assert [f.name for f in files] == [f"{original.SOPInstanceUID}.dcm"]
    got = pydicom.dcmread(files[0])
    assert got.PatientID == CT_PATIENT and (got.pixel_array == original.pixel_array).all()
    opened = dicom_io.open_path(cache / study)  # the study folder, as the window opens it
    [patient] = opened.patients
    [study_node] = patient.studies
    [series] = study_node.series
    assert study_node.uid == study and series.uid == original.SeriesInstanceUID
    stack = series.open()
    assert stack.n_frames == 1 and stack.metadata["modality"] == "CT" and stack.render().shape == (128, 128)
    stamp = files[0].stat().st_mtime_ns

    assert main(["pacs", "get", study, "-o", str(cache)]) == 0
    assert "0 retrieved now, 1 already in the cache" in capsys.readouterr().out
    assert sorted((cache / study).rglob("*.dcm")) == files and files[0].stat().st_mtime_ns == stamp
    gets = [e for e in audit_events() if e["event"] == "pacs_get"]
    assert [(g["details"]["n_received"], g["details"]["n_cached"]) for g in gets] == [(1, 0), (0, 1)]
    assert gets[0]["details"]["study_uid"] == study and gets[0]["details"]["node"] == orthanc.node
    assert CT_PATIENT not in audit_text()
    assert {a for a in pacs_net.attempts} == {(HOST, orthanc.dicom_port)}


def test_get_by_move_to_our_storage_scp(pacs_settings, pacs_net, tmp_path, capsys) -> None:
    _, mr = ct_mr_examples()
    study = _study_uid(mr)
    assert main(["pacs", "get", study, "-o", str(tmp_path), "--retrieve", "move"]) == 0
    assert "1 retrieved now" in capsys.readouterr().out
    [path] = (tmp_path / study).rglob("*.dcm")
    assert pydicom.dcmread(path).PatientID == MR_PATIENT
    assert audit_events()[-1]["details"]["retrieve"] == "move"


def test_partial_cache_is_completed_not_duplicated(pacs_settings, pacs_net, orthanc, tmp_path) -> None:
    """Damage a cache the ways a crash would (lost file, changed file, stray temp and unindexed files): the next
    get drops what it cannot vouch for, fetches only that, and ends with exactly the study's instances."""
    from medapp.jobs.pacs import pacs_get
    from medapp.pacs.cache import StudyCache
    from medapp.pacs.config import resolve_node
    from medapp.settings import Settings

    ct, _ = ct_mr_examples()
    blobs = copies_of(ct, 4)
    for blob in blobs:
        orthanc.upload(blob)
    study = str(pydicom.dcmread(__import__("io").BytesIO(blobs[0])).StudyInstanceUID)
    settings = Settings.load()
    node = resolve_node(settings)
    first = pacs_get(node, study, tmp_path, settings=settings)
    assert (first.expected, first.received, first.already) == (4, 4, 0)
    files = sorted(first.files)
    files[0].unlink()  # lost
    files[1].write_bytes(files[1].read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    (files[2].parent / "1.2.3.dcm.part").write_bytes(b"half")  # a temp file left by a crash
    (files[2].parent / "1.2.4.dcm").write_bytes(b"renamed but never indexed")

    seen: list[tuple[int, int]] = []
    second = pacs_get(node, study, tmp_path, settings=settings, progress=lambda p: seen.append((p.done, p.total)))
    assert (second.expected, second.received, second.already) == (4, 2, 2)
    assert seen[0] == (2, 4) and seen[-1] == (4, 4)
    on_disk = sorted(p for p in (tmp_path / study).rglob("*") if p.is_file() and not p.name.startswith("."))
    assert on_disk == files
    with StudyCache(tmp_path, study).open() as cache:
        assert len(cache.entries) == 4
    assert pydicom.dcmread(files[1]).SOPInstanceUID == files[1].stem


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["get", "not-a-uid", "-o", "{tmp}"], "not a DICOM UID"),
        (["get", "1.2.3", "-o", "{tmp}", "--series", "x/../y"], "not a DICOM UID"),
        (["get", "1.2.3", "-o", "{tmp}/missing/deeper"], "does not exist"),
        (["get", "1.2.3.4.5.6.7", "-o", "{tmp}"], "has no study 1.2.3.4.5.6.7"),
        (["find", "--date-from", "2024-13-01"], "is not a date"),
        (["find", "--date-from", "2024-02-01", "--date-to", "2024-01-01"], "is after"),
        (["find", "--modality", "C T"], "not a DICOM modality code"),
        (["find", "--patient-id", "A\\B"], "backslash"),
        (["find", "--level", "series"], "--study"),
        (["find", "--node", "nowhere"], "no PACS node named 'nowhere'"),
        (["echo", "--pacs", "TOO-LONG-AE-TITLE-X@127.0.0.1:104"], "AE title"),
        (["echo", "--pacs", "PACS@127.0.0.1:70000"], "port"),
    ],
)
def test_bad_input_is_one_line(pacs_settings, pacs_net, tmp_path, capsys, argv, fragment) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["pacs", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medapp: ") and fragment in err and "\n" not in err and "Traceback" not in err


def test_guard_blocks_other_addresses(pacs_net, medapp_home, capsys) -> None:
    """The offline guard is real: a node that is not the test PACS cannot be reached (and says so in one line)."""
    import socket

    with pytest.raises(NetworkBlocked):
        socket.create_connection(("192.0.2.1", 104), timeout=1)  # TEST-NET-1, never routed
    assert main(["pacs", "echo", "--pacs", "PACS@192.0.2.1:104"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medapp: PACS@192.0.2.1:104: cannot open an association") and "\n" not in err
    assert "only 127.0.0.1 is allowed" in err  # stopped by the guard before any packet left


def test_a_whole_cli_process_reaches_only_the_configured_node(pacs_settings, orthanc, medapp_home, tmp_path) -> None:
    """`medapp pacs find` and `get` as real processes whose sockets may reach only 127.0.0.1:<Orthanc's DICOM port>."""
    import os
    import subprocess
    import sys

    prelude = (
        "import socket\n"
        f"ALLOWED = {{('{HOST}', {orthanc.dicom_port})}}\n"
        "_connect, _gai = socket.socket.connect, socket.getaddrinfo\n"
        "def connect(sock, address):\n"
        "    if (address[0], address[1]) not in ALLOWED:\n"
        "        raise OSError(f'blocked connection to {address}')\n"
        "    return _connect(sock, address)\n"
        "def getaddrinfo(host, *a, **k):\n"
        f"    if host not in ('{HOST}', None, ''):\n"
        "        raise OSError(f'blocked name lookup of {host}')\n"
        "    return _gai(host, *a, **k)\n"
        "socket.socket.connect = connect\n"
        "socket.getaddrinfo = getaddrinfo\n"
        "socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(OSError('blocked'))\n"
        "import sys\nfrom medapp.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    ct, _ = ct_mr_examples()
    env = {**os.environ, "MEDAPP_HOME": str(medapp_home)}
    run = [sys.executable, "-c", prelude]
    argv = ["pacs", "find", "--modality", "CT", "--date-to", "2004-12-31", "--json"]
    found = subprocess.run([*run, *argv], capture_output=True, text=True, env=env, timeout=120)
    assert found.returncode == 0, found.stderr
    assert [s["patient_id"] for s in json.loads(found.stdout)] == [CT_PATIENT]
    got = subprocess.run([*run, "pacs", "get", _study_uid(ct), "-o", str(tmp_path / "c")], capture_output=True,
                         text=True, env=env, timeout=120)
    assert got.returncode == 0, got.stderr
    assert len(list((tmp_path / "c").rglob("*.dcm"))) == 1
