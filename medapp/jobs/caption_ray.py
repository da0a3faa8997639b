"""`caption_batch` on a Ray cluster: the same items, rows, resume and audit entries, the work spread over actors.

Pipeline (Ray Data, streaming):

    driver: list_items -> resume filter -> from_items(index, path, key)        paths only, one block per batch
    CPU tasks: map_batches(render_batch)        read + render + hash (+ thumbnail), bounded concurrency, retried
    actors: map_batches(Captioner)              one engine per actor, `num_gpus=1` each on GPU clusters
    driver: iter_batches -> audit entry -> CaptionWriter.add per row           the only writer, deduplicated by key

Why it is shaped this way:

* **One writer.** Every row is written on the driver by the caller's `reports.captions.CaptionWriter`, so the CSV,
  the JSONL, resume (`done_keys`) and the contact sheet work exactly as in the single-process job. A retried
  block could in principle deliver an item twice; the driver writes each (file, region) key once and drops any
  repeat, so a killed actor never duplicates a row.
* **Faults.** Render tasks are retried (`max_retries`), actors restarted (`max_restarts`) and their unfinished
  blocks resubmitted (`max_task_retries`); a row is only written once its block has come back. A batch that
  fails on every retry is dropped by Ray Data (up to `max_failed_blocks`); the driver then writes error rows for
  its items, so nothing is lost silently. A bad input never raises on a worker: it comes back as the row's error
  text (`render_item`). A pipeline that stops delivering (an actor restart that never completes) is cut off by
  `watchdog` after `stall_s`.
* **Memory stays flat.** The driver ships paths, never pixels; render tasks run `render_tasks` at a time and
  each actor holds at most two blocks in flight, on top of Ray Data's own streaming backpressure.
* **Audit per batch.** The driver groups returned rows into batches of `batch_size` and records one "caption"
  entry per batch before writing its rows, with the same details as `caption_batch`.
* **Sizing.** GPU clusters get one actor per GPU; CPU-only ones one actor per node (torch already uses all of a
  node's cores, a second copy of the model only doubles memory), each pinned to the node's CPUs but half of one,
  which is left for rendering. `actors` overrides the count (tests, the bench).
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medapp.cluster import require_ray
from medapp.errors import UserError
from medapp.jobs.caption import CAPTION_PROMPT, CaptionItem, CaptionSummary, plan_batch
from medapp.jobs.progress import EtaClock, Progress, ProgressCallback

__all__ = ["RayPlan", "plan_actors", "caption_batch_ray", "watchdog"]

LOST_MESSAGE = ("its batch failed on the Ray workers after every retry (a worker crashed while reading or captioning "
                "it); --resume --retry-errors tries it again")

RENDER_CPUS = 0.5  # per render task: reading and rendering is light next to generation
MAX_BLOCKS = 20_000  # a 1M-item archive: blocks of 50 paths, still streamed batch by batch
IN_FLIGHT_PER_ACTOR = 2  # one block generating, one waiting: the actor never idles, memory stays bounded
MAX_FAILED_BLOCKS = 10  # batches that may fail after all retries before the whole run fails
STALL_S = 1800.0  # no batch back for this long: fail with --resume advice (an 8B model loads in minutes, not 30)


@dataclass(frozen=True)
class RayPlan:
    """Where the work goes: the actor pool and the render tasks' share of the cluster."""

    actors: int
    device: str  # "cuda" | "cpu"
    actor_cpus: float
    actor_gpus: float
    threads: int | None  # torch threads per CPU actor (None: leave it to torch)
    render_tasks: int


def plan_actors(shape: Any, *, device: str = "auto", actors: int | None = None) -> RayPlan:
    """Size the actor pool for a `medapp.cluster.runtime.ClusterShape` (see the module docstring for why)."""
    if actors is not None and actors < 1:
        raise UserError(f"the number of Ray actors must be at least 1, got {actors}")
    if device in ("cuda", "auto") and shape.gpus >= 1:
        n = actors or int(shape.gpus)
        if n > shape.gpus:
            raise UserError(f"{n} GPU actors asked for, but the Ray cluster has {int(shape.gpus)} GPU(s)")
        render = max(1, int((shape.cpus - n) / RENDER_CPUS))
        return RayPlan(n, "cuda", 1.0 if shape.cpus >= n + RENDER_CPUS else 0.0, 1.0, None, render)
    if device == "cuda":
        raise UserError("--device cuda: the Ray cluster has no GPUs (use --device cpu or auto)")
    if device not in ("cpu", "auto"):
        raise UserError(f"device {device!r} cannot run on Ray (use auto, cuda or cpu)")
    n = actors or shape.nodes
    per_actor = min(max(shape.min_node_cpus - RENDER_CPUS, 0.25), max((shape.cpus - RENDER_CPUS) / n, 0.25))
    render = max(1, int((shape.cpus - per_actor * n) / RENDER_CPUS))
    return RayPlan(n, "cpu", per_actor, 0.0, max(1, round(per_actor)), render)


def caption_batch_ray(
    source: str | Path | Sequence[str | Path] | Sequence[CaptionItem],
    writer: Any,
    *,
    model_dir: str | Path,
    device: str = "auto",
    quant: str = "none",
    dtype: str | None = None,
    address: str | None = None,
    actors: int | None = None,
    prompt: str = CAPTION_PROMPT,
    batch_size: int = 4,
    max_new_tokens: int = 128,
    tissue_tiles: int = 4,
    tile_px: int = 512,
    resume: bool = True,
    retry_errors: bool = False,
    thumbnails: dict[tuple[str, str], Any] | None = None,
    on_progress: ProgressCallback | None = None,
    on_error: Callable[[str, str], None] | None = None,
    cancel: threading.Event | None = None,
    audit: Any = None,
    max_retries: int = 3,
    max_failed_blocks: int = MAX_FAILED_BLOCKS,
    stall_s: float = STALL_S,
    captioner: type | None = None,
    renderer: Callable[..., Any] | None = None,
    ray_init: dict[str, Any] | None = None,
) -> CaptionSummary:
    """Caption every item of `source` into `writer` on Ray; arguments and result as `caption_batch`.

    `model_dir` is a checkpoint folder at the same path on every node (it is read by each actor; the weights never
    travel through Ray). `address` None starts a local Ray for this call (loopback only; `ray_init` passes
    `num_cpus`, `object_store_memory`, `temp_dir`); an address joins an existing cluster. If Ray is already
    initialised in this process, that session is used. `captioner` and `renderer` replace the actor class (a
    subclass of `medapp.cluster.stages.Captioner`) and the render function (wrapping `render_batch`): the fault
    tests kill workers through them. `cancel` stops after the batch being written:
    rows not yet written are redone by a resume. `stall_s`: give up (`UserError`) when no batch comes back for this
    long. Up to `max_failed_blocks` batches may fail for good (their worker crashed on every retry, e.g. a file that
    crashes a decoder): their items become error rows and the run goes on; one more fails the run."""
    require_ray()
    started = time.monotonic()
    batch_plan = plan_batch(source, writer, prompt=prompt, batch_size=batch_size, resume=resume,
                            retry_errors=retry_errors, tissue_tiles=tissue_tiles, tile_px=tile_px)
    prompt, summary, todo, done_keys = batch_plan.prompt, batch_plan.summary, batch_plan.todo, batch_plan.done_keys
    if not todo:
        summary.seconds = time.monotonic() - started
        return summary
    model_dir = Path(os.path.abspath(model_dir))
    if address is None and not model_dir.is_dir():
        raise UserError(f"{model_dir}: model folder not found")

    from medapp.cluster.runtime import ray_session

    with ray_session(address, **(ray_init or {})) as shape:
        plan = plan_actors(shape, device=device, actors=actors)
        dataset = _pipeline(todo, plan, model_dir=model_dir, quant=quant, dtype=dtype, prompt=prompt,
                            batch_size=batch_size, max_new_tokens=max_new_tokens, thumbnails=thumbnails is not None,
                            max_retries=max_retries, captioner=captioner, renderer=renderer)
        dataset.context.max_errored_blocks = max_failed_blocks  # the failed batches' items are found missing below
        _drain(dataset, todo, writer, summary, batch_size=batch_size, thumbnails=thumbnails, on_progress=on_progress,
               on_error=on_error, cancel=cancel, audit=audit, written=set(done_keys), stall_s=stall_s)
    summary.seconds = time.monotonic() - started
    return summary


def _pipeline(todo: list[CaptionItem], plan: RayPlan, *, model_dir: Path, quant: str, dtype: str | None,
              prompt: str, batch_size: int, max_new_tokens: int, thumbnails: bool, max_retries: int,
              captioner: type | None, renderer: Callable[..., Any] | None) -> Any:
    """The lazy Ray Dataset from item records to captioned rows (nothing runs until the driver iterates)."""
    import ray.data

    from medapp.cluster.stages import Captioner, item_record, render_batch

    records = [item_record(i, it) for i, it in enumerate(todo)]
    # one block per batch (a killed actor redoes one batch), but not more blocks than Ray handles comfortably
    blocks = min(MAX_BLOCKS, max(1, math.ceil(len(records) / batch_size)))
    dataset: Any = ray.data.from_items(records, override_num_blocks=blocks)  # materialized, then lazy stages
    with warnings.catch_warnings():
        # Bounded retries are passed as Ray remote arguments, which Ray 2.60 deprecates (removal announced for
        # 2.64, hence the extra's upper bound). Ray Data's own default is to retry without limit: a file that
        # crashes its decoder on every attempt would then hang the job instead of failing it.
        warnings.filterwarnings("ignore", message=r"`ray_remote_args` is deprecated", category=Warning)
        dataset = dataset.map_batches(
            renderer or render_batch, fn_kwargs={"thumbnails": thumbnails}, batch_size=batch_size,
            batch_format="pyarrow", num_cpus=RENDER_CPUS, compute=ray.data.TaskPoolStrategy(size=plan.render_tasks),
            max_retries=max_retries,
        )
        return dataset.map_batches(
            captioner or Captioner,
            fn_constructor_kwargs={"model_dir": str(model_dir), "device": plan.device, "quant": quant,
                                   "dtype": dtype, "prompt": prompt, "max_new_tokens": max_new_tokens,
                                   "batch_size": batch_size, "threads": plan.threads},
            batch_size=batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=plan.actors, max_tasks_in_flight_per_actor=IN_FLIGHT_PER_ACTOR),
            num_cpus=plan.actor_cpus, num_gpus=plan.actor_gpus or None,
            max_restarts=max_retries, max_task_retries=max_retries,
        )


def _drain(dataset: Any, todo: list[CaptionItem], writer: Any, summary: CaptionSummary, *, batch_size: int,
           thumbnails: dict[tuple[str, str], Any] | None, on_progress: ProgressCallback | None,
           on_error: Callable[[str, str], None] | None, cancel: threading.Event | None, audit: Any,
           written: set[tuple[str, str]], stall_s: float) -> None:
    """Pull captioned rows off the cluster and write them, one audited batch at a time, each key once."""
    clock = EtaClock(len(todo))
    first_entry = True
    model = ("", "")  # (model id, checkpoint hash) as the actors report them, for rows of batches that never came
    for table in _batches(dataset, batch_size, stall_s):
        if cancel is not None and cancel.is_set():
            summary.cancelled = True
            break
        batch_started = time.monotonic()
        records = table.to_pylist()
        fatal = next((r["fatal"] for r in records if r.get("fatal")), "")
        if fatal:  # a model error: stop as caption_batch does, before writing anything of this batch
            from models.errors import ModelError

            raise ModelError(fatal)
        rows = []
        for row in records:
            item = todo[row["idx"]]
            if item.key in written:  # a retried block delivered it again: the first copy stands
                continue
            written.add(item.key)
            rows.append((item, row))
        if rows:
            model = (rows[0][1]["model"], rows[0][1]["model_sha256"])
        finished = [(item, row) for item, row in rows if not row["error"]]
        failed = [(item, row) for item, row in rows if row["error"]]
        if audit is not None and rows:
            audit.record(  # before the rows, as in caption_batch (fail closed)
                "caption",
                inputs=[row["input_sha256"] for _, row in finished],
                model_sha256=rows[0][1]["model_sha256"] or None,
                n_inputs=len(rows),
                n_done=len(finished),
                n_failed=len(failed),
                n_skipped=summary.skipped if first_entry else None,
                cancelled=False,
                batch_size=batch_size,
                resumed=summary.skipped > 0,
                seconds=round(time.monotonic() - batch_started, 3),
            )
            first_entry = False
        for item, row in rows:
            if row["error"]:
                writer.add(item.file, region=item.region, model=row["model"], error=row["error"])
                summary.failed += 1
                summary.errors.append((item.file, row["error"]))
                if on_error is not None:
                    on_error(item.file, row["error"])
                continue
            writer.add(item.file, row["caption"], region=item.region, model=row["model"],
                       input_sha256=row["input_sha256"])
            if thumbnails is not None and row["thumb"]:
                thumbnails[item.key] = _image(row["thumb"])
            summary.done += 1
        if on_progress is not None and rows:
            done = summary.done + summary.failed
            on_progress(Progress(done, len(todo), clock.eta(done), rows[-1][0].file, summary.failed,
                                 summary.skipped))
    if not summary.cancelled:
        _write_lost(todo, writer, summary, batch_size=batch_size, on_error=on_error, audit=audit,
                    written=written, first_entry=first_entry, model=model)


def _write_lost(todo: list[CaptionItem], writer: Any, summary: CaptionSummary, *, batch_size: int,
                on_error: Callable[[str, str], None] | None, audit: Any, written: set[tuple[str, str]],
                first_entry: bool, model: tuple[str, str]) -> None:
    """Error rows for items whose batch never came back (it failed on every retry and Ray Data dropped it).

    Why rows and not silence: "none lost" is the driver's promise, not Ray's. An error row is what a corrupt file
    gets in the single-process job, so resume skips it and `--retry-errors` tries it again. Every item of such a
    batch gets the row, since the worker's crash does not say which file caused it."""
    lost = [it for it in todo if it.key not in written]
    if not lost:
        return
    message = LOST_MESSAGE
    if audit is not None:
        audit.record("caption", inputs=[], model_sha256=model[1] or None, n_inputs=len(lost), n_done=0,
                     n_failed=len(lost), n_skipped=summary.skipped if first_entry else None, cancelled=False,
                     batch_size=batch_size, resumed=summary.skipped > 0, seconds=0.0)
    for item in lost:
        writer.add(item.file, region=item.region, model=model[0], error=message)
        written.add(item.key)
        summary.failed += 1
        summary.errors.append((item.file, message))
        if on_error is not None:
            on_error(item.file, message)


def _batches(dataset: Any, batch_size: int, stall_s: float) -> Any:
    """The dataset's output as pyarrow tables of `batch_size` rows; a failed pipeline becomes one clear error.

    Ray wraps a worker's exception in its own (with a remote traceback); the user gets the cause's first line."""
    import ray.exceptions

    iterator = watchdog(dataset.iter_batches(batch_size=batch_size, batch_format="pyarrow", prefetch_batches=1),
                        stall_s)
    while True:
        try:
            table = next(iterator)
        except StopIteration:
            return
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            from models.errors import ModelError

            if isinstance(cause, (ModelError, UserError)):
                raise cause from None
            lines = str(cause).strip().splitlines()
            raise UserError(f"the Ray pipeline failed: {lines[-1] if lines else type(cause).__name__}") from None
        yield table


def watchdog(iterable: Iterable[Any], stall_s: float) -> Iterator[Any]:
    """`iterable`'s items, or `UserError` when none arrives for `stall_s` seconds.

    Why: Ray Data waits without limit for an actor that cannot come back (seen here when the kernel's OOM killer,
    which picks Ray workers first, killed actors and their restart hung: ray-project/ray#53727). Rows written so far
    stay, so the message points to --resume. The iterable is consumed on a daemon thread; on a stall it is left
    behind (a local Ray is shut down right after, which ends it)."""
    done = object()
    results: queue.Queue[Any] = queue.Queue(maxsize=1)

    def pump() -> None:
        try:
            for value in iterable:
                results.put((True, value))
            results.put((True, done))
        except BaseException as exc:  # noqa: BLE001 — handed to the consumer, raised there
            results.put((False, exc))

    threading.Thread(target=pump, name="caption-ray-results", daemon=True).start()
    while True:
        try:
            ok, value = results.get(timeout=stall_s)
        except queue.Empty:
            raise UserError(f"no captions came back from Ray for {stall_s:.0f} s (actors lost or unschedulable); "
                            "the rows written so far are kept: rerun with --resume") from None
        if not ok:
            raise value
        if value is done:
            return
        yield value


def _image(png: bytes) -> Any:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png))
    image.load()
    return image
