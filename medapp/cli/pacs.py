"""`medapp pacs echo | find | get`: the hospital network — check a node, search it, retrieve a study into a cache.

Every subcommand talks to one node: ``--pacs AET@HOST:PORT``, or ``--node NAME`` from the settings (``pacs_nodes``),
or the settings' default node. Only that node is ever contacted. Network failures are one line on stderr and exit
status 2 (`medapp.pacs.PacsError` is a `UserError`). Search results are printed (they are what the user asked
for) but never logged; the audit log gets the node, the UIDs and the names of the filters used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medapp.cli._common import positive_int


def add_node_args(parser: argparse.ArgumentParser) -> None:
    """--pacs / --node: the same two ways to name the node on every command that talks to a PACS."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--pacs", metavar="AET@HOST:PORT", help="the node to talk to, e.g. PACS@10.0.0.5:104 "
                       "(default: the settings' pacs_default_node, else the first of pacs_nodes)")
    group.add_argument("--node", metavar="NAME", help="a node from pacs_nodes in the settings, by name")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pacs",
        help="search a PACS, retrieve studies, check a node (DICOM network)",
        description="Talk to the DICOM nodes you configured (and only those): C-ECHO, C-FIND, C-GET / C-MOVE.",
    )
    sub = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)

    echo = sub.add_parser("echo", help="check that the node answers and accepts medapp (C-ECHO)")
    add_node_args(echo)
    echo.set_defaults(handler=run_echo)

    find = sub.add_parser("find", help="search studies (or the series of one study)",
                          description="Names and IDs take the wildcards * and ?. Dates are YYYY-MM-DD or YYYYMMDD.")
    find.add_argument("--patient-id", default="", metavar="ID")
    find.add_argument("--name", default="", metavar="PATTERN", help="patient name, e.g. 'DOE^J*'")
    find.add_argument("--date", metavar="DATE", help="study date (one day)")
    find.add_argument("--date-from", metavar="DATE", help="studies on or after this date")
    find.add_argument("--date-to", metavar="DATE", help="studies on or before this date")
    find.add_argument("--modality", default="", metavar="CODE", help="e.g. CT, MR, SM")
    find.add_argument("--accession", default="", metavar="NUMBER")
    find.add_argument("--study", default="", metavar="STUDY_UID", help="one study (with --level series: its series)")
    find.add_argument("--level", choices=("study", "series"), default="study", help="what to list (default study)")
    find.add_argument("--limit", type=positive_int, default=500, metavar="N", help="at most N studies (default 500)")
    find.add_argument("--json", action="store_true", help="print the matches as a JSON list")
    add_node_args(find)
    find.set_defaults(handler=run_find)

    get = sub.add_parser("get", help="retrieve a study into a local cache (resumable, verified)",
                         description="Files land in DIR/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm. Running it "
                         "again fetches only what is missing; nothing is stored twice.")
    get.add_argument("study_uid", metavar="STUDY_UID")
    get.add_argument("--series", action="append", metavar="UID", help="only this series (repeatable)")
    get.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="the cache folder")
    get.add_argument("--retrieve", choices=("get", "move"), help="C-GET (default) or C-MOVE to medapp's own "
                     "storage SCP (pacs_ae_title / pacs_port in the settings), for a PACS that requires it")
    add_node_args(get)
    get.set_defaults(handler=run_get)


def _context(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from medapp.cli._common import audit_log, load_settings
    from medapp.pacs.config import resolve_node

    settings = load_settings(args)
    node = resolve_node(settings, pacs=args.pacs, name=args.node)
    return settings, node, audit_log(settings)


def run_echo(args: argparse.Namespace) -> int:
    from medapp.jobs.pacs import pacs_echo

    settings, node, audit = _context(args)
    seconds = pacs_echo(node, settings=settings, audit=audit)
    print(f"{node}: echo OK ({seconds * 1000:.0f} ms), medapp is {settings.pacs_ae_title}")
    return 0


def _query(args: argparse.Namespace) -> Any:
    from medapp.errors import UserError
    from medapp.pacs.query import StudyQuery, parse_date

    if args.date and (args.date_from or args.date_to):
        raise UserError("--date is one day; use either it or --date-from / --date-to")
    day = parse_date(args.date, "--date") if args.date else None
    return StudyQuery(
        patient_id=args.patient_id,
        patient_name=args.name,
        date_from=day or (parse_date(args.date_from, "--date-from") if args.date_from else None),
        date_to=day or (parse_date(args.date_to, "--date-to") if args.date_to else None),
        modality=args.modality.strip().upper(),
        accession=args.accession,
        study_uid=args.study.strip(),
    )


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def _date(text: str) -> str:
    """DICOM ``YYYYMMDD`` as ``YYYY-MM-DD`` for people; anything else as it came."""
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def run_find(args: argparse.Namespace) -> int:
    from medapp.errors import UserError
    from medapp.jobs.pacs import pacs_find, pacs_find_series

    if args.level == "series":
        if not args.study:
            raise UserError("--level series lists the series of one study: add --study STUDY_UID")
        settings, node, audit = _context(args)
        series = pacs_find_series(node, args.study.strip(), settings=settings, audit=audit,
                                  modality=args.modality.strip().upper())
        if args.json:
            print(json.dumps([s.to_dict() for s in series], indent=2, ensure_ascii=False))
        elif not series:
            print("no series found")
        else:
            rows = [["#", "MODALITY", "INSTANCES", "DESCRIPTION", "SERIES UID"]]
            rows += [[_n(s.number), s.modality, _n(s.n_instances), s.description, s.series_uid] for s in series]
            print(_table(rows))
        return 0
    query = _query(args)
    settings, node, audit = _context(args)
    studies = pacs_find(node, query, settings=settings, audit=audit, limit=args.limit)
    if args.json:
        print(json.dumps([s.to_dict() for s in studies], indent=2, ensure_ascii=False))
        return 0
    if not studies:
        print("no studies found")
        return 0
    rows = [["DATE", "MODALITY", "PATIENT ID", "NAME", "ACCESSION", "DESCRIPTION", "SERIES", "IMAGES", "STUDY UID"]]
    rows += [[_date(s.study_date), s.modalities, s.patient_id, s.patient_name, s.accession, s.description,
              _n(s.n_series), _n(s.n_instances), s.study_uid] for s in studies]
    print(_table(rows))
    if len(studies) >= args.limit:
        print(f"(stopped at --limit {args.limit}; narrow the search to see more)", file=sys.stderr)
    return 0


def run_get(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from medapp.errors import UserError
    from medapp.jobs.pacs import pacs_get
    from medapp.pacs.errors import PacsError
    from medapp.pacs.query import is_uid

    study_uid = args.study_uid.strip()
    for what, uid in [("study UID", study_uid)] + [("--series", s) for s in args.series or []]:
        if not is_uid(uid):
            raise PacsError(f"{what}: {uid!r} is not a DICOM UID")
    if args.output.exists() and not args.output.is_dir():
        raise UserError(f"{args.output}: not a folder")
    if not args.output.parent.is_dir():
        raise UserError(f"{args.output}: the folder {args.output.parent} does not exist")
    settings, node, audit = _context(args)
    node = node.with_retrieve(args.retrieve)
    bars: list[Any] = []  # the bar appears with the first progress report, after the study was found

    def progress(p: Any) -> None:
        if not bars:
            # disable=None: a bar only on a terminal (no progress residue in logs, pipes or before an error)
            bars.append(tqdm(desc="retrieving", unit="img", total=p.total, file=sys.stderr, leave=False,
                             disable=None))
        bars[0].total = p.total
        bars[0].n = p.done
        bars[0].refresh()

    try:
        result = pacs_get(node, study_uid, args.output, settings=settings, series_uids=args.series, audit=audit,
                          progress=progress)
    finally:
        for bar in bars:
            bar.close()
    noun = "instance" if result.expected == 1 else "instances"
    print(f"{result.expected} {noun} of study {result.study_uid} in {result.folder} "
          f"({result.received} retrieved now, {result.already} already in the cache)")
    return 0
