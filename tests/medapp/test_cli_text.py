"""Invalid UTF-8 and control characters in user text, end to end with the tiny golden model (issue #10 item 4):
a question or indication that is not valid UTF-8 gets an answer plus one warning line, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from pypdf import PdfReader

from medapp.cli import main
from medapp.text import REPLACEMENT

# Exactly what Linux gives Python for `medapp ask CT_small.dcm $'what is \xff this'`.
BAD_QUESTION = os.fsdecode(b"what is \xff this")


def test_ask_with_invalid_utf8_answers_and_warns_once(cli_engine, ct_small: Path, medapp_home: Path, capsys) -> None:
    assert "\udcff" in BAD_QUESTION
    assert main(["ask", str(ct_small), BAD_QUESTION, "--max-new-tokens", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip()
    warnings = [ln for ln in captured.err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("medapp: warning: the question: 1 character(s)")
    assert REPLACEMENT in warnings[0] and "Traceback" not in captured.err


def test_report_with_invalid_indication_writes_the_pdf(cli_engine, ct_small: Path, tmp_path: Path,
                                                       medapp_home: Path, capsys) -> None:
    pdf = tmp_path / "r.pdf"
    indication = os.fsdecode(b"Cough \xfe\xff since May\x07")
    assert main(["report", str(ct_small), "-o", str(pdf), "--indication", indication, "--max-new-tokens", "4"]) == 0
    err = capsys.readouterr().err
    assert "medapp: warning: the indication: 2 character(s)" in err and "1 control character(s) removed" in err
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "since May" in text and "Traceback" not in err


def test_ask_job_sanitises_history_from_a_session_file(tiny_engine) -> None:
    """Lone surrogates in earlier turns (e.g. a session JSON with "\\ud800") reach the tokenizer otherwise."""
    from PIL import Image

    from medapp.jobs import ask
    from medapp.settings import GenerationLimits

    image = Image.new("RGB", (64, 64), (90, 90, 90))
    answer = ask(tiny_engine, image, "and\x00 now?", history=[("first \ud800 question", "an answer \udcff")],
                 limits=GenerationLimits(max_new_tokens=2))
    assert answer.n_tokens > 0
    assert any("the question" in n for n in answer.notices)
    assert any("earlier turn" in n for n in answer.notices)
