"""Pieces every model subcommand shares: model options, settings, the audit log, progress bars.

Kept import-light (argparse only at module level) because `medapp --help` imports every subcommand module.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEVICE_CHOICES = ("auto", "cpu", "cuda")
QUANT_CHOICES = ("none", "4bit")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (defaults come from the settings file)")
    group.add_argument("--model", metavar="DIR", help="Dragonfly(-Med) checkpoint folder (or a hub id already in the "
                       "local Hugging Face cache); default: the model_dir setting, else the HF cache")
    group.add_argument("--device", choices=DEVICE_CHOICES, help="where to run the model")
    group.add_argument("--quant", choices=QUANT_CHOICES, help="4bit: NF4 weights via bitsandbytes")
    group.add_argument("--dtype", choices=DTYPE_CHOICES, help="compute dtype (auto: float32 on CPU)")
    group.add_argument("--max-new-tokens", type=positive_int, metavar="N", help="longest answer in tokens")


def add_view_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("what the model sees")
    group.add_argument("--frame", type=non_negative_int, metavar="N", help="frame / slice index (default 0)")
    group.add_argument("--region", metavar="X,Y,W,H", help="crop in image pixels (slides: level-0 pixels); "
                       "a slide without --region is sent as an overview at thumbnail level")
    group.add_argument("--window", metavar="C,W|PRESET", help="window centre,width (e.g. -600,1500) or a preset "
                       "name (ct-lung, ct-bone, ...); default: the file's own window")


def load_settings(args: argparse.Namespace) -> Any:
    """The user's settings with command-line overrides applied (validated like the file)."""
    from medapp.settings import Settings

    settings = Settings.load()
    changes = {}
    if getattr(args, "max_new_tokens", None) is not None:
        changes["max_new_tokens"] = args.max_new_tokens
    return settings.updated(**changes) if changes else settings


def model_holder(args: argparse.Namespace, settings: Any) -> Any:
    from medapp.model_holder import ModelHolder

    dtype = getattr(args, "dtype", None)
    return ModelHolder(
        settings,
        model_dir=getattr(args, "model", None),
        device=getattr(args, "device", None),
        quant=getattr(args, "quant", None),
        dtype=None if dtype in (None, "auto") else dtype,
    )


def audit_log(settings: Any) -> Any:
    from medapp.audit import AuditLog

    return AuditLog.from_settings(settings)


def parse_window(text: str | None, settings: Any) -> Any:
    """`None`, a preset name (user overrides first) or "C,W" -> `dicom_io.Window`."""
    if text is None:
        return None
    from dicom_io import Window

    from medapp.errors import UserError

    if "," in text:
        try:
            return Window.parse(text)
        except ValueError as exc:
            raise UserError(f"--window: {exc}") from None
    try:
        return settings.window_preset(text)
    except (KeyError, ValueError) as exc:
        raise UserError(f"--window: {exc.args[0] if exc.args else exc}") from None


def load_view(args: argparse.Namespace, settings: Any) -> Any:
    """Open PATH and render what the model will see, honouring --frame, --region and --window."""
    from medapp.inputs import load_image, parse_region

    region = parse_region(args.region) if getattr(args, "region", None) else None
    window = parse_window(getattr(args, "window", None), settings)
    return load_image(Path(args.path), frame=getattr(args, "frame", None), region=region, window=window)
