"""A real Orthanc PACS for the PACS tests, on free 127.0.0.1 ports with a temporary configuration, and a network
guard that lets connections reach that Orthanc and nothing else.

Why a process per test session and not the system service the Debian package installs: the tests must not depend on
(or disturb) a machine's configured PACS, and they need settings a real site would not use (our AE as a known
modality, the called AE title checked). Missing Orthanc is a test failure with the fix in the message, not a skip.
Imported by the test modules (``from tests.medapp.pacs_support import ...``); fixtures are plain functions here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ORTHANC_AET = "ORTHANCTEST"
MEDAPP_AET = "MEDAPP"
HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (bound to 127.0.0.1 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def orthanc_binary(candidates: tuple[str, ...] = ("/usr/sbin/Orthanc",)) -> str:
    """The Orthanc executable; a test failure (not a skip) with the fix when it is missing."""
    path = shutil.which("Orthanc") or next((c for c in candidates if Path(c).is_file()), None)
    if path is None:
        pytest.fail("Orthanc is not installed, so the PACS tests cannot run: `./run.sh test` installs it "
                    "(apt-get install orthanc)", pytrace=False)
    return path


@dataclass
class Orthanc:
    """One Orthanc process: its DICOM and REST ports, folder, and helpers to talk to its REST API."""

    folder: Path
    dicom_port: int
    http_port: int
    medapp_port: int
    aet: str = ORTHANC_AET
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.folder / "orthanc.log"

    @property
    def node(self) -> str:
        return f"{self.aet}@{HOST}:{self.dicom_port}"

    def config(self) -> dict[str, Any]:
        return {
            "Name": "medapp-tests",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SslEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": False,
            "DicomModalities": {"medapp": [MEDAPP_AET, HOST, self.medapp_port]},
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomScpTimeout": 30,
            "DicomAssociationCloseDelay": 0,
            "Plugins": [],
            "StableAge": 1,
            "HttpTimeout": 10,
        }

    def start(self, timeout: float = 60.0) -> None:
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        cfg = self.folder / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=2))
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([orthanc_binary(), str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"Orthanc exited at start-up (code {self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                self.rest("/system")
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"Orthanc's REST API did not answer within {timeout:g} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL: the PACS dies without closing its associations cleanly."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def rest(self, path: str, data: bytes | None = None, method: str | None = None) -> Any:
        req = urllib.request.Request(f"http://{HOST}:{self.http_port}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=10) as rsp:
            body = rsp.read()
        ctype = rsp.headers.get("Content-Type", "")
        return json.loads(body) if "json" in ctype else body

    def upload(self, path_or_bytes: Path | bytes) -> dict[str, Any]:
        data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
        return self.rest("/instances", data=data, method="POST")

    def study_instances(self, study_uid: str) -> list[dict[str, Any]]:
        """Every instance of a study, with its main DICOM tags, via /tools/find."""
        query = json.dumps({"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}, "Expand": True}).encode()
        req = urllib.request.Request(f"http://{HOST}:{self.http_port}/tools/find", data=query, method="POST")
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return json.loads(rsp.read())


def study_datasets(server: Orthanc, study_uid: str) -> list[Any]:
    """Every object of a study as Orthanc stores it, read back with pydicom from ``/instances/{id}/file``."""
    import io

    import pydicom

    return [pydicom.dcmread(io.BytesIO(server.rest(f"/instances/{inst['ID']}/file")))
            for inst in server.study_instances(study_uid)]


def start_orthanc(folder: Path) -> Orthanc:
    folder.mkdir(parents=True, exist_ok=True)
    server = Orthanc(folder, free_port(), free_port(), free_port())
    server.start()
    return server


class NetworkBlocked(OSError):
    """A connection to an address that is not the test's PACS: the network policy was broken."""


class NetworkGuard:
    """Patches socket so connections go only to the allowed (127.0.0.1, port) pairs; records every attempt."""

    def __init__(self, allowed: set[tuple[str, int]]) -> None:
        self.allowed = set(allowed)
        self.attempts: list[tuple[str, int]] = []

    def check(self, address: Any) -> None:
        host, port = (address[0], int(address[1])) if isinstance(address, tuple) else (str(address), -1)
        self.attempts.append((host, port))
        if (host, port) not in self.allowed:
            raise NetworkBlocked(f"connection to {host}:{port} attempted; only the configured PACS is allowed")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> NetworkGuard:
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo
        real_create = socket.create_connection
        guard = self

        def connect(sock: socket.socket, address: Any) -> None:
            guard.check(address)
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            guard.check(address)
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in (HOST, None, "", "0.0.0.0"):  # numeric local addresses only: no name lookup
                raise NetworkBlocked(f"name lookup of {host!r} attempted; only 127.0.0.1 is allowed")
            return real_getaddrinfo(host, *args, **kwargs)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
            guard.check(address)
            return real_create(address, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)
        return self


def ct_mr_examples() -> tuple[Path, Path]:
    from pydicom import examples

    return Path(examples.get_path("ct")), Path(examples.get_path("mr"))


def copies_of(path: Path, n: int, **attributes: Any) -> list[bytes]:
    """`n` new instances of one series made from one file (new SOP Instance UIDs, numbered): a multi-instance study
    of its own patient and date (so searches for the original examples still find exactly those), with any other
    `attributes` set (e.g. AccessionNumber)."""
    import io
    import uuid

    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(path)
    ds.PatientID = f"COPY-{uuid.uuid4().hex[:8]}"
    ds.PatientName = "Copy^Test"
    ds.StudyDate = "20250101"  # outside the examples' 2004 dates
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    out = []
    for i in range(n):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


# --- fixtures (import them into a test module: `from tests.medapp.pacs_support import orthanc, pacs_net, ...`) ----


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """A running Orthanc holding pydicom's CT and MR examples; stopped when the module's tests are done."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        ct, mr = ct_mr_examples()
        server.upload(ct)
        server.upload(mr)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pacs_net(orthanc: Orthanc, monkeypatch: pytest.MonkeyPatch) -> NetworkGuard:
    """Like `no_network`, but connections to the test Orthanc (DICOM port, and the REST port the tests themselves
    use to look inside it) pass; every other connection and every name lookup raises."""
    return NetworkGuard({(HOST, orthanc.dicom_port), (HOST, orthanc.http_port)}).install(monkeypatch)


def write_pacs_settings(orthanc: Orthanc, **extra: Any) -> Path:
    """The user's settings file with the test Orthanc as the only (default) node and short timeouts."""
    from medapp import paths

    path = paths.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "pacs_ae_title": MEDAPP_AET,
        "pacs_port": orthanc.medapp_port,
        "pacs_listen_address": HOST,
        "pacs_timeout": 15.0,
        "pacs_nodes": [{"name": "test-orthanc", "ae_title": orthanc.aet, "host": HOST, "port": orthanc.dicom_port}],
        **extra,
    }
    path.write_text(json.dumps(settings))
    return path


@pytest.fixture
def pacs_settings(orthanc: Orthanc, medapp_home: Path) -> Path:
    return write_pacs_settings(orthanc)


def audit_text() -> str:
    from medapp import paths

    return paths.audit_path().read_text(encoding="utf-8")


def audit_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit_text().splitlines()]
