"""Strict weights, one wording: the error for missing, unexpected or mis-shaped tensors (torch-free).

Used by `models.loading` (after transformers' loading info, or from the safetensors headers via `models.check`) and by
`DragonflyForCausalLM.from_pretrained` (so `AutoModelForCausalLM` too): a checkpoint whose tensors do not match the
config is refused with `CheckpointFormatError` naming them, never loaded with silently random-initialised layers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from models.errors import CheckpointFormatError

__all__ = ["loading_info_problems", "problem_lines", "weights_error"]


def problem_lines(report: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """"missing keys: a, b, c (+2 more)" for every non-empty list among `keys` (at most five names each)."""
    out = []
    for key in keys:
        values = [str(v) for v in report.get(key) or []]
        if values:
            shown = ", ".join(values[:5]) + (f" (+{len(values) - 5} more)" if len(values) > 5 else "")
            out.append(f"{key.replace('_', ' ')}: {shown}")
    return out


def loading_info_problems(info: dict[str, Any] | None, rename: Callable[[str], str] = str) -> list[str]:
    """The problems in transformers' loading info (`output_loading_info=True`), keys renamed by `rename` (to the
    official names); a mis-shaped tensor reads "name: checkpoint [8], model [16]", as in `models.check`."""
    info = info or {}
    report: dict[str, list[str]] = {
        "missing_keys": sorted(rename(k) for k in info.get("missing_keys") or []),
        "unexpected_keys": sorted(rename(k) for k in info.get("unexpected_keys") or []),
        "mismatched_shapes": [],
        "error_msgs": [str(m) for m in info.get("error_msgs") or []],
    }
    for item in sorted(info.get("mismatched_keys") or [], key=str):
        if isinstance(item, tuple) and len(item) == 3:
            key, ckpt, model = item
            report["mismatched_shapes"].append(
                f"{rename(str(key))}: checkpoint {list(ckpt)}, model {list(model)}"
            )
        else:
            report["mismatched_shapes"].append(str(item))
    return problem_lines(report, ("missing_keys", "unexpected_keys", "mismatched_shapes", "error_msgs"))


def weights_error(where: str | os.PathLike[str], problems: list[str]) -> CheckpointFormatError | None:
    """The error for `problems` (from `problem_lines` / `loading_info_problems`), or None when there are none."""
    if not problems:
        return None
    return CheckpointFormatError(f"{where}: weights do not match the config — {'; '.join(problems)}")
