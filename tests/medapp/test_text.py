"""`medapp.text.clean_text`: the one sanitiser for user and file text (issue #10 item 4)."""

from __future__ import annotations

import os

from medapp.text import REPLACEMENT, clean_text


def test_surrogate_escapes_from_argv_become_replacement_characters() -> None:
    argv_text = os.fsdecode(b"what is \xff this \xc3\xa9")  # how Linux hands Python an invalid UTF-8 argument
    assert "\udcff" in argv_text
    out = clean_text(argv_text)
    assert out.text == f"what is {REPLACEMENT} this é" and out.replaced == 1 and out.stripped == 0
    out.text.encode("utf-8")  # strict: no surrogate is left for the tokenizer or the PDF


def test_lone_surrogates_and_bytes_from_files() -> None:
    assert clean_text("a\ud800b\udfffc").text == f"a{REPLACEMENT}b{REPLACEMENT}c"
    out = clean_text(b"\xef\xbb\xbfnodule \xe2\x89\xa5 5 mm \x80")
    assert out.text == f"nodule ≥ 5 mm {REPLACEMENT}" and out.replaced == 1


def test_control_characters_stripped_but_tab_newline_and_bidi_marks_kept() -> None:
    out = clean_text("line1\r\nline2\rline3\tx\x00\x1b[31m\x7f\x85\u200f\u2067")
    assert out.text == "line1\nline2\nline3\tx[31m\u200f\u2067"
    assert out.stripped == 4 and out.replaced == 0


def test_clean_text_unchanged_and_notice() -> None:
    plain = clean_text(f"already fine {REPLACEMENT} – ok")
    assert not plain.changed and plain.notice("the question") is None
    note = clean_text("x\udcff\x01").notice("the question")
    assert note is not None and note.startswith("the question: 1 character(s)") and "1 control" in note
    assert clean_text(None).text == ""
