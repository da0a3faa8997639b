"""LLaVA-Med v1.0.0's VQA scoring rules, reimplemented so our numbers compare with papers that used them.

Source: microsoft/LLaVA-Med, tag ``v1.0.0`` (commit b9a98a7, 2023-12-11), files ``llava/eval/run_eval.py`` (VQA-RAD,
SLAKE), ``llava/eval/run_eval_pvqa.py`` (Path-VQA) and ``llava/eval/eval_metrics/{glossary,evaluate_metrics,utils}.py``.
Nothing is copied: every rule below is restated from reading those files, quirks included on purpose, because a
published number is only comparable when it is scored the same way. The quirks, each reproduced:

* **Normalisation** (`normalize_word`, from the VQA challenge's evaluation): the prediction and the truth are
  lowercased and normalised once in ``evaluate`` and *again* inside the F1 and exact-match functions (we do both).
  Twenty-one punctuation characters (not ``.``, ``'``, ``:``) are deleted when they touch a space or when the text
  holds a digit-comma-digit anywhere, else replaced by a space; a period not followed by a digit is deleted — at
  most **32** of them, because ``re.UNICODE`` (= 32) is passed as ``Pattern.sub``'s *count* argument (and the
  pattern's ``(?!<=\\d)`` is a lookahead typo that never constrains anything); the words ``none``, ``zero``,
  ``one``..``ten`` become digits (so the answer "none" is "0"); articles go; contractions written without an
  apostrophe get it back ("dont" -> "don't"); remaining commas are deleted.
* **Closed questions** are tested by *substring*: a prediction counts only if the text contains ``"yes"`` or ``"no"``
  anywhere (so "normal", "nodule", "know", "eyes" qualify), and is then right iff the normalised truth is a
  substring of it ("yes and no" is right for both). A closed question whose answer is not yes/no (SLAKE "liver")
  is therefore wrong unless the prediction happens to contain "yes"/"no".
* **The denominator quirk (Path-VQA).** ``run_eval_pvqa.py`` at v1.0.0 appends nothing when a prediction contains
  yes/no but not the answer, so wrong yes/no answers silently leave the denominator and closed "accuracy" is the
  precision of the right ones. ``run_eval.py`` had the same bug until b9a98a7 ("fix closed accuracy calculation",
  the v1.0.0 commit itself), which appends a 0 there, so for VQA-RAD and SLAKE every closed question counts.
  `closed_hit(..., drop_wrong=True)` is the Path-VQA behaviour; `DROPS_WRONG_CLOSED` says which dataset has it.
* **Open questions:** ``calculate_f1score`` counts true positives by the prediction's occurrences of shared words
  (not clipped to the truth's count), false negatives by the truth's words missing from the prediction;
  ``calculate_exactmatch`` ("exact match score") is the number of *distinct* truth words found in the prediction
  divided by the prediction's word count — a precision-like ratio, not an exact match.
* Not reproducible: "open accuracy" needs ``candidate.json``, which was never released (and
  ``run_eval_pvqa.py`` calls that function with one argument too few, so as tagged it stops with a TypeError at the
  first open question; its remaining lines are the same functions as ``run_eval.py``, which we apply). BLEU is not
  one of the published Dragonfly-Med numbers and is left out.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = [
    "normalize_word", "word_counts", "closed_hit", "f1_precision_recall", "exact_match_score",
    "DROPS_WRONG_CLOSED", "CONTRACTIONS", "prepare",
]

# Which of our datasets LLaVA-Med v1.0.0 scores with the script that drops wrong yes/no predictions.
DROPS_WRONG_CLOSED = {"vqa-rad": False, "slake": False, "path-vqa": True}

_PUNCTUATION = (';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!')
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD = re.compile(r"\.(?!\d)")  # what the original pattern matches once its no-op lookahead is removed
_PERIOD_LIMIT = 32  # re.UNICODE, passed where Pattern.sub takes `count`
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})


def _contractions() -> dict[str, str]:
    """The glossary's contraction table, built from its values: each form maps back from its spellings with one
    apostrophe missing (all apostrophes for a one-apostrophe form). Its capitalised keys ("Im", "Ive") are left
    out because they can never match (words are lowercased before the lookup); "somebody'd" -> "somebodyd" is the
    table's one inverted entry."""
    forms = (
        "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd "
        "he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've might've mustn't "
        "must've needn't not've o'clock oughtn't 'ow's'at shan't she'd've should've shouldn't shouldn't've "
        "somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's something'd "
        "something'd've something'll that's there'd there'd've there're there's they'd they'd've they'll they're "
        "they've 'twas wasn't we'd've we've weren't what'll what're what's what've when's where'd where's where've "
        "who'd who'd've who'll who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll "
        "y'all'd've you'd you'd've you'll you're you've"
    ).split()
    table: dict[str, str] = {}
    for form in forms:
        marks = [i for i, ch in enumerate(form) if ch == "'"]
        if len(marks) == 1:
            table[form.replace("'", "")] = form
        else:
            for i in marks:
                table[form[:i] + form[i + 1 :]] = form
    table["somebody'd"] = "somebodyd"
    return table


CONTRACTIONS = _contractions()


def normalize_word(text: str) -> str:
    """LLaVA-Med's `normalize_word` (module docstring: punctuation, at most 32 periods, numbers, articles,
    contractions, commas). The caller lowercases first, as ``evaluate`` does; this lowercases only for the word
    steps, like the original."""
    glued = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = (mark + " ") in text or (" " + mark) in text
        out = out.replace(mark, "" if (touches_space or glued) else " ")
    out = _PERIOD.sub("", out, count=_PERIOD_LIMIT)
    words = [_NUMBERS.get(w, w) for w in out.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words).replace(",", "")


def word_counts(text: str) -> Counter[str]:
    """The scripts' ``split_sentence(text, 1)``: lowercase, whitespace split, counts."""
    return Counter(text.lower().split())


def closed_hit(prediction: str, truth: str, *, drop_wrong: bool = False) -> int | None:
    """1 / 0 for a closed question, or None when the Path-VQA script leaves it out of the denominator.

    Both arguments as ``evaluate`` sees them: ``normalize_word(text.lower())``."""
    if "yes" in prediction or "no" in prediction:
        if truth in prediction:
            return 1
        return None if drop_wrong else 0
    return 0


def f1_precision_recall(prediction: str, truth: str) -> tuple[float, float, float]:
    """``calculate_f1score(candidate=prediction, reference=truth)``: (f1, precision, recall), normalising again."""
    cand = word_counts(normalize_word(prediction))
    ref = word_counts(normalize_word(truth))
    if not cand or not ref:
        return 0.0, 0.0, 0.0
    tp = sum(n for w, n in cand.items() if w in ref)
    fp = sum(n for w, n in cand.items() if w not in ref)
    fn = sum(n for w, n in ref.items() if w not in cand)
    if tp == 0:
        return 0.0, 0.0, 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall), precision, recall


def exact_match_score(prediction: str, truth: str) -> float:
    """``calculate_exactmatch(candidate=prediction, reference=truth)``: distinct truth words present in the
    prediction / the prediction's word count (0 for an empty prediction), normalising again."""
    cand = word_counts(normalize_word(prediction))
    ref = word_counts(normalize_word(truth))
    total = sum(cand.values())
    if total == 0:
        return 0.0
    return sum(1 for w in ref if w in cand) / total


def prepare(text: str) -> str:
    """What ``evaluate`` does to both strings before any rule: lowercase, then `normalize_word`."""
    return normalize_word(str(text).lower())
