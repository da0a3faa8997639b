"""`medapp info` / `medapp render` and `medapp.view.render_view` (what the viewer shows = what the model gets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dicom_io
from medapp.cli import main
from medapp.view import ViewState, render_view

# pytest records warnings itself (replacing the filter dicom_io installs); pydicom's complaints about the broken
# inputs these tests feed it are expected, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """render reads the settings file (window presets) and deid writes the audit log: keep both out of the user's."""
    home = tmp_path / "home"
    monkeypatch.setenv("MEDAPP_HOME", str(home))
    return home



def test_info_json_without_and_with_phi(pydicom_test_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(pydicom_test_files / "CT_small.dcm"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "dicom" and data["modality"] == "CT" and (data["width"], data["height"]) == (128, 128)
    assert data["transfer_syntax"] == "1.2.840.10008.1.2.1" and data["bits_stored"] == 16
    assert data["window"]["explanation"] == "auto"
    assert "phi" not in data and "CompressedSamples" not in json.dumps(data)
    assert main(["info", str(pydicom_test_files / "CT_small.dcm"), "--json", "--phi"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["phi"]["patient_name"] == "CompressedSamples^CT1"


def test_info_text_for_series_and_slide(pydicom_test_files: Path, svs_slide: Path, capsys) -> None:
    assert main(["info", str(pydicom_test_files / "dicomdirtests" / "DICOMDIR")]) == 0
    out = capsys.readouterr().out
    assert "patients: 2" in out and "series: 13" in out and "ANGIO Projected" in out
    assert main(["info", str(svs_slide), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "slide" and data["levels"] == 3 and data["objective_power"] == 20


def test_render_matches_render_view(pydicom_test_files: Path, tmp_path: Path, capsys) -> None:
    src = pydicom_test_files / "CT_small.dcm"
    out = tmp_path / "lung.png"
    assert main(["render", str(src), "-o", str(out), "--preset", "ct-lung", "--region", "10,20,64,32"]) == 0
    written = np.asarray(Image.open(out))
    expected = render_view(ViewState(src, preset="ct-lung", region=(10, 20, 64, 32)))
    assert written.shape == (32, 64, 3) and np.array_equal(written, np.asarray(expected))
    same = dicom_io.open_path(src).render_rgb(0, dicom_io.preset("ct-lung"), (10, 20, 64, 32))
    assert np.array_equal(written, np.asarray(same))
    assert main(["render", str(src), "-o", str(tmp_path / "w.png"), "--window", "40,400"]) == 0
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "w.png"))[20:52, 10:74], written)


def test_render_slide_region_at_a_level(tiled_tiff_slide: Path, tmp_path: Path) -> None:
    out = tmp_path / "slide.png"
    assert main(["render", str(tiled_tiff_slide), "-o", str(out), "--region", "512,512,800,400", "--level", "1"]) == 0
    assert Image.open(out).size == (400, 200)  # level-0 region read at downsample 2
    assert main(["render", str(tiled_tiff_slide), "-o", str(out), "--level", "2"]) == 0
    assert Image.open(out).size == (512, 512)  # the whole slide at level 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["info", "/nonexistent/x.dcm"], "no such file"),
        (["render", "{ct}", "-o", "{out}", "--frame", "5"], "frame 5 out of range"),
        (["render", "{ct}", "-o", "{out}", "--window", "abc"], "--window"),
        (["render", "{ct}", "-o", "{out}", "--preset", "ct-nope"], "unknown window preset 'ct-nope'; available: ct-lung"),
        (["render", "{ct}", "-o", "{out}", "--window", "ct-lung"], "use --preset ct-lung"),
        (["render", "{ct}", "-o", "{out}", "--region", "1,2,3"], "--region"),
        (["render", "{ct}", "-o", "{out}", "--region", "100,100,64,64"], "outside"),
        (["render", "{ct}", "-o", "{out}", "--level", "2"], "slide"),
        (["info", "{readme}"], "not DICOM"),
    ],
)
def test_bad_input_exits_2_with_one_line(pydicom_test_files: Path, tmp_path: Path, capsys, args, needle) -> None:
    subst = {"ct": str(pydicom_test_files / "CT_small.dcm"), "out": str(tmp_path / "o.png"),
             "readme": str(pydicom_test_files / "README.txt")}  # fmt: skip
    assert main([a.format(**subst) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("medapp: ") and needle in err
    assert "Traceback" not in err


def test_subprocess_exit_codes(pydicom_test_files: Path, tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "medapp", "render", str(pydicom_test_files / "MR_small.dcm"),
                         "-o", str(tmp_path / "mr.png")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert Image.open(tmp_path / "mr.png").size == (64, 64)
    bad = subprocess.run([sys.executable, "-m", "medapp", "info", str(pydicom_test_files / "MR_truncated.dcm")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "truncated pixel data" in bad.stderr and "Traceback" not in bad.stderr


def test_malformed_jpeg2000_is_one_line_on_stderr(pydicom_test_files: Path, tmp_path: Path) -> None:
    """GDCM's bundled openjpeg printed two lines of its own to the C stderr; only our error line may appear."""
    src = pydicom_test_files / "JPEG2000-embedded-sequence-delimiter.dcm"
    run = subprocess.run([sys.executable, "-m", "medapp", "render", str(src), "-o", str(tmp_path / "j.png")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"medapp: {src}: decoding frame 0"), run.stderr
    assert "pylibjpeg: " in lines[0] and not lines[0].endswith(":")  # the reason, not a dangling colon


def test_jpeg2000_still_decodes_without_gdcm(pydicom_test_files: Path) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000, JPEG2000Lossless

    for ts in (JPEG2000, JPEG2000Lossless):
        assert "gdcm" not in get_decoder(ts)._available  # noqa: SLF001
    assert dicom_io.open_path(pydicom_test_files / "JPEG2000.dcm").render(0).shape == (1024, 256)
