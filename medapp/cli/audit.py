"""`medapp audit verify [FILE]`: check the audit log's hash chain and name the first broken line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check the audit log",
        description="Work with the hash-chained audit log (append-only JSON Lines, no patient data).",
    )
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="check that no entry was edited, removed or inserted",
        description="Recompute every entry's hash and its link to the previous entry. Exit 0 if intact; "
        "exit 2 naming the first broken line otherwise.",
    )
    verify.add_argument("file", nargs="?", type=Path, help="audit log to check (default: this user's log)")
    verify.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from medapp import paths
    from medapp.audit import verify
    from medapp.errors import UserError

    path = args.file if args.file is not None else paths.audit_path()
    if not path.is_file():
        raise UserError(f"{path}: no audit log there")
    result = verify(path)
    if not result.ok:
        raise UserError(f"audit log damaged: {result}")
    print(result)
    return 0
