"""`medapp eval run|score|compare`: reproduce the published Dragonfly-Med benchmark numbers on a local copy.

* ``run``: greedy answers to every question (batched, resumable: rerun the same command after a kill), then
  results.json, summary.md (published numbers beside ours), one PNG chart per category, provenance.
* ``score``: any predictions file (ours or LLaVA-Med's answer-file form) under ``strict`` or ``llava-med``; a partial
  file is scored on the questions it covers and the output says how many are missing.
* ``compare``: two result folders side by side with the questions they disagree on.

Nothing is downloaded: datasets are read from ``--data`` and the model from ``--model`` (or the settings).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medapp.cli._common import add_model_args, positive_int
from medapp.eval import DATASETS, RULES  # constants only: the package imports nothing heavy

EVAL_MAX_NEW_TOKENS = 32  # benchmark answers are a word or a phrase


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="reproduce the published Dragonfly-Med numbers on your copy of VQA-RAD, SLAKE or Path-VQA",
        description="Benchmark the model on a local copy of VQA-RAD, SLAKE or Path-VQA and compare with the "
        "published Dragonfly-Med numbers. Runs offline.",
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="answer every question (resumable) and write the results folder",
                         description="Answer every question of a dataset with greedy decoding, in batches, into "
                         "OUTDIR/predictions.jsonl (rerun the same command to resume), then write results.json, "
                         "summary.md and one chart per category.")
    _dataset_args(run)
    run.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR", help="results folder")
    run.add_argument("--limit", type=positive_int, metavar="N", help="only the first N questions")
    run.add_argument("--batch-size", type=positive_int, metavar="N", help="questions per model call (setting "
                     "batch_size)")
    run.add_argument("--prompt-template", metavar="TEXT", help="user message, with {question} where the question "
                     "goes (default: the question, then 'Answer the question using a single word or phrase.')")
    add_model_args(run)
    run.set_defaults(handler=run_command)

    score = sub.add_parser("score", help="score a predictions file (ours or LLaVA-Med's answer-file form)")
    _dataset_args(score)
    score.add_argument("--predictions", type=Path, required=True, metavar="PRED.jsonl",
                       help="one JSON object per line with question_id and text")
    score.add_argument("--rule", choices=RULES, default="strict", help="strict (default): every question counted; "
                       "llava-med: LLaVA-Med v1.0.0's scripts, quirks included")
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.set_defaults(handler=score_command)

    compare = sub.add_parser("compare", help="two result folders side by side, with per-question disagreements")
    compare.add_argument("a", type=Path, metavar="A/", help="first results folder")
    compare.add_argument("b", type=Path, metavar="B/", help="second results folder")
    compare.add_argument("--rule", choices=RULES, default="strict", help="which judgements to compare")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.set_defaults(handler=compare_command)


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, required=True, help="which benchmark")
    parser.add_argument("--data", type=Path, required=True, metavar="PATH", help="your local copy of it (folder, or "
                        "its main file)")
    parser.add_argument("--lang", default="en", metavar="CODE", help="SLAKE question language: en (default), zh, "
                        "or all")


def run_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from medapp.cli._common import audit_log, load_settings, model_holder
    from medapp.errors import UserError
    from medapp.eval.answer import DEFAULT_TEMPLATE
    from medapp.eval.datasets import load_dataset
    from medapp.eval.predictions import read_predictions
    from medapp.eval.report import RESULTS, SUMMARY, format_scores, write_results
    from medapp.eval.run import PREDICTIONS, RunSummary, check_run_config, run_eval
    from medapp.eval.scoring import score

    dataset = load_dataset(args.dataset, args.data, lang=args.lang)
    out = args.output
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    settings = load_settings(args)
    questions = dataset.limited(args.limit)
    template = args.prompt_template or DEFAULT_TEMPLATE
    max_new_tokens = args.max_new_tokens or EVAL_MAX_NEW_TOKENS
    # settings known without the model are checked now (the checkpoint hash and quantisation once it is loaded)
    state = check_run_config(out, {"dataset": dataset.name, "lang": args.lang, "template": template,
                                   "max_new_tokens": max_new_tokens})
    prior = out / PREDICTIONS
    done = set(read_predictions(prior).texts) if prior.exists() else set()
    left = sum(1 for q in questions if q.qid not in done)
    if left == 0 and state is not None:
        # a finished run asked again: re-report it without spending a minute loading the model
        summary = RunSummary(len(questions), len(questions), 0, False, 0.0, prior)
    else:
        engine = model_holder(args, settings).get()
        with tqdm(total=len(questions), initial=len(questions) - left, desc=f"eval {dataset.name}", unit="q",
                  file=sys.stderr) as bar:
            def on_progress(p: Any) -> None:
                bar.n = len(questions) - left + p.done
                bar.refresh()

            summary = run_eval(
                engine, dataset, out,
                template=template,
                batch_size=args.batch_size or settings.batch_size,
                max_new_tokens=max_new_tokens,
                limit=args.limit, lang=args.lang, on_progress=on_progress, audit=audit_log(settings),
            )
    write_results(out, dataset, questions)
    print(format_scores(score(questions, read_predictions(out / PREDICTIONS).texts, "strict", dataset.name)))
    parts = [f"answered {summary.done}"]
    if summary.skipped:
        parts.append(f"{summary.skipped} already in {PREDICTIONS}")
    print(f"{', '.join(parts)} -> {out / RESULTS}, {out / SUMMARY}")
    return 0


def score_command(args: argparse.Namespace) -> int:
    from medapp.eval.datasets import load_dataset
    from medapp.eval.predictions import read_predictions
    from medapp.eval.report import format_scores
    from medapp.eval.scoring import score

    dataset = load_dataset(args.dataset, args.data, lang=args.lang)
    predictions = read_predictions(args.predictions)
    result = score(dataset.questions, predictions.texts, args.rule, dataset.name)
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        print(format_scores(result))
        if predictions.truncated_tail:
            print(f"note: the last line of {args.predictions.name} was cut short and is ignored")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from medapp.eval.compare import compare_results, format_comparison, load_results

    comparison = compare_results(load_results(args.a), load_results(args.b), args.rule)
    if args.json:
        print(json.dumps(comparison.to_json(), sort_keys=True, ensure_ascii=False))
    else:
        print(format_comparison(comparison, str(args.a), str(args.b)))
    return 0
