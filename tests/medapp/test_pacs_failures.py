"""Bad peers, each one clear error and a consistent cache: nothing listening, a wrong called AE title, a PACS
killed while a C-GET streams, a malformed C-FIND answer, and a peer that never answers (timeout)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pydicom
import pytest

from medapp.cli import main
from medapp.pacs.errors import PacsError
from tests.medapp.pacs_support import (  # noqa: F401 — fixtures
    HOST,
    MEDAPP_AET,
    audit_events,
    copies_of,
    ct_mr_examples,
    free_port,
    orthanc,
    pacs_net,
    pacs_settings,
    start_orthanc,
    write_pacs_settings,
)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("medapp: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_nothing_listening_is_one_error(pacs_settings, pacs_net, orthanc, capsys) -> None:
    import logging

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    app_handler = Collect()  # what an application's root handler (the window's log file) would receive
    logging.getLogger().addHandler(app_handler)
    port = free_port()
    pacs_net.allowed.add((HOST, port))  # allowed, but nobody is there
    try:
        assert main(["pacs", "echo", "--pacs", f"{orthanc.aet}@{HOST}:{port}"]) == 2
    finally:
        logging.getLogger().removeHandler(app_handler)
    err = _one_line(capsys)
    assert "cannot connect" in err and "Connection refused" in err
    assert audit_events()[-1]["details"]["error"] == "PacsError"
    # pynetdicom's records (at debug level they dump datasets) never reach the application's handlers
    assert not [r for r in app_handler.records if r.name.startswith("pynetdicom")]


def test_wrong_called_ae_title_is_rejected(pacs_settings, pacs_net, orthanc, capsys) -> None:
    assert main(["pacs", "find", "--pacs", f"NOTORTHANC@{HOST}:{orthanc.dicom_port}"]) == 2
    err = _one_line(capsys)
    assert "rejected the association" in err and "NOTORTHANC" in err


def test_unknown_calling_ae_title_is_rejected(orthanc, pacs_net, medapp_home, capsys) -> None:
    """Orthanc accepts the association but refuses the C-FIND from an AE it does not know (it aborts)."""
    write_pacs_settings(orthanc, pacs_ae_title="STRANGER")  # Orthanc only knows MEDAPP
    assert main(["pacs", "find"]) == 2
    err = _one_line(capsys)
    assert "aborted the association during the study search" in err and "STRANGER" in err


@pytest.fixture
def doomed_orthanc(tmp_path: Path, medapp_home: Path, monkeypatch: pytest.MonkeyPatch):
    """A second Orthanc of its own (this test kills it), holding one 6-instance study."""
    server = start_orthanc(tmp_path / "doomed")
    ct, _ = ct_mr_examples()
    blobs = copies_of(ct, 6)
    for blob in blobs:
        server.upload(blob)
    write_pacs_settings(server)
    from tests.medapp.pacs_support import NetworkGuard

    NetworkGuard({(HOST, server.dicom_port), (HOST, server.http_port)}).install(monkeypatch)
    try:
        yield server, str(pydicom.dcmread(io.BytesIO(blobs[0])).StudyInstanceUID)
    finally:
        server.stop()


def test_pacs_killed_mid_retrieve_leaves_a_consistent_cache_then_resumes(doomed_orthanc, tmp_path: Path) -> None:
    from medapp.audit import AuditLog
    from medapp.jobs.pacs import pacs_get
    from medapp.pacs.cache import StudyCache
    from medapp.pacs.config import resolve_node
    from medapp.settings import Settings

    server, study = doomed_orthanc
    settings = Settings.load()
    audit = AuditLog.from_settings(settings)
    node = resolve_node(settings)
    cache_root = tmp_path / "cache"

    def kill_on_first_instance(p) -> None:
        if p.done >= 1 and server.process.poll() is None:
            server.kill()

    with pytest.raises(PacsError) as info:
        pacs_get(node, study, cache_root, settings=settings, audit=audit, progress=kill_on_first_instance)
    message = str(info.value)
    assert "run the same retrieve again" in message and "\n" not in message
    with StudyCache(cache_root, study).open() as cache:  # verifies every indexed file's size and SHA-256
        n_before = len(cache.entries)
        on_disk = sorted(p for p in cache.folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        assert on_disk == cache.files() and not list(cache.folder.rglob("*.part"))
    assert 1 <= n_before < 6

    server.start()  # same storage: the PACS is back
    result = pacs_get(node, study, cache_root, settings=settings, audit=audit)
    assert (result.expected, result.already, result.received) == (6, n_before, 6 - n_before)
    files = sorted(cache_root.rglob("*.dcm"))
    assert len(files) == 6 and len({pydicom.dcmread(f).SOPInstanceUID for f in files}) == 6
    failed, done = [e for e in audit_events() if e["event"] == "pacs_get"]
    assert failed["details"]["error"] == "PacsError" and "error" not in done["details"]


# --- a misbehaving peer: a pynetdicom SCP of our own, on 127.0.0.1 ---------------------------------------------------


@pytest.fixture
def bad_peer(medapp_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Start a fake PACS whose C-FIND handler the test sets: `(port, set_handler)`."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    from tests.medapp.pacs_support import NetworkGuard

    behaviour: dict[str, object] = {}

    def on_find(event):
        yield from behaviour["find"](event)

    ae = AE(ae_title="BADPEER")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context("1.2.840.10008.1.1")
    ae.add_supported_context("1.2.840.10008.5.1.4.1.1.2")  # CT storage, but no C-GET / C-MOVE service
    port = free_port()
    server = ae.start_server((HOST, port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find)])
    NetworkGuard({(HOST, port)}).install(monkeypatch)
    try:
        yield port, behaviour
    finally:
        server.shutdown()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the fake peer's bad UID, on purpose
def test_malformed_find_answer_is_one_error(bad_peer, capsys) -> None:
    from pydicom.dataset import Dataset

    port, behaviour = bad_peer

    def find(event):
        match = Dataset()
        match.QueryRetrieveLevel = "STUDY"
        match.StudyInstanceUID = "not/a/uid"
        yield 0xFF00, match
        yield 0x0000, None

    behaviour["find"] = find
    assert main(["pacs", "find", "--pacs", f"BADPEER@{HOST}:{port}"]) == 2
    assert "without a valid Study Instance UID" in _one_line(capsys)


def test_peer_that_never_answers_times_out(bad_peer, medapp_home, capsys) -> None:
    import json

    from medapp import paths

    port, behaviour = bad_peer
    release = threading.Event()

    def find(event):
        release.wait(20)  # longer than pacs_timeout: the client must give up on its own
        yield 0x0000, None

    behaviour["find"] = find
    paths.settings_path().parent.mkdir(parents=True, exist_ok=True)
    paths.settings_path().write_text(json.dumps({"pacs_timeout": 1.0, "pacs_ae_title": MEDAPP_AET}))
    try:
        started = time.monotonic()
        assert main(["pacs", "find", "--pacs", f"BADPEER@{HOST}:{port}"]) == 2
        assert time.monotonic() - started < 15  # it gave up; the exact time is pynetdicom's business
    finally:
        release.set()
    assert "no answer within 1 s during the study search (timed out)" in _one_line(capsys)


def test_cancel_mid_retrieve_keeps_what_arrived(orthanc, pacs_settings, pacs_net, tmp_path: Path) -> None:
    from medapp.jobs.pacs import pacs_get
    from medapp.pacs.cache import StudyCache
    from medapp.pacs.config import resolve_node
    from medapp.pacs.errors import RetrieveCancelled
    from medapp.settings import Settings

    ct, _ = ct_mr_examples()
    blobs = copies_of(ct, 5)
    for blob in blobs:
        orthanc.upload(blob)
    study = str(pydicom.dcmread(io.BytesIO(blobs[0])).StudyInstanceUID)
    settings = Settings.load()
    cancel = threading.Event()

    def cancel_after_two(p) -> None:
        if p.done >= 2:
            cancel.set()

    with pytest.raises(RetrieveCancelled, match="cancelled"):
        pacs_get(resolve_node(settings), study, tmp_path, settings=settings, progress=cancel_after_two, cancel=cancel)
    with StudyCache(tmp_path, study).open() as cache:
        assert 2 <= len(cache.entries) < 5
        assert sorted(p for p in cache.folder.rglob("*") if p.is_file() and not p.name.startswith(".")) == cache.files()
    again = pacs_get(resolve_node(settings), study, tmp_path, settings=settings)
    assert again.expected == 5 and again.received + again.already == 5 and again.received < 5


def test_a_pacs_without_c_get_says_to_use_move(bad_peer, tmp_path: Path, capsys) -> None:
    from pydicom.dataset import Dataset

    port, behaviour = bad_peer

    def find(event):
        level = event.identifier.QueryRetrieveLevel
        match = Dataset()
        match.QueryRetrieveLevel = level
        match.StudyInstanceUID = "1.2.3"
        match.SeriesInstanceUID = "1.2.3.4"
        if level == "IMAGE":
            match.SOPInstanceUID = "1.2.3.4.5"
        yield 0xFF00, match
        yield 0x0000, None

    behaviour["find"] = find
    assert main(["pacs", "get", "1.2.3", "-o", str(tmp_path), "--pacs", f"BADPEER@{HOST}:{port}"]) == 2
    err = _one_line(capsys)
    assert "does not offer C-GET" in err and "--retrieve move" in err
