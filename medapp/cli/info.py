"""`medapp info PATH [--json] [--phi]`: what a file or folder is, without patient data unless asked."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a DICOM file, folder/DICOMDIR, slide or image",
        description="Describe a DICOM file, folder or DICOMDIR, whole-slide image or plain image: kind, modality, "
        "size, frames, bit depth, photometric, transfer syntax, window, series or slide levels. Patient data is "
        "shown only with --phi.",
    )
    parser.add_argument("path", help="file or folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--phi", action="store_true", help="include patient name, ID, birth date, accession, dates")
    parser.set_defaults(handler=run)


def _lines(data: dict[str, Any], indent: str = "") -> list[str]:
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"{indent}{key}:")
            out.extend(_lines(value, indent + "  "))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out.append(f"{indent}{key}:")
            for i, item in enumerate(value):
                out.append(f"{indent}  - [{i}]")
                out.extend(_lines(item, indent + "    "))
        else:
            out.append(f"{indent}{key}: {value}")
    return out


def run(args: argparse.Namespace) -> int:
    import dicom_io

    data = dicom_io.info(args.path, phi=args.phi)
    text = json.dumps(data, indent=2, default=str) if args.json else "\n".join(_lines(data))
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `medapp info X | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
