"""`medapp report PATH -o report.pdf`: draft a report about an image with the model and write it as a PDF.

The PDF carries the "AI DRAFT — not reviewed" watermark: a command-line draft is never signed. `--dicom-out` also
files it as a DICOM Encapsulated PDF into the source study; `--deidentify` leaves every patient identifier out of
both (and de-identifies the DICOM header the report is filed under).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from medapp.cli._common import add_model_args, add_view_args


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="draft a report about an image (PDF, optionally DICOM)",
        description="Draft a report with Dragonfly-Med from the modality's report template, parse it into "
        "sections and write it as a watermarked draft PDF for a clinician to review. Runs offline.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="image, DICOM file or slide")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="REPORT.pdf", help="PDF to write")
    parser.add_argument("--indication", default="", metavar="TEXT", help="clinical indication (goes into the "
                        "prompt and, verbatim, into the Indication section)")
    parser.add_argument("--dicom-out", type=Path, metavar="REPORT.dcm", help="also write a DICOM Encapsulated PDF")
    parser.add_argument("--deidentify", action="store_true", help="leave patient identifiers out of the outputs")
    add_view_args(parser)
    add_model_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from medapp.cli._common import audit_log, load_settings, load_view, model_holder, user_text
    from medapp.errors import UserError
    from medapp.inputs import record_open
    from medapp.jobs import draft_report
    from medapp.jobs.export import export_report
    from medapp.outputs import check_outputs

    for out in (args.output, args.dicom_out):
        if out is not None and not out.parent.is_dir():
            raise UserError(f"{out}: the folder {out.parent} does not exist")
    check_outputs((args.output, args.dicom_out), [args.path])  # before the model is loaded or anything written
    indication = user_text(args.indication, "the indication")
    settings = load_settings(args)
    audit = audit_log(settings)
    loaded = load_view(args, settings)
    source = record_open(audit, loaded)
    engine = model_holder(args, settings).get()
    with tqdm(total=settings.max_new_tokens, desc="drafting", unit="tok", file=sys.stderr, leave=False) as bar:
        report = draft_report(
            engine,
            loaded.image,
            modality=loaded.modality,
            indication=indication,
            dataset=loaded.dataset,
            frame=loaded.frame,
            region=loaded.region,
            window=loaded.window,
            source_sha256=source,
            settings=settings,
            on_token=lambda _piece: bar.update(1),
            audit=audit,
        )
    export_report(report, args.output, kind="pdf", deidentified=args.deidentify, settings=settings, audit=audit,
                  inputs=[args.path])
    print(f"draft report written to {args.output}")
    if args.dicom_out is not None:
        export_report(report, args.dicom_out, kind="dicom", deidentified=args.deidentify, source=loaded.dataset,
                      settings=settings, audit=audit, inputs=[args.path])
        print(f"DICOM Encapsulated PDF written to {args.dicom_out}")
    return 0
