"""`medapp model convert SRC DST [--quant 4bit]`, `medapp model check DIR [--json]`, `medapp model list`: checkpoint housekeeping."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "model",
        help="convert, check or list Dragonfly checkpoints",
        description="Checkpoint housekeeping. medapp never downloads: checkpoints are local folders or snapshots in "
        "the local Hugging Face cache.",
    )
    actions = parser.add_subparsers(dest="model_action", metavar="ACTION", required=True)

    convert = actions.add_parser(
        "convert",
        help="convert an official pickle (.bin) checkpoint to safetensors, or a safetensors one to 4-bit, once",
        description="Unpickle SRC's weight files with torch.load(weights_only=True) (tensors only; convert only "
        "checkpoints from a source you trust), write safetensors shards, an index and a SHA256SUMS manifest into "
        "the new folder DST, and copy the config and tokenizer files. With --quant 4bit, SRC is a safetensors "
        "checkpoint and DST gets its NF4 (double quantised) weights in the bitsandbytes/transformers format, so "
        "`--quant 4bit` loads in seconds instead of quantising on every start; it is picked automatically when DST "
        "is next to SRC or in medapp's models folder.",
    )
    convert.add_argument("src", help="checkpoint folder with pytorch_model*.bin files, or a cached hub id")
    convert.add_argument("dst", type=Path, help="new folder for the safetensors checkpoint (must not exist)")
    convert.add_argument("--max-shard-gb", type=float, default=5.0, help="largest shard size in GB (default 5)")
    convert.add_argument("--quant", choices=("none", "4bit"), default="none",
                         help="4bit: write a pre-quantised NF4 copy of the safetensors checkpoint SRC (default none)")
    convert.add_argument("--device", default="cpu",
                         help="with --quant 4bit: where to quantise, cpu or cuda (same file either way; default cpu)")
    convert.set_defaults(handler=run)

    check = actions.add_parser(
        "check",
        help="report version, parameters, dtype, missing/unexpected keys and hash status",
        description="Compare the checkpoint's tensors with what its config.json describes (headers only) and "
        "verify the SHA256SUMS manifest. Exit 0 if everything is fine, 2 otherwise.",
    )
    check.add_argument("dir", help="checkpoint folder or cached hub id")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--no-hash", action="store_true", help="skip hashing (fast; hash status 'not-checked')")
    check.add_argument("--load", action="store_true", help="also load the model as the app would and report its "
                       "memory: parameter bytes, resident memory (RSS) and, on CUDA, torch.cuda.max_memory_allocated")
    _add_load_options(check)
    check.set_defaults(handler=run)

    listing = actions.add_parser("list", help="list the Dragonfly checkpoints on this machine")
    listing.add_argument("--hf-cache", type=Path, default=None, help="Hugging Face cache folder to search")
    listing.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return {"convert": _convert, "check": _check, "list": _list}[args.model_action](args)


def _say(message: str) -> None:
    print(f"medapp: {message}", file=sys.stderr, flush=True)


def _convert(args: argparse.Namespace) -> int:
    from models.convert import UnpicklingWarning, convert_checkpoint
    from models.errors import ModelError

    if args.max_shard_gb <= 0:
        raise ModelError(f"--max-shard-gb must be positive, got {args.max_shard_gb}")
    start = time.perf_counter()
    if args.quant == "4bit":
        from models.quantize import quantize_checkpoint

        out = quantize_checkpoint(args.src, args.dst, device=args.device, max_shard_bytes=int(args.max_shard_gb * 1000**3),
                                  progress=lambda m: _say(m) if not m.startswith("done") else None)
        print(f"quantised to {out} in {time.perf_counter() - start:.1f} s; check it with: medapp model check {out}")
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnpicklingWarning)  # printed by the progress callback, before unpickling
        out = convert_checkpoint(
            args.src, args.dst, max_shard_bytes=int(args.max_shard_gb * 1000**3),
            progress=lambda m: _say(m) if not m.startswith("done") else None,
        )
    print(f"converted to {out} in {time.perf_counter() - start:.1f} s; check it with: medapp model check {out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from models.check import check_checkpoint, format_report

    report = check_checkpoint(args.dir, verify_hashes=not args.no_hash)
    if getattr(args, "load", False) and report["ok"]:  # a checkpoint that is not OK would only fail to load
        report["memory"] = _load_memory(args, report["path"])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        if "memory" in report:
            print("\n".join(_memory_lines(report["memory"])))
    return 0 if report["ok"] else 2


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    """--device / --quant / --dtype for `check --load`: the settings file's choices, which are the defaults."""
    from medapp.settings import DEVICES, DTYPES, QUANTS

    group = parser.add_argument_group("with --load (defaults come from the settings file)")
    group.add_argument("--device", choices=DEVICES, help="where to load the model")
    group.add_argument("--quant", choices=QUANTS, help="4bit: NF4 weights via bitsandbytes")
    group.add_argument("--dtype", choices=DTYPES, help="compute dtype")


def _load_memory(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """Load the checkpoint (hashes were just checked, or skipped on request) and measure what it costs."""
    from medapp.cli._common import load_settings
    from models.loading import load
    from models.memory import memory_report

    settings = load_settings(args)
    dtype = None if settings.dtype == "auto" else settings.dtype
    start = time.perf_counter()
    loaded = load(path, settings.device, settings.quant, dtype, verify="none")
    seconds = time.perf_counter() - start
    report = memory_report(loaded.model, loaded.plan.device, [loaded.folder / name for name in _weight_names(loaded)])
    return {**report.as_dict(), "quant": loaded.plan.quant, "dtype": loaded.plan.dtype_name,
            "load_seconds": round(seconds, 1)}


def _weight_names(loaded: Any) -> tuple[str, ...]:
    from models.checkpoint import require_safetensors

    return require_safetensors(loaded.folder).files


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    from models.memory import MemoryReport

    fields = {k: v for k, v in memory.items() if k in MemoryReport.__dataclass_fields__}
    head = f"loaded       {memory['quant']} {memory['dtype']} on {memory['device']} in {memory['load_seconds']} s"
    return [head, *MemoryReport(**fields).lines()]


def _list(args: argparse.Namespace) -> int:
    from models.checkpoint import hf_cache_dir, list_checkpoints, models_dir

    entries = list_checkpoints(args.hf_cache)
    if not entries:
        print(f"no Dragonfly checkpoint found in {hf_cache_dir(args.hf_cache)} or {models_dir()}")
        return 0
    for e in entries:
        rev = f"@{e.revision[:10]}" if e.revision else ""
        fmt = f"{e.weights_format}-{e.quantization}" if e.quantization else e.weights_format
        print(f"{e.model_id}{rev}\t{fmt}\t{e.source}\t{e.path}")
    return 0
