"""With no model anywhere, model jobs fail with download instructions; nothing else needs a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from medapp.model_holder import MODEL_REPO_ID, ModelHolder
from medapp.settings import Settings
from models.errors import ModelNotFoundError


@pytest.fixture
def no_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medapp_home: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setenv("MEDAPP_MODELS_DIR", str(tmp_path / "empty-models"))


def test_no_model_anywhere_says_what_to_download(no_models: None) -> None:
    holder = ModelHolder(Settings())
    with pytest.raises(ModelNotFoundError) as err:
        holder.get()
    message = str(err.value)
    assert MODEL_REPO_ID in message and "medapp model convert" in message and "settings.json" in message
    assert not holder.loaded


def test_missing_explicit_and_configured_folders(no_models: None, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=MODEL_REPO_ID):
        ModelHolder(model_dir=tmp_path / "nope").resolve_model_dir()
    with pytest.raises(ModelNotFoundError, match='setting "model_dir"'):
        ModelHolder(Settings(model_dir=str(tmp_path / "gone"))).resolve_model_dir()


def test_model_found_in_hf_cache(no_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, v2_checkpoint: Path) -> None:
    """A Dragonfly-Med snapshot laid out as the HF cache does is found without any setting."""
    cache = tmp_path / "hf"
    snap = cache / "models--togethercomputer--Llama-3.1-8B-Dragonfly-Med-v2" / "snapshots" / "abc123"
    snap.parent.mkdir(parents=True)
    snap.symlink_to(v2_checkpoint, target_is_directory=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert ModelHolder(Settings()).resolve_model_dir() == snap


def test_concurrent_get_loads_once(monkeypatch: pytest.MonkeyPatch, v2_checkpoint: Path) -> None:
    """The window may start two jobs at once; both must get the same engine from a single load."""
    import threading
    import time

    import models.engine

    calls: list[tuple] = []

    def slow_load(path, device, quant, dtype):  # stands in for the real load (a test double, test-only)
        calls.append((path, device, quant, dtype))
        time.sleep(0.2)
        return object()

    monkeypatch.setattr(models.engine.DragonflyEngine, "from_pretrained", staticmethod(slow_load))
    holder = ModelHolder(Settings(device="cpu"), model_dir=v2_checkpoint)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(holder.get())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and calls[0][1:] == ("cpu", "none", None)
    assert len(results) == 4 and all(r is results[0] for r in results)
