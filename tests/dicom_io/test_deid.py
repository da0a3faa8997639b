"""PS3.15 Basic Application Level Confidentiality Profile."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import dicom_io
from dicom_io.deid import Deidentifier, action_for, deidentify_file

# pytest records warnings itself (replacing the filter dicom_io installs); pydicom's complaints about the broken
# inputs these tests feed it are expected, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



def _with_extras(ds: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ref.add_new(0x00091001, "LO", "private inside a sequence")
    ds.ReferencedImageSequence = Sequence([ref])
    ds.OtherPatientIDsSequence = Sequence([Dataset()])
    ds.add_new(0x00291010, "LO", "vendor private")
    ds.InstitutionName, ds.OperatorsName = "General Hospital", "Smith^Tech"
    return ds


def test_profile_actions(pydicom_test_files: Path) -> None:
    ds = _with_extras(pydicom.dcmread(pydicom_test_files / "CT_small.dcm"))
    out = Deidentifier().apply(ds)
    assert ds.PatientName == "CompressedSamples^CT1"  # the original is untouched
    assert not out.get("PatientName") and "CompressedSamples" not in str(out)
    text = str(out)
    assert out.PatientID != "1CT1" and "General Hospital" not in text and "Smith^Tech" not in text
    assert "OtherPatientIDsSequence" not in out
    assert not any(e.tag.is_private for e in out.iterall())
    assert out.StudyInstanceUID != ds.StudyInstanceUID and out.SOPInstanceUID != ds.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    # UIDs inside sequences are remapped too, consistently with the top-level ones.
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == out.SOPInstanceUID
    assert out.ReferencedImageSequence[0].ReferencedSOPClassUID == ds.SOPClassUID  # class UIDs are kept
    assert out.PatientIdentityRemoved == "YES"
    code = out.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert out.get("StudyDate") in (None, "", "19000101")
    assert out.pixel_array.shape == ds.pixel_array.shape  # pixels kept (Clean Pixel Data is not part of Basic)


def test_uid_remapping_is_consistent_per_run_only(pydicom_test_files: Path) -> None:
    ds = pydicom.dcmread(pydicom_test_files / "CT_small.dcm")
    run = Deidentifier()
    a, b = run.apply(ds), run.apply(ds)
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    other = Deidentifier().apply(ds)
    assert other.StudyInstanceUID != a.StudyInstanceUID


def test_table_comes_from_the_standard() -> None:
    assert action_for(0x00100010) == "Z"  # Patient's Name
    assert action_for(0x0020000D) == "U"  # Study Instance UID
    assert action_for(0x00080080) in ("X", "Z", "D")  # Institution Name
    assert action_for(0x50000010) == "X"  # curve data, repeating group 50xx
    assert action_for(0x00280010) is None  # Rows: kept


def test_deidentify_file_writes_valid_dicom(pydicom_test_files: Path, tmp_path: Path) -> None:
    run = Deidentifier()
    dst = deidentify_file(pydicom_test_files / "examples_ybr_color.dcm", tmp_path / "out" / "us.dcm", run)
    back = pydicom.dcmread(dst)
    assert back.PatientIdentityRemoved == "YES" and back.pixel_array.shape == (30, 240, 320, 3)
    # ultrasound: text in pixels is likely; the warning names the file, so a folder run says which ones to check
    assert [w for w in run.warnings if "burned-in" in w] == [
        f"{pydicom_test_files / 'examples_ybr_color.dcm'}: pixel data may contain burned-in identifying text; "
        "it is not cleaned"
    ]
    assert not list((tmp_path / "out").glob("*.tmp"))


def _cut(src: Path, dst: Path, keep: int) -> Path:
    """The first `keep` bytes of `src` (negative: all but the last -keep bytes), as an interrupted copy leaves it."""
    data = src.read_bytes()
    dst.write_bytes(data[:keep])
    return dst


@pytest.mark.parametrize(
    ("name", "keep", "cause"),
    [
        ("MR_truncated.dcm", None, "truncated pixel data: 8130 of 8192 bytes"),
        ("CT_small.dcm", -2000, "truncated pixel data"),  # pixel data cut short
        ("CT_small.dcm", 3000, "truncated"),  # cut inside the header, long before the pixel data
        ("MR_small_RLE.dcm", 5000, "truncated"),  # cut inside an undefined-length element
    ],
)
def test_truncated_input_is_refused_not_exported(
    pydicom_test_files: Path, tmp_path: Path, name: str, keep: int | None, cause: str
) -> None:
    src = pydicom_test_files / name
    if keep is not None:
        src = _cut(src, tmp_path / f"cut_{name}", keep)
    dst = tmp_path / "out" / "deid.dcm"
    with pytest.raises(dicom_io.CorruptFileError, match=cause) as info:
        deidentify_file(src, dst)
    assert str(src) in str(info.value)
    assert not dst.exists() and not list(tmp_path.glob("out/*"))  # nothing written, not even a temp file


def test_deid_cli_exits_2_on_truncated_input(pydicom_test_files: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from medapp.cli import main

    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path / "home"))  # the audit log goes there, not to the user's
    dst = tmp_path / "deid.dcm"
    assert main(["deid", str(pydicom_test_files / "MR_truncated.dcm"), str(dst)]) == 2
    err = capsys.readouterr().err
    assert "MR_truncated.dcm: truncated pixel data" in err and "Traceback" not in err
    assert not dst.exists()


def test_image_object_without_pixel_data_is_refused_but_other_objects_pass(pydicom_test_files: Path,
                                                                           tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_test_files / "CT_small.dcm")
    del ds.PixelData  # a CT cut exactly before its pixel data parses cleanly
    src = tmp_path / "ct_no_pixels.dcm"
    ds.save_as(src, enforce_file_format=True)
    with pytest.raises(dicom_io.CorruptFileError, match="CT Image Storage object without pixel data"):
        deidentify_file(src, tmp_path / "out.dcm")
    # an RT plan has no pixels by design: it is still de-identified
    out = deidentify_file(pydicom_test_files / "rtplan.dcm", tmp_path / "plan.dcm")
    assert pydicom.dcmread(out).PatientIdentityRemoved == "YES"
