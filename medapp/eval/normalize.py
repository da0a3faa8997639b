"""The one normalisation the `strict` rule applies to answers and predictions before comparing them.

Why one function: every strict metric (closed accuracy, token precision / recall / F1, exact match) must see the
same tokens, or a prediction could be "right" under one number and "wrong" under the next. The steps are the ones
the VQA literature agrees on and nothing else, so the rule is easy to state in a report:

1. Unicode NFKC, lowercase (``"ＣＴ"`` and ``"CT"`` are the same answer);
2. a comma between digits is a thousands separator and goes (``1,000`` -> ``1000``); a point between digits is a
   decimal point and stays (``2.5``); every other punctuation character (anything not a letter, digit or space,
   underscore included) becomes a space;
3. the articles *a*, *an*, *the* are dropped;
4. number words zero..twenty become digits (``"two"`` -> ``"2"``), so ``"two lesions"`` equals ``"2 lesions"``.

Unlike LLaVA-Med's `normalize_word` (see `medapp.eval.llava_med`), ``"none"`` is *not* turned into ``"0"``: "none"
is a common answer in its own right (e.g. "which lobe is affected? none").
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize", "tokens", "ARTICLES", "NUMBER_WORDS"]

ARTICLES = frozenset({"a", "an", "the"})
NUMBER_WORDS = {
    word: str(n)
    for n, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DECIMAL = re.compile(r"(?<=\d)\.(?=\d)")
_PUNCT = re.compile(r"[^\w\s\x00]|_")
_KEEP = "\x00"  # stands for a protected decimal point while other punctuation is removed


def tokens(text: str) -> list[str]:
    """The normalised words of `text` (see the module docstring for the steps)."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = _THOUSANDS.sub("", text)
    text = _DECIMAL.sub(_KEEP, text)
    text = _PUNCT.sub(" ", text)
    out = []
    for word in text.replace(_KEEP, ".").split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            out.append(word)
    return out


def normalize(text: str) -> str:
    """`tokens(text)` joined by single spaces: the form exact match compares."""
    return " ".join(tokens(text))
