"""`medapp deid IN OUT`: write de-identified copies of a DICOM file or of every DICOM file in a folder.

One `Deidentifier` serves the whole run, so UIDs are remapped consistently and a de-identified series still
hangs together. Files that are not DICOM are *not* copied: a screenshot or PDF beside the images could carry a
name in its pixels, and de-identifying it is not something medapp can promise. Pixel data is not cleaned
(PS3.15 Basic Profile without the Clean Pixel Data option); dicom_io warns when burned-in text is likely.

Originals are never touched: every output path is checked against IN (`medapp.outputs`: not an input file under
any name, not inside an input folder) before the first byte is written. Outputs are staged as hidden temporary
files, audited a batch at a time, and only then renamed into place, so no de-identified copy exists without its
audit entry; if the audit write fails, that batch's temporary files are removed.
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


# Outputs are staged (written to hidden temporary files) this many at a time, audited, then made visible.
_BATCH = 32


def _pairs(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input file, output file) for every file the run looks at; checks the shape of IN and OUT."""
    from medapp.errors import UserError

    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: is a file; give a folder for a folder input")
        files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("."))
        return [(p, dst / p.relative_to(src)) for p in files]
    return [(src, dst / src.name if dst.is_dir() else dst)]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dicom_io.deid import Deidentifier, deidentify_bytes
    from dicom_io.errors import InputError
    from dicom_io.reading import is_dicom
    from medapp.cli._common import audit_log, load_settings
    from medapp.errors import UserError
    from medapp.hashing import file_sha256
    from medapp.outputs import InputSet, check_output, check_outputs
    from reports.atomic import Staged, staged_bytes

    src, dst = args.src, args.dst
    if not src.exists():
        raise UserError(f"{src}: no such file or folder")
    inputs = InputSet([src])
    if src.is_dir():
        check_output(dst, inputs)  # OUT is IN or inside it: refused even when IN holds no files yet
    pairs = _pairs(src, dst)
    check_outputs((target for _, target in pairs), inputs)  # every output, before the first byte is written

    settings = load_settings(args)
    audit = audit_log(settings)
    deidentifier = Deidentifier()
    done = skipped = failed = 0
    # (input hash, staged output): written and fsync'ed but invisible until its batch is audited
    batch: list[tuple[str, Staged]] = []
    batch_skipped = batch_failed = batch_seen = 0

    def flush() -> None:
        """Audit the staged batch, then make its outputs visible: there is never an output without an entry."""
        nonlocal batch, batch_skipped, batch_failed, batch_seen, done
        if not batch and not batch_failed:
            batch_skipped = batch_seen = 0
            return
        audit.record("deid", inputs=[digest for digest, _ in batch], n_inputs=batch_seen, n_done=len(batch),
                     n_failed=batch_failed, n_skipped=batch_skipped)
        for _, staged in batch:
            staged.commit()
        done += len(batch)
        batch, batch_skipped, batch_failed, batch_seen = [], 0, 0, 0

    try:
        for source, target in tqdm(pairs, desc="de-identifying", unit="file", disable=len(pairs) < 2,
                                   file=sys.stderr):
            batch_seen += 1
            if not is_dicom(source):
                skipped += 1
                batch_skipped += 1
                if len(pairs) == 1:
                    raise UserError(f"{source}: not a DICOM file; nothing to de-identify")
                continue
            try:
                data = deidentify_bytes(source, deidentifier)
            except InputError as exc:
                failed += 1
                batch_failed += 1
                tqdm.write(f"medapp: skipped {' '.join(str(exc).split())}", file=sys.stderr)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            batch.append((file_sha256(source), staged_bytes(target, data)))
            if len(batch) >= _BATCH:
                flush()
        flush()
    finally:
        for _, staged in batch:  # an error or an interrupt before the batch was audited: nothing becomes visible
            staged.discard()
    for warning in sorted(set(deidentifier.warnings)):
        print(f"medapp: warning: {warning}", file=sys.stderr)
    print(f"de-identified {done} file(s) into {dst}" + (f"; skipped {skipped} non-DICOM file(s)" if skipped else ""))
    if failed:
        raise UserError(f"{failed} of {len(pairs)} file(s) could not be de-identified (listed above)")
    if not done:
        raise UserError(f"{src}: no DICOM files found")
    return 0
