"""`medapp caption --ray`: the Ray Data pipeline gives the single-process rows, survives a killed actor, stays local.

One small local Ray (2 CPUs, ~200 MB object store, loopback only, its own temp folder) serves the whole module and
is stopped at its end; the machine is shared, so nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from medapp.cli import main
from medapp.jobs.caption import caption_batch, list_items
from reports.captions import CaptionWriter, read_caption_rows, read_jsonl_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local():
    """A private Ray for this module, started through the app's own `ray_session` (so its set-up is tested)."""
    try:
        import ray.data  # noqa: F401
    except ImportError:  # a failure, not a skip: ./run.sh test installs the extra, so these tests always run
        pytest.fail("Ray Data is not installed: the lock must include the cluster extra (medapp[cluster])")
    from medapp.cluster.runtime import ray_session

    temp = tempfile.mkdtemp(prefix="mray")  # short: Ray's socket paths must stay under ~100 characters
    try:
        with ray_session(None, num_cpus=2, object_store_memory=200 * 2**20, temp_dir=temp) as shape:
            yield shape, Path(temp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # Ray's logs and any spilled blocks of test images


def _table(rows) -> dict[tuple[str, str], tuple[str, str, str, str]]:
    return {r.key: (r.caption, r.input_sha256, r.model, r.error) for r in rows}


def test_actor_plan_follows_the_cluster() -> None:
    """One actor per GPU on GPU clusters, one per node on CPU clusters (leaving room to render), clear errors."""
    from medapp.cluster.runtime import ClusterShape
    from medapp.errors import UserError
    from medapp.jobs.caption_ray import plan_actors

    gpu = plan_actors(ClusterShape(cpus=64, gpus=4, nodes=2, min_node_cpus=32))
    assert (gpu.actors, gpu.device, gpu.actor_gpus) == (4, "cuda", 1.0)
    cpu = plan_actors(ClusterShape(cpus=48, gpus=0, nodes=3, min_node_cpus=16))
    assert (cpu.actors, cpu.device, cpu.actor_gpus, cpu.actor_cpus, cpu.threads) == (3, "cpu", 0.0, 15.5, 16)
    here = plan_actors(ClusterShape(cpus=2, gpus=0, nodes=1, min_node_cpus=2), actors=2)
    assert here.actors * here.actor_cpus + here.render_tasks * 0.5 <= 2  # the render stage is never starved
    assert plan_actors(ClusterShape(cpus=8, gpus=2, nodes=1, min_node_cpus=8), device="cpu").device == "cpu"
    with pytest.raises(UserError, match="no GPUs"):
        plan_actors(ClusterShape(cpus=8, gpus=0, nodes=1, min_node_cpus=8), device="cuda")
    with pytest.raises(UserError, match="2 GPU"):
        plan_actors(ClusterShape(cpus=8, gpus=2, nodes=1, min_node_cpus=8), actors=3)


def test_watchdog_turns_a_stall_into_a_clear_error() -> None:
    """Ray Data waits forever for an actor whose restart hangs; the driver gives up with --resume advice."""
    import threading

    from medapp.errors import UserError
    from medapp.jobs.caption_ray import watchdog

    release = threading.Event()

    def stalls():
        yield 1
        release.wait()  # an actor that never comes back
        yield 2

    it = watchdog(stalls(), stall_s=0.5)
    assert next(it) == 1
    with pytest.raises(UserError, match="--resume"):
        next(it)
    release.set()
    assert list(watchdog(iter([1, 2, 3]), stall_s=5)) == [1, 2, 3]
    with pytest.raises(ZeroDivisionError):  # an error inside the pipeline reaches the caller as itself
        list(watchdog((1 / 0 for _ in range(1)), stall_s=5))


def test_driver_writes_each_key_once(mixed_folder: Path, tmp_path: Path) -> None:
    """A retried block that comes back twice (or overlaps a resumed table) never gives a second row for a key."""
    import pyarrow as pa

    from medapp.cluster.stages import schemas
    from medapp.jobs.caption import CaptionSummary
    from medapp.jobs.caption_ray import _drain

    items = list_items(mixed_folder, tissue_tiles=0)

    def row(idx: int) -> dict:
        return {"idx": idx, "caption": f"caption {idx}", "input_sha256": f"{idx:064x}", "thumb": None, "error": "",
                "model": "m", "model_sha256": ""}

    class Replayed:  # what a block delivered again after a retry would look like on the driver
        def iter_batches(self, **kwargs):
            for idxs in ([0, 1], [1, 2], [0, 3, 4, 5], [5]):
                yield pa.Table.from_pylist([row(i) for i in idxs], schema=schemas()[2])

    summary = CaptionSummary(total=len(items))
    with CaptionWriter(tmp_path / "c.csv") as writer:
        _drain(Replayed(), items, writer, summary, batch_size=2, thumbnails=None, on_progress=None, on_error=None,
               cancel=None, audit=None, written={items[4].key}, stall_s=30)
    rows = read_caption_rows(tmp_path / "c.csv")
    assert [r.key for r in rows] == [items[i].key for i in (0, 1, 2, 3, 5)]  # 4 was already in the table
    assert summary.done == 5


def test_local_ray_is_private(ray_local) -> None:
    """The local cluster lives on 127.0.0.1 only and was sized as asked."""
    import ray

    shape, _ = ray_local
    assert (shape.cpus, shape.gpus, shape.nodes) == (2.0, 0.0, 1)
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}


def test_rows_equal_single_process(ray_local, tiny_engine, v2_checkpoint: Path, mixed_folder: Path,
                                   tmp_path: Path) -> None:
    """Same folder, same keys, same captions, same hashes and the same error row, with two CPU actors."""
    from medapp.audit import AuditLog
    from medapp.jobs.caption_ray import caption_batch_ray

    items = list_items(mixed_folder, tissue_tiles=2)
    with CaptionWriter(tmp_path / "one.csv") as writer:
        caption_batch(tiny_engine, items, writer, batch_size=2, max_new_tokens=4)
    single = read_caption_rows(tmp_path / "one.csv")

    log = AuditLog(tmp_path / "audit.jsonl")
    thumbs: dict = {}
    progress = []
    with CaptionWriter(tmp_path / "ray.csv", tmp_path / "ray.jsonl") as writer:
        summary = caption_batch_ray(items, writer, model_dir=v2_checkpoint, device="cpu", actors=2, batch_size=2,
                                    max_new_tokens=4, audit=log, thumbnails=thumbs, on_progress=progress.append)
    rows = read_caption_rows(tmp_path / "ray.csv")
    assert len(rows) == len(items) == 8 and len({r.key for r in rows}) == 8
    assert _table(rows) == _table(single)
    assert [r.file for r in rows if r.error] == ["broken.dcm"]
    assert read_jsonl_rows(tmp_path / "ray.jsonl") == rows
    assert (summary.done, summary.failed, summary.skipped, summary.cancelled) == (7, 1, 0, False)
    assert set(thumbs) == {r.key for r in rows if not r.error}
    assert progress[-1].done == progress[-1].total == 8

    entries = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert entries and {e["event"] for e in entries} == {"caption"}
    assert sum(e["details"]["n_done"] for e in entries) == 7 and sum(e["details"]["n_failed"] for e in entries) == 1
    assert sorted(h for e in entries for h in e["inputs"]) == sorted(r.input_sha256 for r in rows if not r.error)
    assert all(e["details"]["n_inputs"] <= 2 for e in entries)
    assert "broken" not in log.path.read_text()

    # resume: nothing left, so no row is added and no cluster work is started
    with CaptionWriter(tmp_path / "ray.csv") as writer:
        again = caption_batch_ray(items, writer, model_dir=v2_checkpoint, device="cpu", actors=2, batch_size=2)
    assert (again.skipped, again.done, again.failed) == (8, 0, 0)
    assert read_caption_rows(tmp_path / "ray.csv") == rows


def test_killed_actor_loses_and_duplicates_nothing(ray_local, v2_checkpoint: Path, mixed_folder: Path,
                                                   tmp_path: Path) -> None:
    """An actor dies (os._exit) on its second block; Ray restarts it and resubmits the lost blocks, and the table
    ends with exactly one row per item. A marker file makes only one actor, once, die; pid files prove it did."""
    from medapp.cluster.stages import Captioner
    from medapp.jobs.caption_ray import caption_batch_ray

    marker, pids = tmp_path / "die-once", tmp_path / "pids"
    marker.touch()
    pids.mkdir()

    class DyingCaptioner(Captioner):  # defined here, so Ray ships it by value to the workers
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            (pids / str(os.getpid())).touch()
            self.calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 2:
                try:
                    marker.unlink()  # only the actor that removes the marker dies, and only once
                except FileNotFoundError:
                    pass
                else:
                    os._exit(1)
            return super().__call__(batch)

    items = list_items(mixed_folder, tissue_tiles=2)
    with CaptionWriter(tmp_path / "c.csv") as writer:
        summary = caption_batch_ray(items, writer, model_dir=v2_checkpoint, device="cpu", actors=2, batch_size=1,
                                    max_new_tokens=3, captioner=DyingCaptioner)
    rows = read_caption_rows(tmp_path / "c.csv")
    assert not marker.exists(), "no actor was killed: the test did not test anything"
    assert len(list(pids.iterdir())) >= 3  # two actors plus the restarted one
    assert sorted(r.key for r in rows) == sorted(it.key for it in items)  # every item once: none lost, none twice
    assert (summary.done, summary.failed) == (7, 1)


def test_killed_render_worker_is_retried(ray_local, v2_checkpoint: Path, mixed_folder: Path, tmp_path: Path) -> None:
    """A render task's worker process dies on its first block; the task is retried on a fresh worker and every
    item still gets exactly one row."""
    from medapp.cluster.stages import render_batch
    from medapp.jobs.caption_ray import caption_batch_ray

    marker = tmp_path / "die-once"
    marker.touch()

    def dying_render(batch, **kwargs):
        try:
            marker.unlink()
        except FileNotFoundError:
            return render_batch(batch, **kwargs)
        os._exit(1)

    items = list_items(mixed_folder, tissue_tiles=0)
    with CaptionWriter(tmp_path / "c.csv") as writer:
        summary = caption_batch_ray(items, writer, model_dir=v2_checkpoint, device="cpu", actors=1, batch_size=2,
                                    max_new_tokens=3, renderer=dying_render)
    rows = read_caption_rows(tmp_path / "c.csv")
    assert not marker.exists(), "no render worker was killed: the test did not test anything"
    assert sorted(r.key for r in rows) == sorted(it.key for it in items)
    assert (summary.done, summary.failed) == (5, 1)


def test_a_file_that_crashes_its_worker_every_time_is_one_error_row(ray_local, v2_checkpoint: Path,
                                                                   mixed_folder: Path, tmp_path: Path) -> None:
    """A "poison" file kills the render worker on every retry: its batch is given up, the file gets an error row,
    every other item is captioned, and the run neither fails nor hangs (batches of 1, so only that file)."""
    from medapp.cluster.stages import render_batch
    from medapp.jobs.caption_ray import LOST_MESSAGE, caption_batch_ray

    def poisoned_render(batch, **kwargs):
        if any(path.endswith("pub_224x224.png") for path in batch.column("path").to_pylist()):
            os._exit(1)  # like a decoder segfault
        return render_batch(batch, **kwargs)

    items = list_items(mixed_folder, tissue_tiles=0)
    with CaptionWriter(tmp_path / "c.csv") as writer:
        summary = caption_batch_ray(items, writer, model_dir=v2_checkpoint, device="cpu", actors=1, batch_size=1,
                                    max_new_tokens=3, max_retries=1, renderer=poisoned_render, stall_s=300)
    rows = read_caption_rows(tmp_path / "c.csv")
    assert sorted(r.key for r in rows) == sorted(it.key for it in items)
    assert {r.file: r.error for r in rows if r.error}.keys() == {"pub_224x224.png", "broken.dcm"}
    assert next(r for r in rows if r.file == "pub_224x224.png").error == LOST_MESSAGE
    assert (summary.done, summary.failed) == (4, 2)


def test_a_model_error_stops_the_run_with_its_message(ray_local, v2_checkpoint: Path, mixed_folder: Path,
                                                      tmp_path: Path) -> None:
    """As in the single-process job, a model error ends the run (it would fail for every item) with its own
    message; Ray Data must not swallow it as a failed block."""
    from medapp.cluster.stages import Captioner
    from medapp.jobs.caption_ray import caption_batch_ray
    from models.errors import ModelError

    class BrokenModel(Captioner):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)

            def fails(*a, **k):
                raise ModelError("images 0..1: the prompt does not fit the context")

            self.engine.caption_batch = fails

    items = [it for it in list_items(mixed_folder, tissue_tiles=0) if it.file != "broken.dcm"]
    with CaptionWriter(tmp_path / "c.csv") as writer, pytest.raises(ModelError, match="does not fit the context"):
        caption_batch_ray(items, writer, model_dir=v2_checkpoint, device="cpu", actors=1, batch_size=2,
                          max_new_tokens=3, captioner=BrokenModel)
    assert read_caption_rows(tmp_path / "c.csv") == []


def test_actors_that_cannot_load_the_model_fail_the_run_clearly(ray_local, mixed_folder: Path, tmp_path: Path) -> None:
    """A model folder without a model (e.g. not mounted on a node) ends the run with the loader's one-line message."""
    from medapp.errors import UserError
    from medapp.jobs.caption_ray import caption_batch_ray
    from models.errors import ModelError

    empty = tmp_path / "no-model"
    empty.mkdir()
    items = list_items(mixed_folder, tissue_tiles=0)
    with CaptionWriter(tmp_path / "c.csv") as writer, pytest.raises((ModelError, UserError)) as caught:
        caption_batch_ray(items, writer, model_dir=empty, device="cpu", actors=1, batch_size=2, stall_s=240)
    message = str(caught.value)
    assert "\n" not in message and "no captions came back" not in message, message
    assert read_caption_rows(tmp_path / "c.csv") == []


def test_cli_ray_writes_the_same_outputs(ray_local, v2_checkpoint: Path, mixed_folder: Path, tmp_path: Path, capsys,
                                         monkeypatch) -> None:
    """`medapp caption DIR --ray`: CSV, JSONL and contact sheet, the model loaded by the actors only (not by this
    process); file names stay out of Ray's logs."""
    from pypdf import PdfReader

    from medapp.model_holder import ModelHolder

    monkeypatch.setattr(ModelHolder, "get", lambda self: pytest.fail("the driver loaded the model"))

    csv_path, jsonl, sheet = tmp_path / "c.csv", tmp_path / "c.jsonl", tmp_path / "sheet.pdf"
    argv = ["caption", str(mixed_folder), "-o", str(csv_path), "--jsonl", str(jsonl), "--sheet", str(sheet),
            "--tiles", "2", "--batch-size", "3", "--max-new-tokens", "4", "--model", str(v2_checkpoint),
            "--device", "cpu", "--ray"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = read_caption_rows(csv_path)
    assert len(rows) == 8 and len(read_jsonl_rows(jsonl)) == 8
    assert "captioned 7, failed 1" in captured.out and "skipped broken.dcm: " in captured.err
    assert len(PdfReader(sheet).pages) >= 1
    assert main([*argv[:-1], "--resume", "--ray"]) == 0
    assert read_caption_rows(csv_path) == rows

    _, temp = ray_local
    for log in (p for p in temp.rglob("*") if p.is_file() and p.suffix in (".log", ".out", ".err", ".txt")):
        text = log.read_text(errors="replace")
        assert str(mixed_folder) not in text and "broken.dcm" not in text, f"a file name leaked into {log.name}"


def test_ray_address_that_is_a_folder_is_refused(mixed_folder: Path, tmp_path: Path, capsys) -> None:
    assert main(["caption", "-o", str(tmp_path / "c.csv"), "--ray", str(mixed_folder), str(mixed_folder)]) == 2
    assert "--ray" in capsys.readouterr().err


def test_without_ray_the_flag_says_what_to_install(mixed_folder: Path, tmp_path: Path, capsys,
                                                   monkeypatch) -> None:
    for name in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, name, None)  # import ray -> ImportError, as on a machine without the extra
    assert main(["caption", str(mixed_folder), "-o", str(tmp_path / "c.csv"), "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "medapp: --ray needs Ray Data, which is not installed; install it with: pip install 'medapp[cluster]'"
    assert not (tmp_path / "c.csv").exists()


def test_a_fresh_process_starts_ray_on_loopback_and_stops_it(tmp_path: Path) -> None:
    """What the CLI does in a new process: environment set before Ray's import, 127.0.0.1 only, shut down at the end."""
    temp = tempfile.mkdtemp(prefix="mray")
    code = (
        "import ray, ray.data\n"  # imported first on purpose: the session must still stay on loopback
        "from medapp.cluster.runtime import ray_session\n"
        f"with ray_session(None, num_cpus=1, object_store_memory=100 * 2**20, temp_dir={temp!r}):\n"
        "    print(sorted({n['NodeManagerAddress'] for n in ray.nodes()}))\n"
        "    ray.data.range(3).map_batches(lambda b: b).materialize()\n"
        "print(ray.is_initialized())\n"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["['127.0.0.1']", "False"]
    # a quiet terminal: no Ray start-up banner, token notice, Ray Data progress or execution-plan tables
    for noise in ("Started a local Ray instance", "Token authentication is enabled", "Running Dataset",
                  "Execution plan", "Progress bars disabled", " INFO "):
        assert noise not in out.stderr, out.stderr[-2000:]


def test_import_medapp_does_not_import_ray() -> None:
    code = ("import sys, medapp, medapp.cli, medapp.cluster, medapp.cluster.runtime, medapp.cluster.stages, "
            "medapp.jobs.caption_ray; print(' '.join(m for m in ('ray', 'torch', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
