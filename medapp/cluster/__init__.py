"""Running medapp jobs on a Ray cluster (the optional extra ``medapp[cluster]``).

Importing this package never imports Ray: `import medapp` stays light, and a machine without the extra can still
say exactly what to install (`require_ray`). The pieces:

* `medapp.cluster.runtime`: connect to a cluster, or start a private local one bound to 127.0.0.1 only, and read
  its shape (CPUs, GPUs, nodes) to size the actor pool.
* `medapp.cluster.stages`: the code that runs *on the workers* (render tasks, captioning actors). It imports only
  what a worker needs, so a node with no display and no Qt can run it.
* `medapp.jobs.caption_ray`: the driver side of ``medapp caption --ray``.
"""

from __future__ import annotations

from medapp.errors import UserError

__all__ = ["INSTALL_HINT", "require_ray"]

# One line a user can paste; the extra pins a Ray release whose Ray Data API the pipeline was written against.
INSTALL_HINT = "pip install 'medapp[cluster]'"


def require_ray() -> None:
    """Raise `UserError` (exit status 2 in the CLI) naming the extra to install when Ray Data cannot be imported.

    Only the import is tried (no cluster is contacted), so this is cheap enough to run before any other work."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(f"--ray needs Ray Data, which is not installed; install it with: {INSTALL_HINT}") from None
