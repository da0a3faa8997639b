"""One Dragonfly engine per process, loaded on first use and shared by every job.

Loading an 8B model takes tens of seconds and gigabytes of memory, so the window and the command line both hold a
`ModelHolder` and call `get()` when a job actually needs the model: opening, viewing, rendering and de-identifying
never load it, and therefore keep working on a machine with no model at all. `get()` is thread-safe (the window
may start two jobs at once) and loads exactly once.

Where the model comes from, in order: an explicit folder (``--model``), the ``model_dir`` setting, then known
Dragonfly(-Med) checkpoints in the local Hugging Face cache (`models.checkpoint.find_checkpoints`). If none is found,
`ModelNotFoundError` says exactly what to download and where to put it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from medapp import paths
from models.errors import ModelError, ModelNotFoundError

__all__ = [
    "ModelHolder",
    "ModelError",
    "ModelNotFoundError",
    "MODEL_REPO_ID",
    "missing_model_message",
    "checkpoint_summary",
]

MODEL_REPO_ID = "togethercomputer/Llama-3.1-8B-Dragonfly-Med-v2"


def missing_model_message(reason: str) -> str:
    """The one instruction a user without a model needs: what to download, how to convert it, where to put it."""
    from models.checkpoint import models_dir

    target = models_dir() / "Dragonfly-Med-v2"
    return (
        f"{reason}. Download {MODEL_REPO_ID} from Hugging Face on a computer with internet access "
        f"(for example `hf download {MODEL_REPO_ID} --local-dir Dragonfly-Med-v2`), copy that folder to this "
        f"computer and convert it once with `medapp model convert Dragonfly-Med-v2 {target}`; medapp finds it "
        f'there by itself (or pass `--model FOLDER`, or set "model_dir" in {paths.settings_path()}). '
        "Viewing, rendering and de-identification work without a model"
    )


class ModelHolder:
    """Lazily loads one `models.engine.DragonflyEngine` and hands the same one to every caller."""

    def __init__(
        self,
        settings: Any = None,
        *,
        model_dir: str | Path | None = None,
        device: str | None = None,
        quant: str | None = None,
        dtype: str | None = None,
    ) -> None:
        if settings is None:
            from medapp.settings import Settings

            settings = Settings()
        self.settings = settings
        self._model_dir = Path(model_dir).expanduser() if model_dir is not None else None
        self.device = device or settings.device
        self.quant = quant or settings.quant
        self.dtype = dtype if dtype is not None else settings.engine_dtype()
        self._engine: Any = None
        self._lock = threading.Lock()

    def resolve_model_dir(self) -> Path:
        """The checkpoint folder to load, or `ModelNotFoundError` with download instructions."""
        from models.checkpoint import find_checkpoints, resolve_checkpoint

        if self._model_dir is not None:
            try:  # a folder, or a hub id already in the local Hugging Face cache
                return resolve_checkpoint(self._model_dir)
            except ModelNotFoundError as exc:
                raise ModelNotFoundError(missing_model_message(str(exc))) from exc
        if self.settings.model_dir:
            folder = Path(self.settings.model_dir).expanduser()
            if not folder.is_dir():
                raise ModelNotFoundError(
                    missing_model_message(f'model folder {folder} (setting "model_dir") does not exist')
                )
            return folder
        found = find_checkpoints()  # best first: Dragonfly-Med v2, general v2, Med v1, v1, then converted folders
        if not found:
            raise ModelNotFoundError(
                missing_model_message("no Dragonfly-Med model is set and none is in the Hugging Face cache")
            )
        return found[0]

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def get(self) -> Any:
        """The engine, loading it on the first call (other callers wait for that one load)."""
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                folder = self.resolve_model_dir()  # before importing torch: no model -> a fast, clear error
                from models.engine import DragonflyEngine

                self._engine = DragonflyEngine.from_pretrained(folder, self.device, self.quant, self.dtype)
            return self._engine

    def unload(self) -> None:
        """Drop the engine (settings changed device or model); the next `get()` loads again."""
        with self._lock:
            self._engine = None


def checkpoint_summary(folder: str | Path) -> dict[str, Any]:
    """Check the checkpoint in `folder` quickly and say in one sentence what it is (the settings dialog's line).

    Runs `models.check.check_checkpoint` without the full re-hash (seconds, not minutes, on an 8B checkpoint):
    config, tensor names and shapes from the safetensors headers. Returns the check's dict plus `summary`, e.g.
    "Dragonfly-Med-v2 (Dragonfly v2), 8.53 B parameters, bfloat16 weights." or the problems found. The wording
    lives here, not in the dialog, so the CLI and the window describe a checkpoint the same way.
    """
    from models.check import check_checkpoint

    folder = Path(folder)
    result = dict(check_checkpoint(folder, verify_hashes=False))
    if result.get("ok"):
        n = result.get("n_params")
        size = ""
        if isinstance(n, int):
            size = f", {n / 1e9:.2f} B parameters" if n >= 10**8 else f", {n:,} parameters"
        name = result.get("model_id") or folder.name
        kind = "NF4 4-bit (pre-quantised) weights" if result.get("quantization") else f"{result.get('dtype') or '?'} weights"
        result["summary"] = f"{name} (Dragonfly {result.get('version')}){size}, {kind}."
    else:
        result["summary"] = "; ".join(result.get("problems") or ["the checkpoint is not usable"])
    return result
