"""Two result folders side by side: numbers, differences, and the questions on which they disagree.

The usual pair is the same model at full precision and in 4-bit (or two sites, or two checkpoints). A difference in
one headline number can hide many flips that cancel out, so the per-question list matters: a question is a
disagreement when the two runs are judged differently under the rule (closed: right vs wrong; open: exact match or
token F1 differ). Only questions answered in both runs are compared; results.json already holds every judgement,
so comparing needs neither the dataset nor the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medapp.errors import UserError

__all__ = ["Comparison", "compare_results", "format_comparison", "load_results"]

FIELDS = ("closed_accuracy", "open_recall", "open_precision", "open_f1", "open_exact", "all_f1", "overall_accuracy")


def load_results(folder: str | Path) -> dict[str, Any]:
    path = Path(folder)
    path = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["scores"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a medapp eval results.json (run `medapp eval run` into that folder first)") \
            from exc
    return data


@dataclass
class Comparison:
    rule: str
    dataset: str
    numbers: dict[str, tuple[float | None, float | None]]  # field -> (A, B)
    n_common: int
    only_a: int
    only_b: int
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    answers_differ: int = 0  # different text, same judgement

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "dataset": self.dataset, "n_common": self.n_common, "only_a": self.only_a,
            "only_b": self.only_b, "answers_differ": self.answers_differ,
            "numbers": {k: {"a": a, "b": b, "difference": None if a is None or b is None else b - a}
                        for k, (a, b) in self.numbers.items()},
            "disagreements": self.disagreements,
        }


def _judgement(q: dict[str, Any]) -> tuple[Any, ...]:
    if q["closed"]:
        return ("closed", q["correct"])
    return ("open", q["exact"], round(q["f1"], 9))


def compare_results(a: dict[str, Any], b: dict[str, Any], rule: str = "strict") -> Comparison:
    if a.get("dataset") != b.get("dataset"):
        raise UserError(f"the folders hold different datasets ({a.get('dataset')} and {b.get('dataset')})")
    try:
        sa, sb = a["scores"][rule], b["scores"][rule]
    except KeyError:
        raise UserError(f"no {rule!r} scores in both results") from None
    qa = {q["qid"]: q for q in sa.get("questions", [])}
    qb = {q["qid"]: q for q in sb.get("questions", [])}
    common = [qid for qid in qa if qid in qb]
    result = Comparison(rule, a["dataset"], {k: (sa.get(k), sb.get(k)) for k in FIELDS}, len(common),
                        len(set(qa) - set(qb)), len(set(qb) - set(qa)))
    for qid in common:
        x, y = qa[qid], qb[qid]
        if _judgement(x) != _judgement(y):
            result.disagreements.append({
                "qid": qid, "closed": x["closed"], "answer": x["answer"], "a": x["prediction"], "b": y["prediction"],
                "a_correct": x["correct"] if x["closed"] else x["exact"],
                "b_correct": y["correct"] if y["closed"] else y["exact"],
                "a_f1": x["f1"], "b_f1": y["f1"],
            })
        elif x["prediction"].strip() != y["prediction"].strip():
            result.answers_differ += 1
    return result


def _pct(v: float | None) -> str:
    return "   n/a" if v is None else f"{100 * v:6.1f}"


def format_comparison(c: Comparison, a_name: str, b_name: str, *, max_rows: int = 50) -> str:
    lines = [f"{c.dataset}, rule {c.rule}: A = {a_name}, B = {b_name}", f"{'':26}{'A':>7}{'B':>7}{'B-A':>8}"]
    for k, (x, y) in c.numbers.items():
        diff = "     n/a" if x is None or y is None else f"{100 * (y - x):+8.1f}"
        lines.append(f"  {k:24}{_pct(x)} {_pct(y)}{diff}")
    lines.append(f"questions in both: {c.n_common} (only in A: {c.only_a}, only in B: {c.only_b}); judged "
                 f"differently: {len(c.disagreements)}; same judgement, different text: {c.answers_differ}")
    for d in c.disagreements[:max_rows]:
        kind = "closed" if d["closed"] else "open"
        lines.append(f"  {d['qid']} [{kind}] truth {d['answer']!r}: A {d['a']!r} ({_mark(d['a_correct'])}) | "
                     f"B {d['b']!r} ({_mark(d['b_correct'])})")
    if len(c.disagreements) > max_rows:
        lines.append(f"  ... {len(c.disagreements) - max_rows} more (--json lists all)")
    return "\n".join(lines)


def _mark(value: Any) -> str:
    if value is None:
        return "left out"
    if isinstance(value, bool):
        return "right" if value else "wrong"
    return f"exact {value:.2f}"
