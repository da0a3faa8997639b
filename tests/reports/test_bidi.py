"""Right-to-left text in the PDF (issue #10 item 7): Arabic is shaped and reads right to left, Hebrew too, mixed
with left-to-right words and numbers in the right places, and a wrapped RTL paragraph starts on its first line."""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from reports import Identifiers, Report
from reports.bidi import has_rtl, rtl_base, visual, wrap_lines
from reports.pdf import render_report_pdf
from reports.templates import template_for

INDICATION = "سعال منذ ثلاثة أسابيع"  # "cough for three weeks"
MIXED = "Mixed: المريض has CT 2024 نتيجة"
HEBREW = "עברית: שלום (בדיקה) 5 mm"


def _pdftotext(pdf: Path) -> str:
    assert shutil.which("pdftotext"), "pdftotext not found: install poppler-utils (run.sh does)"
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    # poppler turns right-to-left glyph runs back into logical order; NFKC folds presentation forms to letters
    return unicodedata.normalize("NFKC", out).replace("\u202b", "").replace("\u202c", "")


def test_visual_order_rules() -> None:
    assert not has_rtl("CT 2024 (chest)") and visual("CT (x) 5") == "CT (x) 5"
    assert rtl_base("  ١٢ سعال CT") and not rtl_base("CT سعال")
    shown = visual(HEBREW)
    assert shown.startswith("mm 5 (") and shown.endswith(":תירבע")  # RTL base: the first word ends up rightmost
    assert "(הקידב)" in shown  # brackets mirrored inside the right-to-left run
    assert visual("abc שלום def") == "abc םולש def"  # LTR base: only the Hebrew word turns round


def test_wrapping_happens_in_logical_order() -> None:
    words = [f"w{i}" for i in range(12)]
    lines = wrap_lines(" ".join(words), 50.0, lambda s: 10.0 * len(s))
    assert " ".join(lines) == " ".join(words) and all(len(x) <= 5 for x in lines)


def test_report_pdf_reads_right_to_left(tmp_path: Path) -> None:
    template = template_for("CT")
    long_ar = " ".join([INDICATION] * 12)
    report = Report.from_template(template, {"indication": INDICATION, "findings": f"{MIXED}\n- {HEBREW}\n\n{long_ar}"},
                                  modality="CT", identifiers=Identifiers(patient_name="محمد علي"))
    text = _pdftotext(render_report_pdf(report, tmp_path / "r.pdf"))
    assert INDICATION in text  # before: drawn letter by letter from the left, it came back as "عيباسأ ةثالث ..."
    assert "محمد علي" in text
    squashed = re.sub(r"\s+", "", text)  # poppler moves the space at an embedding's edge; the order is what counts
    assert "Mixed:المريضhasCT2024نتيجة" in squashed
    lines = [ln.strip() for ln in text.splitlines() if "ثلاثة" in ln]
    assert lines[1].startswith(INDICATION)  # the wrapped paragraph's first line holds its beginning


def _ink_box(img: Image.Image) -> Image.Image:
    arr = np.asarray(img.convert("L")) < 128
    ys, xs = np.nonzero(arr)
    return img.convert("L").crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))


def _difference(a: Image.Image, b: Image.Image) -> float:
    b = b.resize(a.size, Image.Resampling.BILINEAR)
    return float(np.mean(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)))) / 255.0


def test_arabic_pixels_match_a_shaping_engine(tmp_path: Path) -> None:
    """The drawn word against HarfBuzz + FriBiDi (Pillow's raqm layout) and against the old unshaped, left-to-right
    drawing (Pillow's basic layout): it must be much closer to the first."""
    assert features.check("raqm"), "Pillow without libraqm cannot draw the reference (PyPI wheels include it)"
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import SimpleDocTemplate

    import reports
    from reports.fonts import register_fonts
    from reports.pdf import _para

    fonts = register_fonts()
    pdf = tmp_path / "word.pdf"
    doc = SimpleDocTemplate(str(pdf), pagesize=(600, 120), leftMargin=20, rightMargin=20, topMargin=20, bottomMargin=20)
    doc.build([_para(INDICATION, ParagraphStyle("w", fontName=fonts.regular, fontSize=40, leading=50))])
    subprocess.run(["pdftoppm", "-r", "72", "-png", "-singlefile", str(pdf), str(tmp_path / "word")], check=True,
                   timeout=120)
    ours = _ink_box(Image.open(tmp_path / "word.png"))

    font_path = Path(reports.__file__).with_name("fonts") / "DejaVuSans.ttf"

    def reference(layout: ImageFont.Layout) -> Image.Image:
        font = ImageFont.truetype(str(font_path), 40, layout_engine=layout)
        canvas = Image.new("L", (600, 100), 255)
        ImageDraw.Draw(canvas).text((10, 20), INDICATION, font=font, fill=0)
        return _ink_box(canvas)

    right, wrong = _difference(ours, reference(ImageFont.Layout.RAQM)), _difference(ours, reference(ImageFont.Layout.BASIC))
    assert right < 0.12 and right < wrong / 2, (right, wrong)


def test_contact_sheet_caption_in_arabic(tmp_path: Path) -> None:
    from reports.captions import CaptionRow
    from reports.contact_sheet import render_contact_sheet

    rows = [CaptionRow(file="a.png", caption=f"{INDICATION} ({INDICATION})", model="m")]
    pdf = render_contact_sheet(rows, tmp_path / "sheet.pdf")
    assert INDICATION in _pdftotext(Path(pdf))
