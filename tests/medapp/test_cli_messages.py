"""Warnings and refusals the command line must show (issue #10 item 8): a flat-rendering header in `medapp render`,
an unreadable folder in `medapp caption`."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from pydicom import examples

from medapp.cli import main


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_render_says_why_the_image_is_flat(tmp_path: Path, medapp_home: Path, capsys) -> None:
    ds = pydicom.dcmread(examples.get_path("ct"))
    ds.RescaleSlope = "0"
    src = tmp_path / "slope0.dcm"
    ds.save_as(src)
    assert main(["render", str(src), "-o", str(tmp_path / "out.png")]) == 0
    captured = capsys.readouterr()
    assert "medapp: warning: RescaleSlope is 0" in captured.err
    assert captured.out.startswith(str(tmp_path / "out.png"))


def test_caption_of_an_unreadable_folder_says_permission_denied(tmp_path: Path, monkeypatch) -> None:
    from medapp.errors import UserError
    from medapp.jobs.caption import input_files

    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"x")
    real = os.scandir

    def scandir(path=".", *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(os.fsdecode(path)) == folder:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(UserError, match="cannot list this folder: permission denied"):
        input_files(folder)
