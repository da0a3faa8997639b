"""Workflow rules that used to live in the window: the study-UID export rule, the shared caption workflow and
the checkpoint summary wording. Plain pytest, no Qt."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medapp.errors import UserError
from medapp.jobs.caption_folder import CaptionRequest, caption_folder
from medapp.jobs.export import check_same_study, export_report
from medapp.settings import Settings
from reports.model import Identifiers, Report, Section


def _report(study_uid: str) -> Report:
    return Report(
        sections=(Section("findings", "Findings", "No acute abnormality."),),
        modality="CT",
        identifiers=Identifiers(study_instance_uid=study_uid),
    )


class TestStudyRule:
    def test_dicom_export_into_another_study_is_refused_and_writes_nothing(self, ct_small: Path, tmp_path: Path):
        source = pydicom.dcmread(ct_small)
        out = tmp_path / "r.dcm"
        with pytest.raises(UserError, match="another study"):
            export_report(_report("1.2.3.999"), out, kind="dicom", source=source)
        assert not out.exists()

    def test_same_study_and_pdf_exports_go_through(self, ct_small: Path, tmp_path: Path):
        source = pydicom.dcmread(ct_small)
        same = export_report(_report(str(source.StudyInstanceUID)), tmp_path / "r.dcm", kind="dicom", source=source)
        assert pydicom.dcmread(same).StudyInstanceUID == source.StudyInstanceUID
        # a PDF is not filed into any study: the rule does not apply
        assert export_report(_report("1.2.3.999"), tmp_path / "r.pdf", kind="pdf", source=source).exists()

    @pytest.mark.parametrize("wanted, found", [("", "1.2"), ("1.2", ""), ("1.2", None)])
    def test_a_missing_uid_means_nothing_to_compare(self, wanted: str, found: str | None):
        source = None if found is None else pydicom.Dataset()
        if found:
            source.StudyInstanceUID = found
        check_same_study(_report(wanted), source)  # no exception


class TestCaptionFolder:
    def test_refuses_to_overwrite_a_table_unless_resuming(self, tmp_path: Path):
        folder = tmp_path / "in"
        folder.mkdir()
        table = tmp_path / "c.csv"  # beside the folder: a table inside it is refused by the output guard first
        table.write_text("file,caption\n")
        request = CaptionRequest(folder=folder, csv_path=table, resume_hint="tick Resume")
        with pytest.raises(UserError, match="tick Resume"):
            caption_folder(request, lambda: pytest.fail("engine asked for"), settings=Settings())

    def test_missing_folder_is_a_user_error(self, tmp_path: Path):
        request = CaptionRequest(folder=tmp_path / "nope", csv_path=tmp_path / "c.csv")
        with pytest.raises(UserError, match="not a folder"):
            caption_folder(request, lambda: pytest.fail("engine asked for"), settings=Settings())

    def test_a_finished_table_resumes_without_loading_the_model(self, tmp_path: Path):
        from PIL import Image

        from reports.captions import CaptionWriter

        folder = tmp_path / "in"
        folder.mkdir()
        Image.new("RGB", (8, 8), "white").save(folder / "a.png")
        table = tmp_path / "c.csv"
        with CaptionWriter(table) as writer:
            writer.add("a.png", "a white square", model="m")
        request = CaptionRequest(folder=folder, csv_path=table, resume=True)
        plans: list[tuple[int, int]] = []
        summary = caption_folder(request, lambda: pytest.fail("model loaded with nothing left"), settings=Settings(),
                                 on_plan=lambda total, already: plans.append((total, already)))
        assert (summary.total, summary.skipped, summary.done) == (1, 1, 0)
        assert plans == [(1, 1)], "the front end hears the counts once the folder is listed, before any model load"


def test_progress_counts_earlier_runs_for_the_display():
    """A resumed batch of 10 with 6 left, 4 of them done: "8 of 10" overall, while the ETA's rate uses this run."""
    from medapp.jobs.progress import Progress

    progress = Progress(done=4, total=6, skipped=4)
    assert (progress.overall_done, progress.overall_total) == (8, 10)
    assert (Progress(3, 5).overall_done, Progress(3, 5).overall_total) == (3, 5), "a fresh run: the same numbers"


def test_checkpoint_summary_words_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import models.check
    from medapp.model_holder import checkpoint_summary

    good = {"ok": True, "n_params": 8_530_000_000, "model_id": "Dragonfly-Med-v2", "version": "v2", "dtype": "bfloat16"}
    monkeypatch.setattr(models.check, "check_checkpoint", lambda folder, verify_hashes: dict(good))
    assert checkpoint_summary(tmp_path)["summary"] == (
        "Dragonfly-Med-v2 (Dragonfly v2), 8.53 B parameters, bfloat16 weights."
    )
    bad = {"ok": False, "problems": ["config.json missing", "no safetensors"]}
    monkeypatch.setattr(models.check, "check_checkpoint", lambda folder, verify_hashes: dict(bad))
    assert checkpoint_summary(tmp_path)["summary"] == "config.json missing; no safetensors"
