"""The jobs end to end with the tiny golden v2 checkpoint: ask (streamed, follow-up, cancel) and draft report."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from medapp.audit import AuditLog, verify
from medapp.hashing import file_sha256
from medapp.inputs import load_image
from medapp.jobs import ask, draft_report
from medapp.session import Session
from medapp.settings import GenerationLimits

SHORT = GenerationLimits(max_new_tokens=6)


def _entries(log: AuditLog) -> list[dict]:
    return [json.loads(line) for line in log.path.read_text().splitlines()]


def test_ask_ct_small_streams_follows_up_and_audits(tiny_engine, ct_small: Path, tmp_path: Path) -> None:
    from medapp.hashing import image_sha256

    loaded = load_image(ct_small)
    assert loaded.kind == "dicom" and loaded.modality == "CT" and loaded.image.mode == "RGB"
    log = AuditLog(tmp_path / "audit.jsonl")
    session = Session(tmp_path / "session")
    pieces: list[str] = []
    source = file_sha256(ct_small)
    first = ask(tiny_engine, loaded.image, "Is there a nodule?", on_token=pieces.append, limits=SHORT, audit=log,
                source_sha256=source)
    assert first.text and "".join(pieces) == first.text
    assert 1 <= first.n_tokens <= 6 and first.stop_reason in ("eos", "max_new_tokens")
    # the conversation is keyed by the pixels sent (the same key the window's chat uses)
    assert first.image_sha256 == image_sha256(loaded.image)
    session.add_turn(first.image_sha256, "Is there a nodule?", first.text, first.stop_reason)
    second = ask(tiny_engine, loaded.image, "Where?", session.history(first.image_sha256), limits=SHORT, audit=log)
    assert second.image_sha256 == first.image_sha256 and second.text
    entries = _entries(log)
    assert [e["event"] for e in entries] == ["ask", "ask"]
    assert entries[0]["inputs"] == [source, first.image_sha256]
    assert entries[0]["model_sha256"] == tiny_engine.info.checkpoint_sha256
    assert entries[1]["details"]["turn"] == 2
    assert "nodule" not in log.path.read_text()  # no question text without the opt-in
    assert verify(log.path).ok


def test_ask_cancel_stops_within_a_token(tiny_engine, ct_small: Path) -> None:
    cancel = threading.Event()
    pieces: list[str] = []

    def on_token(piece: str) -> None:
        pieces.append(piece)
        cancel.set()

    answer = ask(tiny_engine, load_image(ct_small).image, "Describe.", on_token=on_token, cancel=cancel,
                 limits=GenerationLimits(max_new_tokens=50))
    assert answer.cancelled and answer.n_tokens <= 2


def test_empty_question_is_a_user_error(tiny_engine, ct_small: Path) -> None:
    from medapp.errors import UserError

    with pytest.raises(UserError, match="empty"):
        ask(tiny_engine, load_image(ct_small).image, "   ")


def test_draft_report_fills_template_and_provenance(tiny_engine, ct_small: Path, tmp_path: Path) -> None:
    from reports.templates import template_for

    loaded = load_image(ct_small)
    log = AuditLog(tmp_path / "audit.jsonl")
    report = draft_report(tiny_engine, loaded.image, dataset=loaded.dataset, indication="Cough for 3 weeks.",
                          limits=GenerationLimits(max_new_tokens=12), audit=log, source_sha256=file_sha256(ct_small),
                          window=loaded.window, frame=0)
    template = template_for("CT")
    assert report.state == "draft" and report.modality == "CT" and report.template == template.name
    assert report.text("indication") == "Cough for 3 weeks."
    assert report.text("exam") == str(loaded.dataset.StudyDescription)  # from the header, not left empty
    assert any(report.text(k) for k in ("findings", "impression"))  # the model's text went somewhere, nothing dropped
    prov = report.provenance
    assert prov.checkpoint_sha256 == tiny_engine.info.checkpoint_sha256 and prov.model_id == "dragonfly-v2-tiny"
    assert prov.prompt.startswith(template.prompt) and "Cough for 3 weeks." in prov.prompt
    assert dict(prov.input_hashes)["source_file"] == file_sha256(ct_small)
    assert report.identifiers.patient_id == str(loaded.dataset.PatientID)
    assert len(report.key_images) == 1
    entry = _entries(log)[0]
    assert entry["event"] == "report" and entry["details"]["template"] == template.name
    assert "Cough" not in log.path.read_text()


def test_draft_report_exam_falls_back_to_the_template_without_a_header(tiny_engine, ct_small: Path) -> None:
    from reports.templates import template_for

    report = draft_report(tiny_engine, load_image(ct_small).image, modality="CT",
                          limits=GenerationLimits(max_new_tokens=4))
    assert report.text("exam") == template_for("CT").exam
