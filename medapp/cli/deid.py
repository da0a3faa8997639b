"""`medapp deid IN OUT`: write de-identified copies of a DICOM file or of every DICOM file in a folder.

One `Deidentifier` serves the whole run, so UIDs are remapped consistently and a de-identified series still
hangs together. Files that are not DICOM are *not* copied: a screenshot or PDF beside the images could carry a
name in its pixels, and de-identifying it is not something medapp can promise. Pixel data is not cleaned
(PS3.15 Basic Profile without the Clean Pixel Data option); dicom_io warns when burned-in text is likely.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deid",
        help="de-identify a DICOM file or folder",
        description="Write de-identified copies (DICOM PS3.15 Basic Application Level Confidentiality Profile, "
        "consistent UID remapping within one run) of IN to OUT. IN may be a file (OUT is then a file) or a folder "
        "(OUT is a folder; the layout is kept and non-DICOM files are skipped). Burned-in pixel text is not removed.",
    )
    parser.add_argument("src", type=Path, metavar="IN", help="DICOM file or folder")
    parser.add_argument("dst", type=Path, metavar="OUT", help="output file or folder")
    parser.set_defaults(handler=run)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dicom_io.deid import Deidentifier, deidentify_file
    from dicom_io.errors import InputError
    from dicom_io.reading import is_dicom
    from medapp.cli._common import audit_log, load_settings
    from medapp.errors import UserError
    from medapp.hashing import file_sha256

    src, dst = args.src, args.dst
    if not src.exists():
        raise UserError(f"{src}: no such file or folder")
    if _same(src, dst):
        raise UserError(f"{dst}: the output must differ from the input (originals are never overwritten)")
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: is a file; give a folder for a folder input")
        if dst.resolve().is_relative_to(src.resolve()):
            raise UserError(f"{dst}: the output folder must not be inside the input folder")
        files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("."))
        pairs = [(p, dst / p.relative_to(src)) for p in files]
    else:
        target = dst / src.name if dst.is_dir() else dst
        pairs = [(src, target)]

    settings = load_settings(args)
    deidentifier = Deidentifier()
    done: list[str] = []
    skipped = failed = 0
    for source, target in tqdm(pairs, desc="de-identifying", unit="file", disable=len(pairs) < 2, file=sys.stderr):
        if not is_dicom(source):
            skipped += 1
            if len(pairs) == 1:
                raise UserError(f"{source}: not a DICOM file; nothing to de-identify")
            continue
        try:
            deidentify_file(source, target, deidentifier)
        except InputError as exc:
            failed += 1
            tqdm.write(f"medapp: skipped {' '.join(str(exc).split())}", file=sys.stderr)
            continue
        done.append(file_sha256(source))
    for warning in sorted(set(deidentifier.warnings)):
        print(f"medapp: warning: {warning}", file=sys.stderr)
    audit_log(settings).record("deid", inputs=done, n_inputs=len(pairs), n_done=len(done), n_failed=failed,
                               n_skipped=skipped)
    print(f"de-identified {len(done)} file(s) into {dst}" + (f"; skipped {skipped} non-DICOM file(s)" if skipped else ""))
    if failed:
        raise UserError(f"{failed} of {len(pairs)} file(s) could not be de-identified (listed above)")
    if not done:
        raise UserError(f"{src}: no DICOM files found")
    return 0
