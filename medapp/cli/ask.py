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

    def on_token(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    answer = ask(engine, loaded.image, question, on_token=on_token, settings=settings, audit=audit,
                 source_sha256=source)
    sys.stdout.write("\n")
    if answer.stop_reason == "max_new_tokens":
        print(f"medapp: the answer was cut at {settings.max_new_tokens} tokens (--max-new-tokens)", file=sys.stderr)
    return 0
