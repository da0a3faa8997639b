"""Shared fixtures for reports/ tests: a real CT key image (pydicom's bundled CT_small) and a hostile report."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pydicom
import pytest
from PIL import Image

from reports import Identifiers, KeyImage, Provenance, Report
from reports.parse import parse_sections
from reports.templates import template_for

HOSTILE_FINDINGS = (
    "A 4 mm nodule <5 mm in the right upper lobe; S&P unchanged; a < b > c.\n"
    "- Pleura: no effusion & no pneumothorax\n"
    "- Temperature 37.5 °C, dose 12 µSv ± 2, café-au-lait, ≤ 3 cm\n"
    "Tags that must print literally: <b>not bold</b> <font size=40>x</font> &amp; </para>"
)
CJK_NAME = "王小明"


@pytest.fixture(scope="session")
def ct_dataset() -> pydicom.Dataset:
    from pydicom import examples

    return examples.ct


@pytest.fixture(scope="session")
def ct_png(ct_dataset: pydicom.Dataset) -> bytes:
    """CT_small rendered through a soft-tissue window (W 400 / L 40) with plain numpy, as the viewer would."""
    hu = ct_dataset.pixel_array.astype(np.float32) * float(ct_dataset.RescaleSlope) + float(
        ct_dataset.RescaleIntercept
    )
    lo, hi = 40 - 200, 40 + 200
    img = (np.clip((hu - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img, "L").resize((256, 256), Image.Resampling.BICUBIC).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def make_report(ct_png: bytes):
    """Factory: a CT report with hostile model text, a CJK patient name and one key image."""

    def make(findings: str = HOSTILE_FINDINGS, **overrides) -> Report:
        template = template_for("CT")
        model_text = (
            "Sure, here is the report.\n"
            f"**Findings**\n{findings}\n\n"
            "IMPRESSION: Small nodule <5 mm, probably benign. Résumé: µ, °, ±.\n"
            "Recommendation: CT follow-up in 12 months."
        )
        texts = parse_sections(model_text, template)
        texts["exam"] = "CT chest without contrast"
        texts["indication"] = "Cough for 3 weeks (smoker)."
        kwargs = dict(
            modality="CT",
            identifiers=Identifiers(
                patient_name=f"{CJK_NAME} (Wang Xiaoming)",
                patient_id="PID-778899",
                birth_date="19600102",
                sex="M",
                accession_number="ACC-4455",
                study_date="20261121",
                study_instance_uid="1.2.826.0.1.3680043.8.498.77777",
                referring_physician="Dr Élise Müller",
            ),
            key_images=(
                KeyImage(
                    caption="Axial CT, soft-tissue window: region <b>of interest</b> & marker",
                    png=ct_png,
                    window_center=40,
                    window_width=400,
                    window_name="ct-mediastinum",
                    frame=0,
                    region=(0, 0, 128, 128),
                ),
            ),
            provenance=Provenance(
                model_id="Llama-3.1-8B-Dragonfly-Med-v2",
                checkpoint_sha256="ab" * 32,
                prompt=template.prompt,
                app_version="0.1.0",
                created=datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
                input_hashes={"CT_small.dcm": "cd" * 32},
            ),
        )
        kwargs.update(overrides)
        return Report.from_template(template, texts, **kwargs)

    return make
