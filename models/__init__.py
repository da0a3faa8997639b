"""Dragonfly / Dragonfly-Med on current transformers, loading the official checkpoints key for key.

The package import is light: torch and transformers load only when one of the lazy names below is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

# Nothing in medapp may download: force Hugging Face offline before transformers can be imported through us.
from models import offline as _offline  # noqa: F401

_LAZY = {
    "DragonflyConfig": "models.configuration_dragonfly",
    # Through models.auto: the first use also registers the Auto classes (AutoModelForCausalLM, AutoProcessor).
    "DragonflyProcessor": "models.auto",
    "DragonflyForCausalLM": "models.auto",
    "DragonflyEngine": "models.engine",
    "EngineInfo": "models.engine",
    "Generation": "models.engine",
    "build_prompt": "models.prompts",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
