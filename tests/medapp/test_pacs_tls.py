"""DICOM TLS: a node with `tls` verifies the peer's certificate against the configured CA (a pynetdicom TLS SCP on
127.0.0.1 with certificates made here by the openssl command); a wrong CA is one clear error."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from medapp.cli import main
from tests.medapp.pacs_support import HOST, NetworkGuard, free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for IP 127.0.0.1 signed by it, and an unrelated second CA."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make test certificates (apt-get install openssl)", pytrace=False)
    d = tmp_path_factory.mktemp("tls")
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=medapp test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem", cwd=d)
    return {"ca": d / "ca.pem", "other_ca": d / "other_ca.pem", "server": d / "server.pem",
            "server_key": d / "server.key"}


@pytest.fixture
def tls_peer(certs, medapp_home: Path, monkeypatch: pytest.MonkeyPatch):
    """A pynetdicom Verification SCP speaking TLS on a free 127.0.0.1 port."""
    from pynetdicom import AE

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["server"], certs["server_key"])
    ae = AE(ae_title="TLSPACS")
    ae.add_supported_context("1.2.840.10008.1.1")
    port = free_port()
    server = ae.start_server((HOST, port), block=False, ssl_context=context)
    NetworkGuard({(HOST, port)}).install(monkeypatch)
    try:
        yield port
    finally:
        server.shutdown()


def _settings(medapp_home: Path, port: int, ca: Path) -> None:
    import json

    from medapp import paths

    paths.settings_path().parent.mkdir(parents=True, exist_ok=True)
    node = {"name": "tls", "ae_title": "TLSPACS", "host": HOST, "port": port, "tls": {"ca_file": str(ca)}}
    paths.settings_path().write_text(json.dumps({"pacs_nodes": [node], "pacs_timeout": 10.0}))


def test_echo_over_tls_with_the_right_ca(tls_peer, certs, medapp_home, capsys) -> None:
    _settings(medapp_home, tls_peer, certs["ca"])
    assert main(["pacs", "echo"]) == 0
    assert f"TLSPACS@{HOST}:{tls_peer}: echo OK" in capsys.readouterr().out


def test_a_certificate_from_another_ca_is_refused(tls_peer, certs, medapp_home, capsys) -> None:
    _settings(medapp_home, tls_peer, certs["other_ca"])
    assert main(["pacs", "echo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medapp: ") and "\n" not in err and "certificate verify failed" in err
    assert "check the node's TLS CA" in err
