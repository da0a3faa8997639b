"""`medapp report PATH -o report.pdf`: draft a report about an image with the model and write it as a PDF.

The PDF carries the "AI DRAFT — not reviewed" watermark unless the clinician signs it with `--sign NAME`, which
needs `--confirm-sign` as well (a signature vouches for text the model wrote). `--dicom-out` also files it as a
DICOM Encapsulated PDF into the source study, `--sr-out` as a DICOM Basic Text SR; `--deidentify` leaves every
patient identifier out of the PDFs (and de-identifies the DICOM header the PDF is filed under).
`--store` sends the Encapsulated PDF and the SR to the PACS (`--pacs AET@HOST:PORT` or `--node NAME`), into the
source study: only a signed report, unless `--allow-draft` says to send the draft, marked as a draft.
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
    parser.add_argument("--sr-out", type=Path, metavar="REPORT_SR.dcm", help="also write the report as a DICOM "
                        "Basic Text SR (sections, signed/draft state, source references, provenance)")
    parser.add_argument("--deidentify", action="store_true", help="leave patient identifiers out of the outputs")
    sign = parser.add_argument_group("signing and storing to the PACS")
    sign.add_argument("--sign", metavar="NAME", help="sign the report as clinician NAME (needs --confirm-sign)")
    sign.add_argument("--confirm-sign", action="store_true", help="confirm that NAME reviewed the drafted text and "
                      "vouches for it (required with --sign)")
    sign.add_argument("--store", action="store_true", help="send the report as Encapsulated PDF and SR to the PACS, "
                      "into the source study (a signed report only, unless --allow-draft)")
    sign.add_argument("--allow-draft", action="store_true", help="with --store: send an unsigned draft, marked as a "
                      "draft (VerificationFlag UNVERIFIED, watermark)")
    from medapp.cli.pacs import add_node_args

    add_node_args(sign)
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

    for out in (args.output, args.dicom_out, args.sr_out):
        if out is not None and not out.parent.is_dir():
            raise UserError(f"{out}: the folder {out.parent} does not exist")
    check_outputs((args.output, args.dicom_out, args.sr_out), [args.path])  # before the model runs or anything is written
    indication = user_text(args.indication, "the indication")
    _check_sign_and_store(args)
    settings = load_settings(args)
    node = None
    if args.store:
        from medapp.pacs.config import resolve_node

        node = resolve_node(settings, pacs=args.pacs, name=args.node)  # a bad node fails before the model runs
    audit = audit_log(settings)
    loaded = load_view(args, settings)
    if args.store and loaded.dataset is None:
        raise UserError(f"{args.path}: --store files the report into the image's study in the PACS, so it needs a "
                        "DICOM image")
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
    if args.sign:
        from medapp.jobs.export import sign_report

        sign_report(report, args.sign, audit=audit)
    state = "signed" if report.is_signed else "draft"
    export_report(report, args.output, kind="pdf", deidentified=args.deidentify, settings=settings, audit=audit,
                  inputs=[args.path])
    print(f"{state} report written to {args.output}")
    if args.dicom_out is not None:
        export_report(report, args.dicom_out, kind="dicom", deidentified=args.deidentify, source=loaded.dataset,
                      settings=settings, audit=audit, inputs=[args.path])
        print(f"DICOM Encapsulated PDF written to {args.dicom_out}")
    if args.sr_out is not None:
        _write_sr(report, args.sr_out, loaded.dataset, audit)
        print(f"DICOM SR written to {args.sr_out}")
    if node is not None:
        _store(report, loaded.dataset, node, args, settings, audit)
    return 0


def _check_sign_and_store(args: argparse.Namespace) -> None:
    """Refuse contradictory flags before the model runs, each with the fix in the message."""
    from medapp.errors import UserError

    if args.sign is not None and not args.sign.strip():
        raise UserError("--sign needs the clinician's name")
    if args.sign and not args.confirm_sign:
        raise UserError("--sign signs text the model drafted; add --confirm-sign to confirm the named clinician "
                        "reviewed it and vouches for it")
    if args.confirm_sign and not args.sign:
        raise UserError("--confirm-sign goes with --sign NAME")
    if args.sr_out is not None and args.deidentify:
        raise UserError("--sr-out cannot be de-identified (PS3.15 removes an SR's whole content); leave out "
                        "--deidentify or --sr-out")
    if not args.store:
        for flag, value in (("--allow-draft", args.allow_draft), ("--pacs", args.pacs), ("--node", args.node)):
            if value:
                raise UserError(f"{flag} only applies with --store")
        return
    if args.deidentify:
        raise UserError("--store files the report into the patient's study in the PACS; it cannot be combined with "
                        "--deidentify")
    if not args.sign and not args.allow_draft:
        raise UserError("--store sends only a signed report: add --sign NAME --confirm-sign, or --allow-draft to "
                        "send the unsigned draft marked as a draft")


def _write_sr(report: Any, path: Path, source: Any, audit: Any) -> None:
    import hashlib

    from reports.atomic import atomic_write_bytes
    from reports.dicom_pdf import dicom_bytes
    from reports.dicom_sr import report_sr

    data = dicom_bytes(report_sr(report, source))
    if audit is not None:  # before the file exists: no report leaves medapp unaudited
        audit.record("export", inputs=[report.content_sha256()], format="sr", deidentified=False,
                     report_state=report.state, output_sha256=hashlib.sha256(data).hexdigest())
    atomic_write_bytes(path, data)


def _store(report: Any, source: Any, node: Any, args: argparse.Namespace, settings: Any, audit: Any) -> None:
    """C-STORE the PDF and the SR; one line per object, and a failure if any was refused."""
    from medapp.jobs.pacs import store_report
    from medapp.pacs.errors import PacsError

    outcomes = store_report(report, source, node, settings=settings, audit=audit, allow_draft=args.allow_draft)
    for outcome in outcomes:
        print(f"{node}: {outcome}")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise PacsError(f"{node}: {len(failed)} of {len(outcomes)} report objects were not stored "
                        f"({'; '.join(f'{o.kind}: {o.message}' for o in failed)})")
