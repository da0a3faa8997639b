"""Connect to Ray for one job: an existing cluster by address, or a private local one started (and stopped) for it.

Why a private local cluster is bound to the loopback interface: a workstation run must not open ports to the
hospital network (the object store carries rendered patient images). Ray normally replaces 127.0.0.1 by the
machine's routable address; with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (read when Ray is imported) it keeps the
loopback address for the node, and then its GCS, raylet and worker servers listen on 127.0.0.1 only. Usage
statistics are switched off before import for the same reason (nothing leaves the machine).

If Ray is already initialised in this process (a test, a notebook), that session is used as it is and left
running: whoever started it stops it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from medapp.errors import UserError

__all__ = ["ClusterShape", "cluster_shape", "ray_session", "prepare_environment"]

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ClusterShape:
    """What the actor pool is sized from: totals over alive nodes, and the smallest node's CPUs (an actor that
    asks for more CPUs than any node has would never be scheduled)."""

    cpus: float
    gpus: float
    nodes: int
    min_node_cpus: float


def prepare_environment(*, local: bool) -> None:
    """Set Ray's environment before its first import: no usage statistics; loopback-only for a local cluster."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # node IP stays 127.0.0.1 (see the module docstring)
        # token authentication is Ray's default for a new local cluster, and it says so at every start: keep the
        # default, drop the announcement (setting RAY_AUTH_MODE=token instead makes the local GCS refuse the driver)
        logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_drop_token_notice)


def _drop_token_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Token authentication is enabled for this Ray cluster")


def quiet_ray_data() -> None:
    """No Ray Data progress bars or execution banners: the CLI prints its own one-line progress, and a terminal full
    of operator tables hides the one line that matters (and the plan names the dataset's columns)."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    if hasattr(context, "print_on_execution_start"):
        context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled. To enable…"


def _keep_loopback() -> Callable[[], None]:
    """Make a Ray that was imported before `prepare_environment` ran keep 127.0.0.1 too; returns the undo.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` into a constant at import; if something imported Ray earlier,
    that constant is set the same way here, and restored after the session (a later `--ray ADDRESS` in the same
    process must get a routable address). Ray internals can move, so `ray_session` checks the outcome and refuses
    to run on anything but 127.0.0.1."""
    from ray._private import ray_constants

    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if before:
        ray_constants.ENABLE_RAY_CLUSTER = False
    return lambda: setattr(ray_constants, "ENABLE_RAY_CLUSTER", before) if before is not None else None


def cluster_shape() -> ClusterShape:
    """The connected cluster's shape (`ray.init` must have run)."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    cpus = [float(n.get("Resources", {}).get("CPU", 0.0)) for n in alive]
    gpus = sum(float(n.get("Resources", {}).get("GPU", 0.0)) for n in alive)
    return ClusterShape(cpus=sum(cpus), gpus=gpus, nodes=max(1, len(alive)), min_node_cpus=min(cpus, default=0.0))


@contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_memory: int | None = None,
    temp_dir: str | None = None,
) -> Iterator[ClusterShape]:
    """Yield the shape of the cluster this job runs on.

    `address` None: a local Ray on 127.0.0.1 with this machine's CPUs and GPUs (or `num_cpus` / `num_gpus`),
    shut down afterwards. An address (``host:6379``, ``ray://host:10001``, ``auto``): an existing cluster, left
    running. Worker output is not copied to this terminal (``log_to_driver=False``): it could name files."""
    prepare_environment(local=address is None)
    import ray

    if ray.is_initialized():
        yield cluster_shape()
        return
    common: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False, "logging_level": logging.WARNING}
    undo = _keep_loopback() if address is None else (lambda: None)
    try:
        if address is None:
            ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=num_cpus, num_gpus=num_gpus,
                     object_store_memory=object_store_memory, _temp_dir=temp_dir, **common)
        else:
            ray.init(address=address, **common)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        undo()
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise UserError(f"cannot start or reach {where}: {_first_line(exc)}") from None
    try:
        if address is None and {n.get("NodeManagerAddress") for n in ray.nodes()} != {LOOPBACK}:
            # fail closed: a workstation run never listens on the network
            raise UserError("the local Ray did not stay on 127.0.0.1; not captioning (pass a cluster address to "
                            "--ray to run on a cluster on purpose)")
        quiet_ray_data()
        yield cluster_shape()
    finally:
        ray.shutdown()
        undo()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

