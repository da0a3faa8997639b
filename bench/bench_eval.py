"""`medapp eval` throughput: questions per second answered in batches against one question per model call.

The same tiny Path-VQA copy (parquet, as the real one; bench/_eval_data.py) and the golden tiny v2 checkpoint; both
sides go through `medapp.eval.run.run_eval` (image reading, prompts, fsynced answer lines included), so the ratio
is what a site sees from `--batch-size`. The two sides alternate over two repeats, so the machine's drift (2-3x
under load here) hits both alike; the ratio of medians is the result.

Run: `./run.sh bench eval` (`MEDAPP_BENCH_THREADS=1` pins torch to one thread: less noisy on a shared machine).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

N_QUESTIONS = 16
BATCH = 8
MAX_NEW_TOKENS = 8


def _golden() -> Path:
    env = os.environ.get("MEDAPP_GOLDEN")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "golden"


def main() -> None:
    import torch

    from bench._eval_data import PATH_VQA_ROWS, write_hf_parquet
    from medapp.eval.datasets import load_dataset
    from medapp.eval.run import run_eval
    from models.engine import DragonflyEngine

    if os.environ.get("MEDAPP_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["MEDAPP_BENCH_THREADS"]))
    engine = DragonflyEngine.from_pretrained(_golden() / "dragonfly-v2-tiny", device="cpu", dtype="float32",
                                             verify="none")
    rows = [PATH_VQA_ROWS[i % len(PATH_VQA_ROWS)] for i in range(N_QUESTIONS)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_hf_parquet(root / "data" / "test-00000-of-00001.parquet", rows, row_group_size=8)
        dataset = load_dataset("path-vqa", root)

        def timed(batch_size: int, tag: str, limit: int | None = None) -> float:
            start = time.perf_counter()
            run_eval(engine, dataset, root / tag, batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS, limit=limit)
            return time.perf_counter() - start

        timed(2, "warm-up", limit=4)
        single, batched = [], []
        for r in range(2):
            single.append(timed(1, f"single-{r}"))
            batched.append(timed(BATCH, f"batched-{r}"))
    a, b = statistics.median(single), statistics.median(batched)
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"eval: {N_QUESTIONS} Path-VQA questions, {MAX_NEW_TOKENS} new tokens each, tiny v2 model:")
    print(f"    one at a time {N_QUESTIONS / a:.2f} q/s, batches of {BATCH} {N_QUESTIONS / b:.2f} q/s  ->  "
          f"{a / b:.2f}x")


if __name__ == "__main__":
    main()
