"""Load time of a pre-quantised NF4 folder vs quantise-on-load (`--quant 4bit` on the bf16 checkpoint), on the CPU.

Each load runs in a fresh process (imports done before the clock starts; nothing else cached), alternating the two kinds, three times each,
after one warm-up each so both read from the page cache; the minimum `models.loading.load` time is reported, with
the ratio, for `load` alone and until every 4 KiB page of every weight has been touched (safetensors memory-maps the
file, so a pre-quantised `load` can return before the weights are read; the second figure includes that). Models: the tiny golden v2 (load time is mostly fixed costs there), and with ``BENCH_PREQUANT_BIG=1`` an
8B-shaped v2 with 2 decoder layers (Llama-3.1-8B widths, vocab 128,256, the tiny CLIP), random bf16 weights,
about 3.3 GB, built in a temporary folder (needs ~8 GB of free RAM and as much disk).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / ".." / "shared" / "golden" / "dragonfly-v2-tiny"

_CHILD = """
import json, sys, time, torch
torch.set_num_threads(2)
import models.auto, transformers.integrations.bitsandbytes  # imports are not load time: the app imports them once
from models.devices import _import_bitsandbytes
from models.loading import load
_import_bitsandbytes()
start = time.perf_counter()
loaded = load(sys.argv[1], "cpu", "4bit", "bfloat16", prequantized=sys.argv[2] == "pre")
seconds = time.perf_counter() - start
with torch.no_grad():  # touch every 4 KiB page once: safetensors may leave the weights memory-mapped, unread
    checksum = sum(int(t.detach().reshape(-1).view(torch.uint8)[::4096].sum())
                   for t in loaded.model.state_dict().values())
touched = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "touched": touched, "checksum": checksum}))
"""


def _time_load(folder: Path, mode: str) -> tuple[float, float]:
    """(seconds in `load`, seconds until every page of every weight has been touched) in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(folder), mode], capture_output=True, text=True,
                         check=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), float(result["touched"])


def build_8b_shaped(dst: Path, layers: int = 2) -> Path:
    """The tiny v2 folder with Llama-3.1-8B-wide text layers (random bf16 weights, official key names)."""
    import torch
    from safetensors.torch import save_file

    from models.check import expected_tensors

    shutil.copytree(GOLDEN, dst)
    for name in ("model.safetensors", "keys.txt"):
        (dst / name).unlink(missing_ok=True)
    config = json.loads((dst / "config.json").read_text())
    wide = {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
            "num_hidden_layers": layers, "head_dim": 128}
    config.update({k: v for k, v in wide.items() if k in config})
    config["text_config"].update(wide)
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    _, shapes = expected_tensors(dst)
    generator = torch.Generator().manual_seed(0)
    tensors = {k: (torch.randn(s, generator=generator) * 0.02).to(torch.bfloat16) for k, s in shapes.items()}
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def _compare(name: str, src: Path, work: Path) -> None:
    from models.quantize import quantize_checkpoint

    pre = quantize_checkpoint(src, work / f"{src.name}-nf4", progress=lambda m: None)
    size = lambda p: sum(f.stat().st_size for f in p.glob("*.safetensors")) / 1e6  # noqa: E731
    times: dict[str, list[tuple[float, float]]] = {"on-load": [], "pre": []}
    _time_load(src, "on-load"), _time_load(pre, "pre")  # warm-up: both from the page cache afterwards
    for _ in range(3):
        times["on-load"].append(_time_load(src, "on-load"))
        times["pre"].append(_time_load(pre, "pre"))
    for i, what in enumerate(("load()", "load() + every weight page touched")):
        a, b = min(t[i] for t in times["on-load"]), min(t[i] for t in times["pre"])
        runs = " vs ".join(", ".join(f"{t[i]:.2f}" for t in times[k]) for k in ("on-load", "pre"))
        print(f"{name} ({size(src):.0f} MB bf16 -> {size(pre):.0f} MB NF4), {what}: quantise-on-load {a:.2f} s, "
              f"pre-quantised {b:.2f} s, {a / b:.1f}x (min of 3; runs {runs})")


def main() -> None:
    os.environ.setdefault("MEDAPP_HASH_CACHE", str(Path(tempfile.gettempdir()) / "bench-prequant-hash-cache.json"))
    with tempfile.TemporaryDirectory(prefix="bench-prequant-") as tmp:
        work = Path(tmp)
        tiny = work / "dragonfly-v2-tiny"
        shutil.copytree(GOLDEN, tiny)
        _compare("tiny golden v2", tiny, work)
        if os.environ.get("BENCH_PREQUANT_BIG") == "1":
            _compare("8B-shaped v2, 2 layers", build_8b_shaped(work / "v2-8b-shaped-2l"), work)


if __name__ == "__main__":
    main()
