"""Shared fixtures for the Dragonfly model tests: each checkpoint loads once, each golden case runs once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CASES = ["pub_224x224", "pub_512x512", "pub_800x600", "pub_1000x250_wide", "pub_250x1000_tall"]
VERSIONS = ["v2", "v1"]


@dataclass
class GoldenCase:
    """One golden case: reference tensors and JSON, our processor output, and (lazily) our model outputs."""

    version: str
    name: str
    ref: dict[str, Any]
    meta: dict[str, Any]
    image_path: Path
    batch: Any
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def logit_scale(self) -> float:
        return float(self.meta["results"]["logits_scale_last8_absmax"])


@pytest.fixture(autouse=True)
def torch_threads() -> Iterator[None]:
    """Two intra-op threads during each model test (the machine is shared); the previous count is restored after it,
    so tests that run later in the session (ui, medapp) see torch as they would alone."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def dragonfly_models(v2_checkpoint: Path, v1_checkpoint: Path) -> dict[str, Any]:
    """Both tiny golden checkpoints, float32, eval mode, loaded once per session (lazily per version)."""
    import torch

    from models.modeling_dragonfly import DragonflyForCausalLM

    folders = {"v2": v2_checkpoint, "v1": v1_checkpoint}

    class _Lazy(dict):
        def __missing__(self, version: str) -> Any:
            model = DragonflyForCausalLM.from_pretrained(folders[version], dtype=torch.float32).eval()
            self[version] = model
            return model

    return _Lazy()


@pytest.fixture(scope="session")
def dragonfly_processors(v2_checkpoint: Path, v1_checkpoint: Path) -> dict[str, Any]:
    from models.processing_dragonfly import DragonflyProcessor

    return {"v2": DragonflyProcessor.from_pretrained(v2_checkpoint), "v1": DragonflyProcessor.from_pretrained(v1_checkpoint)}


@pytest.fixture(scope="session")
def golden_cases(golden_dir: Path, dragonfly_processors: dict[str, Any]) -> dict[tuple[str, str], GoldenCase]:
    """Every golden case, processed lazily and only once per session."""
    from PIL import Image
    from safetensors.torch import load_file

    class _Cases(dict):
        def __missing__(self, key: tuple[str, str]) -> GoldenCase:
            version, name = key
            folder = golden_dir / f"cases-{version}"
            meta = json.loads((folder / f"{name}.json").read_text())
            image_path = folder / f"{name}.png"
            with Image.open(image_path) as im:
                image = im.convert("RGB")
            batch = dragonfly_processors[version](
                text=[meta["prompt"]], images=[image], max_length=2048, return_tensors="pt", is_generate=True
            )
            case = GoldenCase(version, name, load_file(folder / f"{name}.safetensors"), meta, image_path, batch)
            self[key] = case
            return case

    return _Cases()
