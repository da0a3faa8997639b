"""`medapp ask --timings` and the engine's `Timings`: five stages, non-negative, inside the wall time around them.

No test asserts a speed: only that the numbers exist, are ordered sensibly and add up (the machine is shared).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medapp.cli import main

STAGE_NAMES = ["preprocess", "clip", "image prefill", "prompt prefill", "first token"]


def _stage_lines(err: str) -> dict[str, float]:
    found = {}
    for line in err.splitlines():
        m = re.fullmatch(r"\s+([a-z ]+?)\s+(-?\d+(?:\.\d+)?) ms(?: \(image encoding cached\))?", line)
        if m:
            found[m.group(1)] = float(m.group(2)) / 1000
    return found


def _fresh_png(tmp_path: Path, seed: int) -> Path:
    """An image the session's engine has not encoded yet (its cache is keyed by pixels)."""
    path = tmp_path / f"fresh_{seed}.png"
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (180, 260, 3), dtype=np.uint8)).save(path)
    return path


def test_ask_timings_prints_five_stages_after_the_answer(cli_engine, tmp_path: Path, medapp_home: Path,
                                                         capsys) -> None:
    image = _fresh_png(tmp_path, 11)
    start = time.perf_counter()
    assert main(["ask", str(image), "Describe.", "--max-new-tokens", "3", "--timings"]) == 0
    wall = time.perf_counter() - start
    captured = capsys.readouterr()
    assert captured.out.strip() and "time to first token" not in captured.out  # answer on stdout, timings not
    assert "medapp: time to first token" in captured.err
    values = _stage_lines(captured.err)
    assert list(values)[:5] == STAGE_NAMES, captured.err
    stages = [values[name] for name in STAGE_NAMES]
    assert all(v >= 0 for v in stages), captured.err
    assert values["clip"] > 0 and values["image prefill"] > 0 and values["prompt prefill"] > 0  # a new image
    # printed in ms with one decimal: allow that rounding, and nothing else
    assert abs(values["sum of stages"] - sum(stages)) <= 0.0005
    assert sum(stages) <= values["total"] + 0.0005 and values["total"] <= wall, (values, wall)


def test_ask_without_timings_prints_none(cli_engine, tmp_path: Path, medapp_home: Path, capsys) -> None:
    assert main(["ask", str(_fresh_png(tmp_path, 12)), "Describe.", "--max-new-tokens", "2"]) == 0
    assert "time to first token" not in capsys.readouterr().err


def test_engine_timings_for_new_and_cached_images(tiny_engine) -> None:
    from models.engine import Timings

    image = Image.fromarray(np.random.default_rng(13).integers(0, 256, (90, 120, 3), dtype=np.uint8))
    hooks_before = len(tiny_engine.model._forward_hooks)
    timings = Timings()
    start = time.perf_counter()
    first = tiny_engine.generate(image, [], "What is shown?", max_new_tokens=2, timings=timings)
    wall = time.perf_counter() - start
    assert first.timings is timings and not timings.cached_image
    stages = timings.stages()
    assert list(stages) == ["preprocess", "clip", "image_prefill", "prompt_prefill", "first_token"]
    assert all(v > 0 for v in stages.values()), stages
    assert sum(stages.values()) <= timings.total <= wall

    again = tiny_engine.generate(image, [], "And now?", max_new_tokens=2, timings=timings)  # reused object
    assert again.timings is timings and timings.cached_image
    assert timings.clip == 0 and timings.image_prefill == 0
    assert timings.preprocess > 0 and timings.prompt_prefill > 0 and timings.first_token > 0
    assert sum(timings.stages().values()) <= timings.total

    plain = tiny_engine.generate(image, [], "Once more?", max_new_tokens=2)
    assert plain.timings is None
    assert len(tiny_engine.model._forward_hooks) == hooks_before  # the prefill hook is gone again


def test_timings_do_not_change_the_answer(tiny_engine) -> None:
    from models.engine import Timings

    image = Image.fromarray(np.random.default_rng(14).integers(0, 256, (100, 100, 3), dtype=np.uint8))
    timed = tiny_engine.generate(image, [], "Describe.", max_new_tokens=4, timings=Timings())
    untimed = tiny_engine.generate(image, [], "Describe.", max_new_tokens=4)
    assert timed.token_ids == untimed.token_ids and timed.text == untimed.text


@pytest.mark.parametrize("cached", [False, True])
def test_summary_line(cached: bool) -> None:
    from models.engine import Timings

    t = Timings(preprocess=0.01, clip=0.02, image_prefill=0.03, prompt_prefill=0.004, first_token=0.001, total=0.07,
                cached_image=cached)
    line = t.summary()
    assert "preprocess 10.0" in line and "= 65.0 of 70.0 total" in line
    assert ("cached" in line) is cached
