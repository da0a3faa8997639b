"""Fixtures for the app core: an isolated MEDAPP_HOME per test, and inputs built from real libraries."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def medapp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every per-user file (settings, session, audit) into a fresh folder."""
    home = tmp_path / "home"
    monkeypatch.setenv("MEDAPP_HOME", str(home))
    return home


class NetworkBlocked(OSError):
    """Raised by the patched socket functions: any attempt to reach the network is a test failure."""


def _blocked(*args: object, **kwargs: object) -> None:
    raise NetworkBlocked("network access attempted while medapp must be offline")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every outgoing connection and name lookup raise (connect, connect_ex, create_connection, getaddrinfo)."""
    import socket

    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    monkeypatch.setattr(socket, "getaddrinfo", _blocked)


# Prepended to a `python -c` run so a whole CLI process (imports, model load, job) runs with the network blocked.
BLOCK_NETWORK_PRELUDE = (
    "import socket\n"
    "def _blocked(*a, **k):\n"
    "    raise OSError('network access attempted while medapp must be offline')\n"
    "socket.socket.connect = socket.socket.connect_ex = _blocked\n"
    "socket.create_connection = socket.getaddrinfo = _blocked\n"
)


@pytest.fixture(scope="session")
def block_network_prelude() -> str:
    return BLOCK_NETWORK_PRELUDE


@pytest.fixture
def cli_engine(tiny_engine, monkeypatch: pytest.MonkeyPatch):
    """In-process CLI runs reuse the session's engine instead of loading the checkpoint again per command (the
    subprocess tests load it for real)."""
    from medapp.model_holder import ModelHolder

    monkeypatch.setattr(ModelHolder, "get", lambda self: tiny_engine)
    return tiny_engine


@pytest.fixture(scope="session")
def ct_small() -> Path:
    """pydicom's bundled CT_small.dcm (128x128 CT, explicit VR little endian), found inside the installed wheel."""
    from pydicom import examples

    return Path(examples.get_path("ct"))


@pytest.fixture
def mixed_folder(tmp_path: Path, golden_dir: Path, ct_small: Path, tiled_tiff_slide: Path) -> Path:
    """What a clinician might drop on the batch dialog: two PNGs, two DICOMs (one in a subfolder), a pyramidal
    slide and one truncated DICOM."""
    import shutil

    from pydicom import examples

    folder = tmp_path / "batch"
    (folder / "mr").mkdir(parents=True)
    for name in ("pub_224x224.png", "pub_1000x250_wide.png"):
        shutil.copy(golden_dir / "cases-v2" / name, folder / name)
    shutil.copy(ct_small, folder / "ct_small.dcm")
    shutil.copy(examples.get_path("mr"), folder / "mr" / "mr_small.dcm")
    (folder / "slide.tif").symlink_to(tiled_tiff_slide)
    data = ct_small.read_bytes()
    (folder / "broken.dcm").write_bytes(data[: len(data) // 3])  # header intact, pixel data cut short
    return folder
