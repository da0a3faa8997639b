"""One scoring rule applied to a benchmark's questions and a set of predictions: per question, totals, categories.

Why it is shaped this way:

* **Only covered questions are scored.** A partial predictions file (a run still going, or `--limit`) gives numbers
  over the questions it answers, and the result says how many are missing, so a partial number is never mistaken
  for a full one. Predictions for ids the dataset does not hold are counted (`n_unknown`) and ignored.
* **The closed/open split is the dataset's, whatever the rule**, so `n_closed` and `n_open` are the same under
  `strict` and `llava-med`; what differs is how an answer is judged and — for LLaVA-Med's Path-VQA script — which
  closed answers stay in the denominator (`closed_counted`, `closed_dropped`).
* **Every number is a fraction 0..1** (`None` when there is nothing to average), the same fields under both rules:
  ``closed_accuracy`` (right / counted closed), ``open_precision``, ``open_recall``, ``open_f1``, ``open_exact``
  (means over open questions), ``all_f1`` (token F1 over every covered question, closed ones too: the "token F1"
  Med-PaLM M reports for Path-VQA, our reading of Dragonfly's) and ``overall_accuracy`` (closed judgement and open
  exact match, averaged over every counted question).
* Per-category breakdowns (modality, organ, question type, content type, answer type — whatever the dataset
  records) use the same totals on each subset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from medapp.errors import UserError
from medapp.eval import RULES, llava_med, metrics
from medapp.eval.datasets import Question

__all__ = ["RULES", "QuestionScore", "ScoreResult", "score_question", "totals", "score"]

CATEGORY_KINDS = ("answer_type", "modality", "organ", "question_type", "content_type")


@dataclass(frozen=True)
class QuestionScore:
    """One covered question under one rule. `correct` is None for open questions and for closed answers the rule
    leaves out of the denominator; `exact` is 0/1 under strict, LLaVA-Med's ratio under llava-med."""

    qid: str
    closed: bool
    answer: str
    prediction: str
    correct: bool | None
    precision: float
    recall: float
    f1: float
    exact: float
    categories: Mapping[str, str] = field(default_factory=dict)


def score_question(q: Question, prediction: str, rule: str, dataset: str) -> QuestionScore:
    """Judge one prediction under `rule` ("strict" or "llava-med"; `dataset` picks LLaVA-Med's script)."""
    if rule == "strict":
        tok = metrics.token_scores(prediction, q.answer)
        exact = float(metrics.exact_match(prediction, q.answer))
        correct = metrics.closed_correct(prediction, q.answer) if q.closed else None
        return QuestionScore(q.qid, q.closed, q.answer, prediction, correct, tok.precision, tok.recall, tok.f1,
                             exact, q.categories)
    if rule == "llava-med":
        pred, gt = llava_med.prepare(prediction), llava_med.prepare(q.answer)
        f1, precision, recall = llava_med.f1_precision_recall(pred, gt)
        exact = llava_med.exact_match_score(pred, gt)
        correct = None
        if q.closed:
            hit = llava_med.closed_hit(pred, gt, drop_wrong=llava_med.DROPS_WRONG_CLOSED.get(dataset, False))
            correct = None if hit is None else bool(hit)
        return QuestionScore(q.qid, q.closed, q.answer, prediction, correct, precision, recall, f1, exact,
                             q.categories)
    raise UserError(f"unknown scoring rule {rule!r} (known: {', '.join(RULES)})")


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def totals(scores: Iterable[QuestionScore]) -> dict[str, Any]:
    """The summary numbers of a set of scored questions (module docstring)."""
    scores = list(scores)
    closed = [s for s in scores if s.closed]
    open_ = [s for s in scores if not s.closed]
    counted = [s for s in closed if s.correct is not None]
    right = sum(1 for s in counted if s.correct)
    judged = [float(bool(s.correct)) for s in counted] + [s.exact for s in open_]
    return {
        "n": len(scores),
        "n_closed": len(closed),
        "n_open": len(open_),
        "closed_correct": right,
        "closed_counted": len(counted),
        "closed_dropped": len(closed) - len(counted),
        "closed_accuracy": right / len(counted) if counted else None,
        "open_precision": _mean([s.precision for s in open_]),
        "open_recall": _mean([s.recall for s in open_]),
        "open_f1": _mean([s.f1 for s in open_]),
        "open_exact": _mean([s.exact for s in open_]),
        "all_f1": _mean([s.f1 for s in scores]),
        "overall_accuracy": _mean(judged),
    }


@dataclass
class ScoreResult:
    """Everything `medapp eval score --json` prints and results.json stores for one rule."""

    dataset: str
    rule: str
    n_questions: int  # in the dataset (after --limit, for a run)
    n_missing: int  # questions without a prediction
    n_unknown: int  # predictions whose id the dataset does not hold
    totals: dict[str, Any]
    by_category: dict[str, dict[str, dict[str, Any]]]
    questions: list[QuestionScore]

    def to_json(self, *, with_questions: bool = False) -> dict[str, Any]:
        """Flat top-level numbers (n_closed, closed_accuracy ...) plus counts and `by_category`."""
        out: dict[str, Any] = {"dataset": self.dataset, "rule": self.rule, "n_questions": self.n_questions,
                               "n_scored": self.totals["n"], "n_missing": self.n_missing,
                               "n_unknown": self.n_unknown}
        out.update({k: v for k, v in self.totals.items() if k != "n"})
        out["by_category"] = self.by_category
        if with_questions:
            out["questions"] = [asdict(q) for q in self.questions]
        return out


def score(questions: Sequence[Question], predictions: Mapping[str, str], rule: str, dataset: str) -> ScoreResult:
    """Score every question that has a prediction; missing and unknown ids are counted, not guessed."""
    if rule not in RULES:
        raise UserError(f"unknown scoring rule {rule!r} (known: {', '.join(RULES)})")
    known = {q.qid for q in questions}
    scored = [score_question(q, predictions[q.qid], rule, dataset) for q in questions if q.qid in predictions]
    by_category: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in CATEGORY_KINDS:
        groups: dict[str, list[QuestionScore]] = {}
        for s in scored:
            value = s.categories.get(kind)
            if value:
                groups.setdefault(value, []).append(s)
        if groups:
            by_category[kind] = {value: totals(group) for value, group in sorted(groups.items())}
    return ScoreResult(
        dataset=dataset, rule=rule, n_questions=len(questions), n_missing=len(questions) - len(scored),
        n_unknown=sum(1 for qid in predictions if qid not in known), totals=totals(scored),
        by_category=by_category, questions=scored,
    )
