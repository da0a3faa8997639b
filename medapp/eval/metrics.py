"""The `strict` rule, as pure functions of (prediction, ground truth) strings.

Why a rule of our own beside LLaVA-Med's (`medapp.eval.llava_med`): the LLaVA-Med scripts test closed answers by
*substring* (so "no" is found in "normal", "nodule" and "know", and a prediction saying both "yes" and "no" is right
whatever the truth), score closed answers that are not yes/no as wrong unless the prediction happens to contain
"yes" or "no", and — in the Path-VQA script — drop from the denominator every closed prediction that contains yes/no
but not the answer. A site proving that its copy of the model is as good as the paper needs a number with none of
that. `strict`:

* **Closed, yes/no truth:** the prediction's polarity is the set of whole words "yes" / "no" in its normalised
  tokens. Correct iff that set is exactly {truth}: "No." and "no, there is no effusion" say no; "yes and no", or a
  prediction with neither word, is wrong. Every closed question is in the denominator.
* **Closed, other truth** (e.g. SLAKE "Which is bigger, liver or spleen?" -> "liver"): correct iff the normalised
  truth occurs in the normalised prediction as a whole-word sequence ("the liver" and "liver is larger" are right,
  "livers" is not). The options are not parsed from the question, so a prediction repeating both ("liver or
  spleen") counts as right: a known leniency, rare with short-answer prompts.
* **Open:** token precision, recall and F1 over the multiset of normalised tokens (SQuAD-style: a word counts as
  often as it occurs in both), and exact match of the normalised strings. An empty prediction scores 0.

All normalisation is `medapp.eval.normalize.tokens`, one function for every number.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from medapp.eval.normalize import normalize, tokens

__all__ = ["YES_NO", "TokenScores", "is_yes_no", "polarity", "closed_correct", "token_scores", "exact_match"]

YES_NO = frozenset({"yes", "no"})


@dataclass(frozen=True)
class TokenScores:
    """Token overlap of one prediction with its truth, each in 0..1."""

    precision: float
    recall: float
    f1: float


def is_yes_no(answer: str) -> bool:
    """True when the (normalised) answer is exactly "yes" or "no": what makes a Path-VQA / HF question closed."""
    return normalize(answer) in YES_NO


def polarity(prediction: str) -> frozenset[str]:
    """The whole words "yes" / "no" present in the normalised prediction (empty, one, or both)."""
    return frozenset(t for t in tokens(prediction) if t in YES_NO)


def _contains_sequence(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def closed_correct(prediction: str, truth: str) -> bool:
    """The strict closed-question rule (module docstring): yes/no by polarity, anything else as a whole word."""
    gt = normalize(truth)
    if gt in YES_NO:
        return polarity(prediction) == {gt}
    return _contains_sequence(tokens(prediction), gt.split())


def token_scores(prediction: str, truth: str) -> TokenScores:
    """Multiset token precision, recall and F1 of `prediction` against `truth` (0 when either is empty)."""
    pred, gt = Counter(tokens(prediction)), Counter(tokens(truth))
    overlap = sum((pred & gt).values())
    if not pred or not gt or overlap == 0:
        return TokenScores(0.0, 0.0, 0.0)
    precision = overlap / sum(pred.values())
    recall = overlap / sum(gt.values())
    return TokenScores(precision, recall, 2 * precision * recall / (precision + recall))


def exact_match(prediction: str, truth: str) -> bool:
    """Normalised strings equal (an empty prediction never matches)."""
    pred = normalize(prediction)
    return bool(pred) and pred == normalize(truth)
