"""`medapp audit verify [FILE]`: check the audit log's keyed hash chain and its anchor; name the first problem.

See `medapp.audit` for what the check proves and what it cannot. A log from before keyed auditing verifies as
"legacy, unkeyed" (exit 0, said in the output), since nothing better can be known about it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check the audit log",
        description="Work with the keyed, hash-chained audit log (append-only JSON Lines, no patient data).",
    )
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="check that no entry was edited, removed or inserted and that the end was not cut off",
        description="Recompute every entry's hash and HMAC (with this installation's key) and its link to the "
        "previous entry, then compare the end of the log with its anchor. Exit 0 if intact; exit 2 naming the "
        "first problem otherwise.",
    )
    verify.add_argument("file", nargs="?", type=Path, help="audit log to check (default: this user's log)")
    verify.add_argument("--expect", metavar="ENTRY:HMAC", help="also check that entry ENTRY carries HMAC (as "
                        "printed in a report's provenance; a prefix of 12+ hex digits is enough)")
    verify.add_argument("--key", type=Path, metavar="FILE", help="HMAC key file (default: the installation's key "
                        "for the default log, FILE.key beside another log)")
    verify.add_argument("--anchor", type=Path, metavar="FILE", help="anchor file (default: the installation's "
                        "anchor for the default log, FILE.anchor.json beside another log)")
    verify.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from medapp import paths
    from medapp.audit import companion_paths, parse_expect, verify
    from medapp.errors import UserError

    path = args.file if args.file is not None else paths.audit_path()
    expect = parse_expect(args.expect) if getattr(args, "expect", None) else None
    anchor = args.anchor if getattr(args, "anchor", None) is not None else companion_paths(path)[2]
    if not path.is_file() and not anchor.is_file():  # with an anchor, a missing log is a deleted one: verify says so
        raise UserError(f"{path}: no audit log there")
    result = verify(path, key_path=getattr(args, "key", None), anchor_path=getattr(args, "anchor", None),
                    expect=expect)
    if not result.ok:
        raise UserError(f"audit log damaged: {result}")
    print(result)
    return 0
