"""What a reviewer reads after a run: results.json, summary.md (published numbers beside ours), one PNG per category.

Why both rules in every result: `strict` is the number a site can defend (every question counted, no substring
luck); `llava-med` is the number comparable with papers scored by LLaVA-Med's scripts. Showing both, with the
published figure and the difference, lets a reviewer see at once whether the deployed copy (and its 4-bit
quantisation) lost accuracy and how much of any gap is the scoring rule. The model's provenance comes from
``run.json`` (written while answering), so a finished run can be re-reported without loading the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medapp.eval.chart import render_category_chart
from medapp.eval.datasets import EvalDataset, Question
from medapp.eval.predictions import read_predictions
from medapp.eval.provenance import dataset_provenance, now, software_versions
from medapp.eval.published import published_for
from medapp.eval.run import PREDICTIONS, RUN_FILE
from medapp.eval.scoring import RULES, ScoreResult, score

__all__ = ["RESULTS", "SUMMARY", "write_results", "format_scores", "pct"]

RESULTS = "results.json"
SUMMARY = "summary.md"
HEADLINE = (("closed_accuracy", "closed accuracy"), ("open_recall", "open recall"), ("open_precision",
            "open precision"), ("open_f1", "open F1"), ("open_exact", "open exact match"), ("all_f1",
            "token F1 (all questions)"), ("overall_accuracy", "overall accuracy"))


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def format_scores(result: ScoreResult) -> str:
    """Plain-text summary of one rule's scores (what `medapp eval score` prints)."""
    t = result.totals
    lines = [f"{result.dataset}, rule {result.rule}: {t['n']} of {result.n_questions} questions scored"
             + (f", {result.n_missing} missing (no prediction)" if result.n_missing else "")
             + (f", {result.n_unknown} predictions for unknown ids ignored" if result.n_unknown else "")]
    closed = f"  closed: {t['n_closed']} questions, accuracy {pct(t['closed_accuracy'])} %"
    if t["closed_dropped"]:
        closed += f" (over {t['closed_counted']}: {t['closed_dropped']} wrong yes/no answers left out, as the rule does)"
    lines.append(closed)
    lines.append(f"  open:   {t['n_open']} questions, recall {pct(t['open_recall'])} %, precision "
                 f"{pct(t['open_precision'])} %, F1 {pct(t['open_f1'])} %, exact {pct(t['open_exact'])} %")
    lines.append(f"  all:    token F1 {pct(t['all_f1'])} %, overall accuracy {pct(t['overall_accuracy'])} %")
    return "\n".join(lines)


def _published_rows(dataset: str, model_version: str | None, scores: dict[str, ScoreResult]) -> list[dict[str, Any]]:
    rows = []
    for p in published_for(dataset, model_version):
        ours = {rule: scores[rule].totals.get(p.field) for rule in scores}
        rows.append({"model": p.model, "metric": p.metric, "field": p.field, "published": p.value, "ours": ours,
                     "difference": {r: (None if v is None else v - p.value) for r, v in ours.items()},
                     "source": p.source, "note": p.note})
    return rows


def _markdown(data: dict[str, Any], scores: dict[str, ScoreResult], charts: dict[str, str]) -> str:
    model = data["provenance"]["model"] or {}
    ds = data["provenance"]["dataset"]
    strict = scores["strict"]
    out = [f"# Dragonfly-Med on {data['dataset']}: reproduction report", ""]
    out.append(f"Model `{model.get('model_id')}` (config {model.get('version')}), checkpoint sha256 "
               f"`{model.get('checkpoint_sha256')}`, quantisation **{model.get('quant')}**, {model.get('device')} "
               f"{model.get('dtype')}; medapp {data['provenance']['software'].get('medapp')}; greedy decoding, "
               f"at most {data['provenance']['run'].get('max_new_tokens')} new tokens.")
    out.append(f"Questions scored: {strict.totals['n']} of {strict.n_questions}"
               + (f" (**{strict.n_missing} missing**: partial run)" if strict.n_missing else "")
               + f"; the copy holds {ds['n_questions_in_copy']}.")
    out += ["", "## Published numbers beside ours", ""]
    if data["published"]:
        out.append("| model | metric | published | ours (strict) | ours (llava-med) | difference (strict) | "
                   "difference (llava-med) | how compared |")
        out.append("|---|---|---|---|---|---|---|---|")
        for row in data["published"]:
            diff = {r: ("n/a" if d is None else f"{100 * d:+.1f}") for r, d in row["difference"].items()}
            out.append(f"| {row['model']} | {row['metric']} | {pct(row['published'])} | {pct(row['ours']['strict'])} "
                       f"| {pct(row['ours']['llava-med'])} | {diff['strict']} | {diff['llava-med']} | "
                       f"{row['note']} ({row['source']}) |")
    else:
        out.append("No published Dragonfly-Med number for this dataset.")
    out += ["", "Differences are percentage points (ours − published).", "", "## All numbers (%)", ""]
    out.append("| rule | n closed | n open | " + " | ".join(label for _, label in HEADLINE) + " |")
    out.append("|---|---|---|" + "---|" * len(HEADLINE))
    for rule, result in scores.items():
        t = result.totals
        out.append(f"| {rule} | {t['n_closed']} | {t['n_open']} | " + " | ".join(pct(t[k]) for k, _ in HEADLINE)
                   + " |")
    dropped = scores["llava-med"].totals["closed_dropped"]
    if dropped:
        out.append(f"\nUnder llava-med, {dropped} closed answer(s) saying yes/no wrongly were left out of the "
                   "closed denominator, exactly as LLaVA-Med's Path-VQA script does.")
    out += ["", "Rules: `strict` counts every question (whole-word yes/no, one normalisation); `llava-med` is "
            "LLaVA-Med v1.0.0's scripts reproduced, quirks included (see `medapp/eval/llava_med.py`).", ""]
    for kind, groups in strict.by_category.items():
        out += [f"## By {kind.replace('_', ' ')} (strict)", ""]
        out.append("| category | n closed | closed accuracy | n open | open recall | open F1 |")
        out.append("|---|---|---|---|---|---|")
        for value, t in groups.items():
            out.append(f"| {value} | {t['n_closed']} | {pct(t['closed_accuracy'])} | {t['n_open']} | "
                       f"{pct(t['open_recall'])} | {pct(t['open_f1'])} |")
        if kind in charts:
            out += ["", f"![{kind}]({charts[kind]})"]
        out.append("")
    out += ["## Provenance", "", "```json", json.dumps(data["provenance"], indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(out)


def write_results(out_dir: str | Path, dataset: EvalDataset, questions: list[Question]) -> dict[str, Any]:
    """Score OUTDIR/predictions.jsonl under both rules and write results.json, summary.md and the charts."""
    from reports.atomic import atomic_write_bytes

    out_dir = Path(out_dir)
    run_state = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8"))
    sessions = run_state.get("sessions", [])
    model = sessions[-1]["model"] if sessions else None
    predictions = read_predictions(out_dir / PREDICTIONS)
    scores = {rule: score(questions, predictions.texts, rule, dataset.name) for rule in RULES}
    template = run_state["config"]["template"]
    data: dict[str, Any] = {
        "schema": "medapp-eval-results/1",
        "dataset": dataset.name,
        "created": now(),
        "prompt": {"template": template, "chat_form": "Llama-3 chat (models.prompts.build_prompt), image block "
                   "before BOS", "example": template.replace("{question}", questions[0].question) if questions
                   else None},
        "provenance": {"model": model, "software": software_versions(),
                       "dataset": dataset_provenance(dataset, questions), "run": run_state["config"],
                       "sessions": sessions},
        "published": _published_rows(dataset.name, (model or {}).get("version"), scores),
        "scores": {rule: r.to_json(with_questions=True) for rule, r in scores.items()},
    }
    charts: dict[str, str] = {}
    for kind, groups in scores["strict"].by_category.items():
        name = f"chart_{kind}.png"
        render_category_chart(kind, groups, out_dir / name, title=f"{dataset.name} by {kind.replace('_', ' ')} "
                              "(strict)")
        charts[kind] = name
    data["charts"] = charts
    atomic_write_bytes(out_dir / RESULTS, (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode())
    atomic_write_bytes(out_dir / SUMMARY, _markdown(data, scores, charts).encode("utf-8"))
    return data
