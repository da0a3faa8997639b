"""Messages that used to be missing or wrong (issue #10 item 8): an unreadable folder says "permission denied";
a rescale or window that renders flat says so in `.warnings` and in `info`."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from pydicom import examples

import dicom_io


def _deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Make listing `denied` fail as chmod 000 would for a normal user (tests run as root, which bypasses modes)."""
    real = os.scandir

    def scandir(path=".", *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(os.fsdecode(path)) == denied:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_folder_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "ct.dcm").write_bytes(Path(examples.get_path("ct")).read_bytes())
    _deny(monkeypatch, folder)
    with pytest.raises(dicom_io.InputError) as err:
        dicom_io.open_path(folder)
    assert not isinstance(err.value, dicom_io.NoImagesError)
    assert str(err.value) == f"{folder}: cannot list this folder: permission denied"


def test_unreadable_subfolder_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "ct.dcm").write_bytes(Path(examples.get_path("ct")).read_bytes())
    (tmp_path / "secret").mkdir()
    _deny(monkeypatch, tmp_path / "secret")
    coll = dicom_io.open_path(tmp_path)
    assert isinstance(coll, dicom_io.Collection) and len(coll.series) == 1
    assert "skipped folder secret/: permission denied" in coll.warnings


def _ct_with(tmp_path: Path, name: str, **values: object) -> Path:
    ds = pydicom.dcmread(examples.get_path("ct"))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    path = tmp_path / name
    ds.save_as(path)
    return path


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns while writing the invalid DS values
@pytest.mark.parametrize(("values", "fragment"), [
    ({"RescaleSlope": "0"}, "RescaleSlope is 0"),
    ({"RescaleSlope": "inf"}, "RescaleSlope is inf"),
    ({"RescaleSlope": "nan"}, "RescaleSlope is nan"),
    ({"RescaleIntercept": "nan"}, "RescaleIntercept is nan"),
    ({"VOILUTFunction": "SIGMOID", "WindowCenter": "40", "WindowWidth": "1"}, "width 1, SIGMOID"),
])  # fmt: skip
def test_flat_making_headers_are_warned_about(tmp_path: Path, values: dict, fragment: str) -> None:
    path = _ct_with(tmp_path, "flat.dcm", **values)
    stack = dicom_io.open_path(path)
    stack.render(0)  # still renders (what the header says), but no longer silently
    assert any(fragment in w for w in stack.warnings), stack.warnings
    assert any(fragment in w for w in dicom_io.info(path)["warnings"])


def test_ordinary_ct_has_no_display_warning(tmp_path: Path) -> None:
    path = _ct_with(tmp_path, "fine.dcm", VOILUTFunction="SIGMOID", WindowCenter="40", WindowWidth="400")
    assert dicom_io.open_path(path).warnings == []
