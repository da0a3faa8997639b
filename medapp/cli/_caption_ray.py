"""The `--ray [ADDRESS]` side of `medapp caption`: checks before any file is written, and the Ray runner.

Kept apart from `medapp.cli.caption` so that command stays one implementation with one dispatch point; this module
is imported only when `--ray` is given (it is light itself: Ray loads inside the runner).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

__all__ = ["LOCAL", "add_ray_arg", "check_ray_args", "ray_runner"]

LOCAL = "local"  # `--ray` with no address: a Ray started on this machine for the run


def add_ray_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
        help="caption on Ray (needs medapp[cluster]): without ADDRESS a local Ray on this machine's GPUs (CPU "
        "when there are none); with ADDRESS (head:6379, ray://head:10001) an existing cluster whose nodes all see "
        "DIR and the model folder at the same paths. Put --ray after DIR",
    )


def check_ray_args(args: argparse.Namespace) -> None:
    """Fail fast, before any output is opened: Ray must be installed and ADDRESS must look like an address."""
    from medapp.cluster import require_ray
    from medapp.errors import UserError

    require_ray()
    if args.ray != LOCAL and Path(args.ray).exists():
        raise UserError(f"--ray takes a cluster address such as head:6379, not a path ({args.ray}); put DIR before "
                        "--ray, or write --ray=ADDRESS")


def ray_runner(args: argparse.Namespace, settings: Any) -> Any:
    """`caption_batch_ray` bound to the cluster and the model, called like `caption_batch` without the engine.

    The model folder is resolved here as for a local run (``--model``, setting, Hugging Face cache) but not loaded:
    each actor loads it from that path, which must be the same on every node."""
    from medapp.cli._common import model_holder
    from medapp.jobs.caption_ray import caption_batch_ray

    holder = model_holder(args, settings)
    return functools.partial(
        caption_batch_ray, model_dir=holder.resolve_model_dir(), device=holder.device, quant=holder.quant,
        dtype=holder.dtype, address=None if args.ray == LOCAL else args.ray,
    )
