"""PACS settings and node addresses: one sentence per bad value, before any connection is tried (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medapp import paths
from medapp.errors import UserError
from medapp.pacs import PacsError, parse_node
from medapp.pacs.config import local_ae, resolve_node
from medapp.settings import Settings

NODE = {"name": "main", "ae_title": "PACS", "host": "10.0.0.5", "port": 104}


def test_defaults_and_round_trip(medapp_home: Path, no_network) -> None:
    s = Settings()
    assert (s.pacs_ae_title, s.pacs_port, s.pacs_nodes) == ("MEDAPP", 11112, [])
    saved = s.updated(pacs_nodes=[NODE, {**NODE, "name": "move", "retrieve": "move", "port": 11113}],
                      pacs_default_node="move")
    saved.save()
    again = Settings.load()
    assert again == saved
    node = resolve_node(again)
    assert (str(node), node.retrieve, node.name) == ("PACS@10.0.0.5:11113", "move", "move")
    assert resolve_node(again, name="main").port == 104
    assert str(resolve_node(again, pacs="OTHER@127.0.0.1:4242")) == "OTHER@127.0.0.1:4242"  # --pacs wins
    assert local_ae(again).ae_title == "MEDAPP"


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("pacs_ae_title", "", "AE title"),
        ("pacs_ae_title", "SEVENTEEN-CHARS-X", "AE title"),
        ("pacs_ae_title", "A\\B", "AE title"),
        ("pacs_port", 0, "from 1 to 65535"),
        ("pacs_timeout", 0, "above 0.0"),
        ("pacs_listen_address", "not a host!", "host name or an IP address"),
        ("pacs_nodes", {"name": "x"}, "must be a list of nodes"),
        ("pacs_nodes", [{**NODE, "port": 99999}], "node 'main': port must be a port number"),
        ("pacs_nodes", [{**NODE, "host": "a b"}], "node 'main': host"),
        ("pacs_nodes", [{**NODE, "aet": "X"}], "node keys must be among"),
        ("pacs_nodes", [{**NODE, "retrieve": "push"}], "retrieve must be one of get, move"),
        ("pacs_nodes", [NODE, NODE], "two nodes named 'main'"),
        ("pacs_nodes", [{**NODE, "tls": {"ca_file": "/nonexistent/ca.pem"}}], "tls.ca_file must name an existing file"),
        ("pacs_nodes", [{k: v for k, v in NODE.items() if k != "name"}], "needs a name"),
    ],
)
def test_bad_values_name_the_setting(medapp_home: Path, key: str, value: object, fragment: str) -> None:
    paths.settings_path().parent.mkdir(parents=True, exist_ok=True)
    paths.settings_path().write_text(json.dumps({key: value}))
    with pytest.raises(UserError) as info:
        Settings.load()
    assert f"setting {key!r}" in str(info.value) and fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PACS@10.0.0.5:104", ("PACS", "10.0.0.5", 104)),
        ("ORTHANC@pacs.hospital.example:4242", ("ORTHANC", "pacs.hospital.example", 4242)),
        ("AE WITH SPACE@[::1]:11112", ("AE WITH SPACE", "::1", 11112)),
    ],
)
def test_parse_node(text: str, expected: tuple[str, str, int]) -> None:
    node = parse_node(text)
    assert (node.ae_title, node.host, node.port) == expected
    assert parse_node(str(node)) == node  # str() is the same address form


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("PACS", "expected AET@HOST:PORT"),
        ("PACS@host", "expected AET@HOST:PORT"),
        ("@host:104", "expected AET@HOST:PORT"),
        ("PACS@host:0", "port"),
        ("PACS@bad_host!:104", "host"),
        ("WAY-TOO-LONG-AE-TITLE@h:1", "AE title"),
    ],
)
def test_parse_node_errors(text: str, fragment: str) -> None:
    with pytest.raises(PacsError) as info:
        parse_node(text)
    assert fragment in str(info.value)


def test_resolve_node_without_nodes_or_with_a_wrong_name(medapp_home: Path) -> None:
    with pytest.raises(PacsError, match="no PACS node configured"):
        resolve_node(Settings())
    with pytest.raises(PacsError, match=r"no PACS node named 'x' in the settings \(configured: main\)"):
        resolve_node(Settings(pacs_nodes=[NODE], pacs_default_node="x"))


def test_tls_context_verifies_the_peer(tmp_path: Path) -> None:
    import ssl

    from medapp.pacs.nodes import TlsOptions

    ctx = TlsOptions().context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(PacsError, match="TLS: cannot load"):
        TlsOptions(ca_file=str(bad)).context()


def test_pacs_modules_import_neither_torch_nor_qt_nor_pynetdicom_up_front() -> None:
    """medapp.pacs is torch-free and Qt-free; pynetdicom loads only when a command talks to the network."""
    import subprocess
    import sys

    code = ("import sys, medapp.pacs, medapp.pacs.config, medapp.jobs.pacs, medapp.cli.pacs, reports.dicom_sr\n"
            "bad = [m for m in ('torch', 'PySide6', 'pynetdicom', 'transformers') if m in sys.modules]\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_missing_orthanc_fails_the_pacs_tests_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tests.medapp import pacs_support

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"Orthanc is not installed.*apt-get install orthanc"):
        pacs_support.orthanc_binary(candidates=("/nonexistent/Orthanc",))


def test_the_storage_scp_listens_only_on_the_route_to_the_pacs_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C-MOVE storage SCP binds the one local address the PACS is routed through, not 0.0.0.0."""
    from medapp.pacs.nodes import LocalAE, route_address

    assert LocalAE().listen_address == "" and Settings().pacs_listen_address == ""
    assert route_address("127.0.0.1", 104) == "127.0.0.1"  # loopback PACS: loopback only
    assert route_address("::1", 104) in ("::1", "0.0.0.0")  # IPv6 loopback (0.0.0.0 where IPv6 is off)

    def unresolvable(*_a: object, **_k: object) -> None:
        raise OSError("no such host")

    monkeypatch.setattr("socket.getaddrinfo", unresolvable)
    assert route_address("pacs.example", 104) == "0.0.0.0"  # the association will name the problem
    assert Settings().updated(pacs_listen_address="0.0.0.0").pacs_listen_address == "0.0.0.0"  # explicit is kept
