"""Model output → sections: heading styles, prose that is not a heading, and no word ever dropped."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from reports.parse import parse_sections
from reports.templates import template_for

CT = template_for("CT")


def _words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in re.findall(r"\w+", text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FINDINGS: Lungs clear.\nIMPRESSION: Normal.", {"findings": "Lungs clear.", "impression": "Normal."}),
        ("**Findings**\n- Lungs: clear\n* Heart: normal size\n\n**Impression**: Normal study.",
         {"findings": "- Lungs: clear\n- Heart: normal size", "impression": "Normal study."}),
        ("## Findings\nA 4 mm nodule.\n## Conclusion\nBenign.", {"findings": "A 4 mm nodule.", "impression": "Benign."}),
        ("Findings\nEffusion.\n\nOpinion - small effusion", {"findings": "Effusion.", "impression": "small effusion"}),
        ("The heart is normal. Impression: no acute finding. Recommendation: none.",
         {"findings": "The heart is normal.", "impression": "no acute finding.", "recommendations": "none."}),
        ("1. Findings: x\n2. Impression: y", {"findings": "x", "impression": "y"}),
        ("**Impression:** Mild. **Limitations:** motion.", {"impression": "Mild.", "limitations": "motion."}),
        ("IMPRESSION/CONCLUSION:\nnothing acute", {"impression": "nothing acute"}),
        ("### Technique\nAxial images.\n### Comparison\nNone.\n### Findings\nok",
         {"technique": "Axial images.", "comparison": "None.", "findings": "ok"}),
        ("Clinical history: cough\nFollow-up: 3 months", {"indication": "cough", "recommendations": "3 months"}),
    ],
)
def test_heading_styles(text: str, expected: dict[str, str]) -> None:
    got = parse_sections(text, CT)
    assert list(got) == list(CT.keys)
    assert {k: v for k, v in got.items() if v} == expected


def test_prose_that_only_looks_like_headings_stays_text() -> None:
    text = "History of smoking. Findings are consistent with emphysema.\nHeart: normal size.\nImpression of a mass."
    got = parse_sections(text, CT)
    assert got["findings"] == text
    assert all(v == "" for k, v in got.items() if k != "findings")


def test_preamble_and_unknown_subheadings_go_to_findings() -> None:
    text = "Sure! Here is the report you asked for.\n## Lungs\nClear.\nIMPRESSION: normal\n## Bones\nIntact."
    got = parse_sections(text, CT)
    assert got["findings"] == "Sure! Here is the report you asked for.\nLungs\nClear."
    assert got["impression"] == "normal\nBones\nIntact."


def test_repeated_headings_are_joined() -> None:
    got = parse_sections("Findings: a\nImpression: b\nFindings: c", CT)
    assert got["findings"] == "a\n\nc"


def test_pathology_template_titles() -> None:
    path = template_for("SM")
    got = parse_sections("MICROSCOPIC DESCRIPTION: glands\nDIAGNOSIS: adenocarcinoma\nComment: IHC advised", path)
    assert got["findings"] == "glands" and got["impression"] == "adenocarcinoma"
    assert got["recommendations"] == "IHC advised"
    assert path.title_of("impression") == "Diagnosis"


def test_no_text_and_crlf() -> None:
    assert all(v == "" for v in parse_sections("", CT).values())
    assert parse_sections("Findings:\r\n ok\r\nImpression: fine\r\n", CT)["impression"] == "fine"
    with pytest.raises(TypeError):
        parse_sections(None, CT)  # type: ignore[arg-type]


_HEADING_STYLES = ["{h}:", "**{h}**", "**{h}:**", "## {h}", "{H}", "{H}:", "# {h} -", "{h} (continued):"]
_HEADINGS = ["Findings", "Impression", "Conclusion", "Opinion", "Technique", "Comparison", "Recommendations",
             "Limitations", "Clinical history", "Follow-up", "Summary"]
_PROSE = ["The lungs are clear", "No effusion <5 mm", "S&P stable", "a < b > c", "µ ° ± é 王小明",
          "Heart: normal size", "History of smoking", "- bullet item", "* starred item", "1. numbered item",
          "Findings are unremarkable", "See **bold** text", "Impression of a mass", "x = 3 * 4"]


def test_every_word_survives_random_documents() -> None:
    """Property test (seeded): whatever the mix of heading styles and prose, every non-heading word is kept."""
    rng = random.Random(1234)
    for _ in range(300):
        parts: list[str] = []
        heading_words: Counter[str] = Counter()
        for _ in range(rng.randint(1, 7)):
            if rng.random() < 0.5:
                h = rng.choice(_HEADINGS)
                parts.append(rng.choice(_HEADING_STYLES).format(h=h, H=h.upper()))
                heading_words += _words(h) + (_words("continued") if "continued" in parts[-1] else Counter())
            line = " ".join(rng.choice(_PROSE) for _ in range(rng.randint(1, 3)))
            if rng.random() < 0.3:
                h = rng.choice(_HEADINGS)
                line += ". " + h + ": inline tail"
                heading_words += _words(h)
            parts.append(line)
        text = rng.choice(["\n", "\n\n", "\r\n"]).join(parts)
        out = parse_sections(text, CT)
        kept = _words(" ".join(out.values()))
        lost = _words(text) - heading_words - kept
        assert not lost, f"words dropped {dict(lost)} from {text!r} -> {out!r}"
