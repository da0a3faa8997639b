"""Draft a report from the image on screen: the modality's template prompt, parsed into the report's sections.

The draft is only a starting point for the clinician, so it must say where it came from: the provenance records the
model id, the checkpoint hash, the exact prompt, the app version, the time and the hashes of the image the model
saw and of the source file, and the audit anchor (the number and HMAC of the report's own audit entry, see
`medapp.audit`). The report stays a draft (watermarked) until a named clinician signs it. The clinical
indication the user typed is the clinician's own text: it goes into the prompt and into the Indication section
verbatim, never replaced by model text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from medapp.errors import UserError
from medapp.hashing import image_sha256, text_sha256
from medapp.jobs.images import to_image
from medapp.protocols import AuditSink, Engine, GenerationSettings
from medapp.settings import GenerationLimits
from medapp.text import clean_text

__all__ = ["draft_report", "report_prompt", "MAX_INDICATION_CHARS"]

MAX_INDICATION_CHARS = 2000


def report_prompt(template: Any, indication: str = "") -> str:
    """The template's prompt, plus the clinical indication when there is one."""
    indication = " ".join(indication.split())
    if not indication:
        return template.prompt
    return f"{template.prompt}\nClinical indication: {indication}"


def _modality_code(modality: str | None, template: Any) -> str:
    """The DICOM modality code for the report ("CT"); for words like "slide" the template's first code."""
    text = (modality or "").strip()
    if text and len(text) <= 4 and text.isalnum():
        return text.upper()
    return template.modalities[0] if template.modalities else ""


def draft_report(
    engine: Engine,
    view_or_image: Any,
    *,
    modality: str | None = None,
    indication: str = "",
    dataset: Any = None,
    frame: int | None = None,
    region: tuple[int, int, int, int] | None = None,
    window: Any = None,
    source_sha256: str | None = None,
    limits: GenerationLimits | None = None,
    settings: GenerationSettings | None = None,
    on_token: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    audit: AuditSink | None = None,
) -> Any:
    """Generate and parse a draft `reports.Report` about `view_or_image`.

    `modality` chooses the template (``CT``, ``MR``, ``CR``/``DX``, ``US``, ``SM`` or a template name; default:
    the dataset's Modality, else the generic template). `dataset` (the shown frame's pydicom header) fills the
    report's identifiers. `frame`, `region` and `window` are stored with the key image so a reader can reproduce
    the view. A cancelled generation still returns the draft made of the text so far.
    """
    from medapp import __version__
    from reports.model import Identifiers, KeyImage, Provenance, Report
    from reports.parse import parse_sections
    from reports.templates import template_for

    # The indication goes into the prompt (tokenizer) and verbatim into the PDF: sanitise it at this boundary.
    indication = clean_text(indication).text.strip()
    if len(indication) > MAX_INDICATION_CHARS:
        raise UserError(f"the indication is {len(indication)} characters long; the limit is {MAX_INDICATION_CHARS}")
    if modality is None and dataset is not None:
        modality = str(dataset.get("Modality", "") or "") or None
    template = template_for(modality)
    prompt = report_prompt(template, indication)
    if limits is None:
        limits = settings.generation() if settings is not None else GenerationLimits()
    image = to_image(view_or_image)
    digest = image_sha256(image)
    started = time.monotonic()
    generation = engine.generate(image, [], prompt, on_token=on_token, cancel=cancel, **limits.engine_kwargs())
    texts = parse_sections(generation.text, template)
    not_model: set[str] = set()  # sections whose text is not the model's (the sign-off review does not flag them)
    if indication and "indication" in template.keys:
        texts["indication"] = indication
        not_model.add("indication")
    if "exam" in template.keys and not texts.get("exam", "").strip():
        texts["exam"] = _exam_text(template, dataset)
        not_model.add("exam")
    info = engine.info
    hashes = {"image": digest}
    if source_sha256:
        hashes["source_file"] = source_sha256
    key_image = KeyImage.from_pil(
        image,
        caption="Image sent to the model",
        window_center=getattr(window, "center", None),
        window_width=getattr(window, "width", None),
        frame=frame,
        region=region,
    )
    # Audited before the report exists as an object, so the report can carry its own entry as the audit anchor
    # (entry number and HMAC, printed in the provenance): a copy of the anchor outside this computer.
    entry: dict[str, Any] = {}
    if audit is not None:
        entry = audit.record(
            "report",
            inputs=[h for h in (source_sha256, digest) if h],
            model_sha256=info.checkpoint_sha256,
            template=template.name,
            prompt_sha256=text_sha256(prompt),
            n_tokens=len(generation.token_ids),
            stop_reason=str(generation.stop_reason),
            report_state="draft",  # a new report is never signed
            seconds=round(time.monotonic() - started, 3),
        ) or {}
    return Report.from_template(
        template,
        texts,
        modality=_modality_code(modality, template),
        identifiers=Identifiers.from_dataset(dataset) if dataset is not None else Identifiers(),
        key_images=(key_image,),
        provenance=Provenance(
            model_id=str(info.model_id),
            checkpoint_sha256=str(info.checkpoint_sha256 or ""),
            prompt=prompt,
            app_version=__version__,
            created=datetime.now(UTC),
            input_hashes=tuple(hashes.items()),
            audit_seq=entry.get("seq") if entry.get("mac") else None,
            audit_hmac=str(entry.get("mac") or ""),
        ),
        edited=frozenset(not_model),
    )


def _exam_text(template: Any, dataset: Any) -> str:
    """The exam line when the model wrote none: taken from the study header, never invented.

    The study and series descriptions say what was acquired ("CT CHEST W/O CONTRAST"); without a header the
    template's generic exam name ("CT", "Chest radiograph") is all that is known.
    """
    parts: list[str] = []
    if dataset is not None:
        for keyword in ("StudyDescription", "SeriesDescription"):
            value = str(dataset.get(keyword, "") or "").strip()
            if value and value not in parts:
                parts.append(value)
    return " — ".join(parts) if parts else template.exam
