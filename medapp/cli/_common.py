"""Pieces the subcommands share: model options, view options (--frame/--region/--window/--preset), settings, audit.

Kept import-light (argparse and `medapp.settings`, which is stdlib-only, at module level) because `medapp --help`
imports every subcommand module. The device / quant / dtype choices are the settings file's own (`medapp.settings`),
so a flag and the file accept exactly the same values.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medapp.settings import DEVICES, DTYPES, QUANTS


def _int_at_least(low: int, what: str):  # -> Callable[[str], int]
    """An argparse `type` for whole numbers >= `low` (one checker behind `positive_int` and `non_negative_int`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1, "at least 1")
non_negative_int = _int_at_least(0, "0 or more")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (defaults come from the settings file)")
    group.add_argument("--model", metavar="DIR", help="Dragonfly(-Med) checkpoint folder (or a hub id already in the "
                       "local Hugging Face cache); default: the model_dir setting, else the HF cache")
    group.add_argument("--device", choices=DEVICES, help="where to run the model")
    group.add_argument("--quant", choices=QUANTS, help="4bit: NF4 weights via bitsandbytes")
    group.add_argument("--dtype", choices=DTYPES, help="compute dtype (auto: float32 on CPU, the checkpoint's on "
                       "CUDA; overrides a dtype set in the settings file)")
    group.add_argument("--max-new-tokens", type=positive_int, metavar="N", help="longest answer in tokens")


def add_view_args(parser: argparse.ArgumentParser, *, frame_default: str = "0") -> None:
    """--frame, --region, --window C,W | --preset NAME: the same flags on every command that renders an image."""
    group = parser.add_argument_group("what is rendered (and what the model sees)")
    group.add_argument("--frame", type=non_negative_int, metavar="N", help=f"frame / slice index (default {frame_default})")
    group.add_argument("--region", metavar="X,Y,W,H", help="crop in image pixels (slides: level-0 pixels); a slide "
                       "region is read at the level that keeps its longest side at most 2048 pixels, and a slide "
                       "without --region is an overview")
    windows = group.add_mutually_exclusive_group()
    windows.add_argument("--window", metavar="C,W", help="window centre,width in modality units (HU for CT), e.g. "
                         "--window=-600,1500 (with '=' when the centre is negative); default: the file's own window")
    windows.add_argument("--preset", metavar="NAME", help="window preset: ct-lung, ct-mediastinum, ct-abdomen, "
                         "ct-liver, ct-bone, ct-brain, ct-subdural, ct-stroke, or one of yours (window_presets in the "
                         "settings file, which also override these)")


def load_settings(args: argparse.Namespace) -> Any:
    """The user's settings with command-line overrides applied (validated like the file).

    --device, --quant, --dtype and --max-new-tokens replace the file's values in this run's copy, so an explicit
    "auto" wins over a value from the file too (it means "let the engine choose", not "use the file").
    """
    from medapp.settings import Settings

    settings = Settings.load()
    changes = {key: getattr(args, key) for key in ("device", "quant", "dtype", "max_new_tokens")
               if getattr(args, key, None) is not None}  # fmt: skip
    return settings.updated(**changes) if changes else settings


def model_holder(args: argparse.Namespace, settings: Any) -> Any:
    """The model holder for `settings` as `load_settings` returned them (device / quant / dtype already applied)."""
    from medapp.model_holder import ModelHolder

    return ModelHolder(settings, model_dir=getattr(args, "model", None))


def audit_log(settings: Any) -> Any:
    from medapp.audit import AuditLog

    return AuditLog.from_settings(settings)


def parse_window(text: str | None) -> Any:
    """`None` or "C,W" -> `dicom_io.Window`; anything else is a `UserError` (a name belongs in --preset)."""
    if text is None:
        return None
    from dicom_io import Window
    from medapp.errors import UserError

    try:
        return Window.parse(text)
    except ValueError as exc:
        hint = f" (for a named preset use --preset {text})" if "," not in text else ""
        raise UserError(f"--window: {exc}{hint}") from None


def load_view(args: argparse.Namespace, settings: Any) -> Any:
    """Open PATH and render what the model will see, honouring --frame, --region, --window and --preset."""
    from medapp.inputs import load_image, parse_region

    region = parse_region(args.region) if getattr(args, "region", None) else None
    window = parse_window(getattr(args, "window", None))
    return load_image(Path(args.path), frame=getattr(args, "frame", None), region=region, window=window,
                      preset=getattr(args, "preset", None), settings=settings)


def user_text(value: str | None, what: str) -> str:
    """Free text from the command line, sanitised once (`medapp.text.clean_text`); says so on stderr if changed.

    Why here: an argument that is not valid UTF-8 arrives as a str with surrogate escapes, which the tokenizer and
    the PDF writer cannot take. The user gets one warning line naming the argument, and the run goes on with the
    bytes shown as U+FFFD, rather than a traceback or their words silently altered.
    """
    import sys

    from medapp.text import clean_text

    cleaned = clean_text(value)
    notice = cleaned.notice(what)
    if notice:
        print(f"medapp: warning: {notice}", file=sys.stderr)
    return cleaned.text
