"""`medapp ask PATH "question"`: stream the model's answer about one image, DICOM or slide to stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from medapp.cli._common import add_model_args, add_view_args


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ask",
        help="ask the model a question about an image",
        description="Ask Dragonfly-Med one question about an image, a DICOM file (shown at its default window) or a "
        "whole-slide image (its overview, or --region). The answer streams to standard output. Runs offline.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="image, DICOM file or slide")
    parser.add_argument("question", help="the question, in quotes")
    parser.add_argument(
        "--timings", action="store_true",
        help="after the answer, print to standard error where the time to the first token went (preprocess, CLIP, "
        "image-block prefill, prompt prefill, first token)",
    )
    add_view_args(parser)
    add_model_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from medapp.cli._common import audit_log, load_settings, load_view, model_holder, user_text
    from medapp.inputs import record_open
    from medapp.jobs import ask

    question = user_text(args.question, "the question")
    settings = load_settings(args)
    audit = audit_log(settings)
    loaded = load_view(args, settings)  # bad input fails here, before the model loads
    source = record_open(audit, loaded)
    engine = model_holder(args, settings).get()
    timings = None
    if args.timings:
        from models.engine import Timings  # torch-free

        timings = Timings()

    def on_token(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    answer = ask(engine, loaded.image, question, on_token=on_token, settings=settings, audit=audit,
                 source_sha256=source, timings=timings)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if answer.stop_reason == "max_new_tokens":
        print(f"medapp: the answer was cut at {settings.max_new_tokens} tokens (--max-new-tokens)", file=sys.stderr)
    if timings is not None:
        print(format_timings(timings), file=sys.stderr)
    return 0


def format_timings(timings: Any) -> str:
    """The `--timings` report: one `name  ms` line per stage, then their sum and the engine's total.

    Why a small table rather than one line: it is read by people comparing runs, and lines grep well in scripts.
    """
    lines = ["medapp: time to first token"]
    for name, seconds in timings.stages().items():
        lines.append(f"  {name.replace('_', ' '):<15} {seconds * 1000:10.1f} ms")
    lines.append(f"  {'sum of stages':<15} {sum(timings.stages().values()) * 1000:10.1f} ms")
    note = " (image encoding cached)" if timings.cached_image else ""
    lines.append(f"  {'total':<15} {timings.total * 1000:10.1f} ms{note}")
    return "\n".join(lines)
