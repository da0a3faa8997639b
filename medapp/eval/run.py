"""A resumable benchmark run: every question of a dataset answered through the engine, in batches, into OUTDIR.

Why it is shaped like `medapp.jobs.caption`:

* **Resume without repeating or losing a question.** Answers go to ``predictions.jsonl`` one fsynced line each
  (`medapp.eval.predictions`); a rerun with the same OUTDIR skips the ids already there and redoes the rest, and a
  line cut by a kill is repaired first. ``--limit N`` means the first N questions of the dataset, so a run with
  ``--limit`` followed by a full run only adds the remainder.
* **One run, one configuration.** ``run.json`` fixes the dataset, prompt template and answer length at the first
  start; resuming with a different one (or another checkpoint) is refused, since mixing them would make the numbers
  meaningless. Each start is appended to its ``sessions`` (time, model hash, answered), so resumes are visible.
* **Audited before the model is used** (fail closed, like every job): one "eval" entry when answering starts
  (dataset file hashes as inputs, counts, model hash, quantisation) and one when it stops. Benchmark data is public;
  still nothing but hashes, counts and enums is logged.
* **One writer per folder:** a lock file stops a second run on the same OUTDIR (two writers would answer the same
  questions twice).
* Images are read one batch at a time (parquet: one row group at a time), so memory stays flat over Path-VQA.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medapp.errors import UserError
from medapp.eval.answer import DEFAULT_TEMPLATE, answer_batch, render_prompt
from medapp.eval.datasets import EvalDataset, Question
from medapp.eval.predictions import PredictionWriter
from medapp.eval.provenance import engine_provenance, now
from medapp.hashing import file_sha256
from medapp.jobs.progress import EtaClock, Progress

__all__ = ["RunSummary", "run_eval", "check_run_config", "PREDICTIONS", "RUN_FILE", "todo_questions"]

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"


@dataclass
class RunSummary:
    total: int  # questions in this run (after --limit)
    skipped: int  # already answered (resume)
    done: int  # answered now
    cancelled: bool
    seconds: float
    predictions: Path


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    from reports.atomic import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _load_run_file(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        state["config"]["dataset"]
        return state
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a medapp eval run file ({exc}); choose an empty output folder") from exc


def check_run_config(out_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The run state in OUTDIR (None for a new run), after checking that every setting in `config` matches the
    one the run started with (a resume with other settings would mix answers that are not comparable)."""
    path = Path(out_dir) / RUN_FILE
    if not path.exists():
        return None
    state = _load_run_file(path)
    old = state["config"]
    for key, value in config.items():
        if key in _FIXED and old.get(key) != value:
            raise UserError(
                f"{out_dir}: this run was started with {key}={old.get(key)!r}, not {value!r}; resume it "
                "with the same settings or write to another folder"
            )
    return state


_FIXED = ("dataset", "template", "max_new_tokens", "lang", "checkpoint_sha256", "quant")


def _check_run_file(out_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The run's fixed configuration: written at the first start, compared on every resume."""
    state = check_run_config(out_dir, config)
    if state is None:
        state = {"config": config, "sessions": []}
        _atomic_json(out_dir / RUN_FILE, state)
    return state


def todo_questions(questions: list[Question], done: set[str]) -> list[Question]:
    return [q for q in questions if q.qid not in done]


def run_eval(
    engine: Any,
    dataset: EvalDataset,
    out_dir: str | Path,
    *,
    template: str = DEFAULT_TEMPLATE,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    limit: int | None = None,
    lang: str = "en",
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    audit: Any = None,
) -> RunSummary:
    """Answer every question of `dataset` (the first `limit`) not yet in OUTDIR/predictions.jsonl."""
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    if "{question}" not in template:
        raise UserError("the prompt template must contain {question}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = engine.info
    config = {
        "dataset": dataset.name, "lang": lang, "template": template, "max_new_tokens": max_new_tokens,
        "checkpoint_sha256": info.checkpoint_sha256, "quant": info.quant, "decoding": "greedy",
    }
    from filelock import FileLock, Timeout

    lock = FileLock(str(out_dir / ".eval.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"{out_dir}: another `medapp eval run` is writing to this folder") from None
    try:
        return _run_locked(engine, dataset, out_dir, config, template=template, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, limit=limit, on_progress=on_progress, cancel=cancel,
                           audit=audit)
    finally:
        lock.release()


def _run_locked(
    engine: Any, dataset: EvalDataset, out_dir: Path, config: dict[str, Any], *, template: str, batch_size: int,
    max_new_tokens: int, limit: int | None, on_progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None, audit: Any,
) -> RunSummary:
    info = engine.info
    state = _check_run_file(out_dir, config)
    questions = dataset.limited(limit)
    started = time.monotonic()
    with PredictionWriter(out_dir / PREDICTIONS) as writer:
        todo = todo_questions(questions, writer.done)
        summary = RunSummary(len(questions), len(questions) - len(todo), 0, False, 0.0, writer.path)
        if not todo:
            return summary
        inputs = [file_sha256(f) for f in dataset.files]
        if audit is not None:  # before the model is used: a run that cannot be audited does not start
            audit.record("eval", inputs=inputs, model_sha256=info.checkpoint_sha256, kind=dataset.name,
                         n_inputs=len(todo), n_skipped=summary.skipped, resumed=summary.skipped > 0,
                         model_id=info.model_id, quant=info.quant, device=info.device, dtype=info.dtype,
                         batch_size=batch_size)
        session = {"started": now(), "model": engine_provenance(engine), "batch_size": batch_size, "limit": limit,
                   "skipped": summary.skipped, "answered": 0}
        state["sessions"].append(session)
        _atomic_json(out_dir / RUN_FILE, state)
        clock = EtaClock(len(todo))
        try:
            for start in range(0, len(todo), batch_size):
                if cancel is not None and cancel.is_set():
                    summary.cancelled = True
                    break
                batch = todo[start : start + batch_size]
                images = [dataset.load_image(q) for q in batch]
                prompts = [render_prompt(template, q.question) for q in batch]
                answers = answer_batch(engine, images, prompts, max_new_tokens=max_new_tokens, cancel=cancel)
                if cancel is not None and cancel.is_set():  # answers cut short: not written, resume redoes them
                    summary.cancelled = True
                    break
                for q, prompt, text in zip(batch, prompts, answers, strict=True):
                    writer.add(q.qid, text, prompt=prompt, model_id=info.model_id)
                    summary.done += 1
                if on_progress is not None:
                    on_progress(Progress(summary.done, len(todo), clock.eta(summary.done), batch[-1].qid))
        finally:
            summary.seconds = time.monotonic() - started
            session.update(answered=summary.done, stopped=now(), seconds=round(summary.seconds, 3),
                           cancelled=summary.cancelled or summary.done < len(todo))
            _atomic_json(out_dir / RUN_FILE, state)
            if audit is not None:
                audit.record("eval", inputs=inputs, model_sha256=info.checkpoint_sha256, kind=dataset.name,
                             n_inputs=len(todo), n_done=summary.done, cancelled=session["cancelled"],
                             seconds=round(summary.seconds, 3), model_id=info.model_id, quant=info.quant)
    return summary
