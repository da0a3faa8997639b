"""De-identified DICOM exports keep one UID mapping per run, so reports about one study stay in one study."""

from __future__ import annotations

from pathlib import Path

import pydicom

from dicom_io.deid import Deidentifier
from medapp.jobs.export import export_report, process_deidentifier
from reports.model import Report, Section


def _export(tmp_path: Path, name: str, source: pydicom.Dataset, **kwargs) -> pydicom.Dataset:
    report = Report(sections=(Section("findings", "Findings", "No acute abnormality."),), modality="CT")
    out = export_report(report, tmp_path / name, kind="dicom", deidentified=True, source=source, **kwargs)
    return pydicom.dcmread(out)


def test_deidentified_exports_share_one_uid_mapping(ct_small: Path, tmp_path: Path) -> None:
    source = pydicom.dcmread(ct_small)
    first = _export(tmp_path, "a.dcm", source)
    second = _export(tmp_path, "b.dcm", source)
    assert first.StudyInstanceUID != source.StudyInstanceUID  # de-identified ...
    assert second.StudyInstanceUID == first.StudyInstanceUID  # ... into the same new study both times
    assert process_deidentifier() is process_deidentifier()

    own = Deidentifier()  # a caller that owns its mapping (one per session / batch) gets its own new study
    mine = _export(tmp_path, "c.dcm", source, deidentifier=own)
    again = _export(tmp_path, "d.dcm", source, deidentifier=own)
    assert mine.StudyInstanceUID == again.StudyInstanceUID != first.StudyInstanceUID
    assert str(source.PatientName) not in str(mine.PatientName)
