"""Folders and DICOMDIRs: grouping, slice order, gaps / mixed sizes, lazy series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

import dicom_io
from dicom_io.series import SeriesStack

# pytest records warnings itself (replacing the filter dicom_io installs); pydicom's complaints about the broken
# inputs these tests feed it are expected, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



def _dicomdir_records(path: Path) -> dict[str, int]:
    ds = pydicom.dcmread(path)
    counts: dict[str, int] = {}
    for rec in ds.DirectoryRecordSequence:
        counts[rec.DirectoryRecordType] = counts.get(rec.DirectoryRecordType, 0) + 1
    return counts


def test_dicomdir_groups_like_its_own_records(pydicom_test_files: Path) -> None:
    dicomdir = pydicom_test_files / "dicomdirtests" / "DICOMDIR"
    coll = dicom_io.open_path(dicomdir)
    assert isinstance(coll, dicom_io.Collection)
    records = _dicomdir_records(dicomdir)
    assert len(coll.patients) == records["PATIENT"] == 2
    assert coll.n_studies == records["STUDY"] == 6
    assert len(coll.series) == records["SERIES"] == 13
    assert sum(s.n_instances for s in coll.series) == records["IMAGE"] == 31
    assert not coll.warnings


def test_dicomdir_slice_order(pydicom_test_files: Path) -> None:
    coll = dicom_io.open_path(pydicom_test_files / "dicomdirtests" / "DICOMDIR")
    angio = next(s for s in coll.series if s.number == 700)
    stack = angio.open()
    assert stack.n_frames == 7
    # Positions projected on the slice normal increase monotonically through the stack.
    positions = []
    for i in range(stack.n_frames):
        h = stack.dataset(i)
        iop = np.array(h.ImageOrientationPatient, float)
        positions.append(float(np.dot(np.cross(iop[:3], iop[3:]), np.array(h.ImagePositionPatient, float))))
    assert positions == sorted(positions) and len(set(positions)) == 7
    assert any("gap" in w for w in stack.warnings)


def test_folder_includes_files_a_dicomdir_does_not_know(pydicom_test_files: Path) -> None:
    coll = dicom_io.open_path(pydicom_test_files / "dicomdirtests")
    assert isinstance(coll, dicom_io.Collection)
    # The folder adds TINY_ALPHA (one patient, one study, one series of 50 CT headers without pixels).
    assert len(coll.patients) == 3 and coll.n_studies == 7 and len(coll.series) == 14
    empty = [s for s in coll.series if s.n_images == 0]
    assert len(empty) == 1 and empty[0].n_instances == 50
    with pytest.raises(dicom_io.NoPixelDataError):
        empty[0].open()


def test_shuffled_series_is_ordered_by_position(ct_series) -> None:
    zs = [10.0, 12.0, 14.0, 16.0, 18.0]
    folder = ct_series(zs)
    coll = dicom_io.open_path(folder)
    (series,) = coll.series
    stack = series.open()
    assert isinstance(stack, SeriesStack) and stack.kind == "series"
    assert [float(stack.dataset(i).ImagePositionPatient[2]) for i in range(5)] == zs
    assert [int(stack.dataset(i).InstanceNumber) for i in range(5)] == [1, 2, 3, 4, 5]
    assert stack.instances == [series.instances[i] for i in range(5)]
    assert not stack.warnings
    # Decoding is lazy and per slice: slice k was written as phantom + k, so means rise with k.
    means = [float(stack.modality_values(i).mean()) for i in range(5)]
    assert means == sorted(means)


def test_feet_first_and_oblique_orientation_sort_along_the_normal(ct_series) -> None:
    # Rows along +y, columns along +x: the normal is -z, so larger z comes first.
    folder = ct_series([0.0, 5.0, 10.0], orientation=(0, 1, 0, 1, 0, 0))
    stack = dicom_io.open_path(folder).series[0].open()
    assert [float(stack.dataset(i).ImagePositionPatient[2]) for i in range(3)] == [10.0, 5.0, 0.0]


def test_gaps_duplicates_and_mixed_sizes_are_warnings(ct_series) -> None:
    folder = ct_series([0.0, 1.0, 2.0, 6.0, 6.0], sizes=[32, 32, 32, 32, 48])
    stack = dicom_io.open_path(folder).series[0].open()
    text = " | ".join(stack.warnings)
    assert "gap between slices 2 and 3" in text
    assert "share a position" in text
    assert "mixed slice sizes: 32x32, 48x48" in text
    assert stack.render(4).shape in {(32, 32), (48, 48)}  # still displayable


def test_missing_positions_fall_back_to_instance_number(ct_series) -> None:
    folder = ct_series([None, None, None])  # type: ignore[list-item]
    stack = dicom_io.open_path(folder).series[0].open()
    assert [int(stack.dataset(i).InstanceNumber) for i in range(3)] == [1, 2, 3]


def test_unreadable_files_in_a_folder_are_reported_not_fatal(ct_series) -> None:
    folder = ct_series([0.0, 1.0])
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage")
    (folder / "notes.txt").write_text("not an image")
    coll = dicom_io.open_path(folder)
    assert len(coll.series) == 1 and coll.series[0].n_images == 2
    assert any("broken.dcm" in w for w in coll.warnings)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(dicom_io.NoImagesError, match="no DICOM images"):
        dicom_io.open_path(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(dicom_io.NoImagesError):
        dicom_io.open_path(empty)


def test_series_phi_is_separate(ct_series) -> None:
    stack = dicom_io.open_path(ct_series([0.0, 1.0])).series[0].open()
    flat = repr(stack.metadata)
    assert "Doe" not in flat and "PID-123" not in flat and "ACC-9" not in flat
    assert stack.phi["patient_name"] == "Doe^Jane" and stack.phi["accession_number"] == "ACC-9"


def test_concurrent_rendering_from_threads(ct_series) -> None:
    """The GUI renders from worker threads: shared caches must not break or mix up slices."""
    from concurrent.futures import ThreadPoolExecutor

    stack = dicom_io.open_path(ct_series([float(z) for z in range(12)])).series[0].open()
    expected = [stack.render(i).copy() for i in range(12)]
    stack2 = dicom_io.open_path(stack.instances[0].parent).series[0].open()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: (i % 12, stack2.render(i % 12)), range(96)))
    assert all(np.array_equal(img, expected[i]) for i, img in results)


def test_huge_folders_are_capped_with_a_warning(ct_series, monkeypatch) -> None:
    import dicom_io.series as series_mod

    folder = ct_series([0.0, 1.0, 2.0, 3.0])
    monkeypatch.setattr(series_mod, "MAX_FILES", 2)
    coll = dicom_io.open_path(folder)
    assert coll.series[0].n_instances == 2 and any("only the first 2" in w for w in coll.warnings)
