"""Score candidate tiles against the slide overview, batched, cached on disk, with a swappable scorer.

The rule is Dragonfly v1's zoom-in selection (`models.modeling_dragonfly.DragonflyForCausalLM.zoom_select`): the
raw dot product between a region's mean projected visual embedding and the overview's, no normalisation. v1 used it
to pick high-resolution crops inside one picture; here the "picture" is the slide thumbnail and the crops are
tissue tiles of the pyramid.

* **Swappable.** Anything with `__call__(overview, tiles) -> scores` is a `Scorer`; `EmbeddingScorer` is the model
  one, and tests inject deterministic ones. `cache_id` (optional) names what produces the numbers, so two scorers
  never share cached scores.
* **Batched.** Tiles arrive from a generator (`candidates.stream_tiles`) and go to the scorer `batch_size` at a time;
  the overview embedding is computed once per slide.
* **Cached, resumable.** Scores live in an .npz keyed by the slide fingerprint, the model hash, the scorer id and
  the grid geometry. Unscored tiles are NaN; the file is rewritten (atomically) every `checkpoint_s` seconds and
  on cancel, so a killed scoring pass resumes where it stopped, and a finished one costs nothing the second time.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from medapp.slide_level.candidates import Candidate, TileGrid, batched, stream_tiles

__all__ = ["EmbeddingScorer", "ScoreCache", "Scorer", "ScoringResult", "cache_key", "score_candidates", "scorer_id"]


@runtime_checkable
class Scorer(Protocol):
    """`scores = scorer(overview, tiles)`: one float per tile, higher = more worth reading."""

    def __call__(self, overview: Image.Image, tiles: Sequence[Image.Image]) -> np.ndarray: ...


def scorer_id(scorer: Any) -> str:
    """What produced the scores: the scorer's `cache_id`, else its qualified name."""
    ident = getattr(scorer, "cache_id", None)
    if ident:
        return str(ident)
    target = scorer if hasattr(scorer, "__qualname__") else type(scorer)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(scorer).__name__)}"


class EmbeddingScorer:
    """The v1 rule with the loaded model: `mean_embedding(tile) · mean_embedding(overview)`.

    Both go through `DragonflyEngine.mean_embeddings` (vision tower + projector, one crop each, processor-exact
    pixels). The overview's embedding is memoised per overview image, so it is computed once per slide.
    """

    cache_id = "dragonfly-v1-zoom-dot/1"

    def __init__(self, engine: Any, batch_size: int = 8) -> None:
        self.engine = engine
        self.batch_size = int(batch_size)
        self._overview: tuple[str, np.ndarray] | None = None
        self._overview_image: Image.Image | None = None
        self.calls = 0

    def overview_embedding(self, overview: Image.Image) -> np.ndarray:
        """The overview's embedding, computed once: the same image object is recognised without hashing it again
        for every batch; another image is recognised by its pixels."""
        if self._overview is not None and self._overview_image is overview:
            return self._overview[1]
        from medapp.hashing import image_sha256

        key = image_sha256(overview)
        if self._overview is None or self._overview[0] != key:
            self._overview = (key, self.engine.mean_embeddings([overview], batch_size=1)[0].astype(np.float64))
        self._overview_image = overview
        return self._overview[1]

    def __call__(self, overview: Image.Image, tiles: Sequence[Image.Image]) -> np.ndarray:
        self.calls += 1
        anchor = self.overview_embedding(overview)
        q = self.engine.mean_embeddings(list(tiles), batch_size=self.batch_size).astype(np.float64)
        return (q @ anchor).astype(np.float32)


def cache_key(*, fingerprint: str, model_sha256: str | None, scorer: str, grid: TileGrid,
              tissue_fraction: float, overview_side: int) -> str:
    """SHA-256 over everything the scores depend on."""
    data = {
        "v": 1, "slide": fingerprint, "model": model_sha256 or "unknown", "scorer": scorer, "grid": grid.to_dict(),
        "tissue_fraction": tissue_fraction, "overview_side": overview_side,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class ScoreCache:
    """One slide's scores on disk (`scores-<key>.npz` in the slide's output folder), written atomically."""

    def __init__(self, folder: Path, key: str) -> None:
        self.key = key
        self.path = Path(folder) / f"scores-{key[:16]}.npz"

    def load(self, indices: np.ndarray) -> np.ndarray | None:
        """Stored scores for exactly these grid `indices` (NaN = not scored yet), or None without a usable file."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["key"]) != self.key or not np.array_equal(data["indices"], indices):
                    return None
                return data["scores"].astype(np.float32)
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache is recomputed, never trusted

    def save(self, indices: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> None:
        from reports.atomic import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, key=np.array(self.key), indices=indices, boxes=boxes, scores=scores.astype(np.float32))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, buf.getvalue())


@dataclass
class ScoringResult:
    scores: np.ndarray  # (n,) float32, NaN where not scored (only after a cancel)
    scorer_calls: int
    scored_now: int  # tiles scored in this run (0 = all from the cache)
    cancelled: bool


def score_candidates(
    slide: Any,
    grid: TileGrid,
    candidates: Sequence[Candidate],
    overview: Image.Image,
    scorer: Scorer,
    *,
    cache: ScoreCache | None,
    batch_size: int = 8,
    on_batch: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    checkpoint_s: float = 30.0,
    read_workers: int = 2,
) -> ScoringResult:
    """Scores for `candidates` (cache first), streaming the missing tiles to `scorer` `batch_size` at a time.

    `on_batch(done, total)` follows each batch; `cancel` stops between batches (the partial scores are saved).
    """
    indices = np.asarray([c.index for c in candidates], dtype=np.int64)
    boxes = np.asarray([c.box for c in candidates], dtype=np.int64).reshape(-1, 4)
    scores = cache.load(indices) if cache is not None else None
    if scores is None:
        scores = np.full(len(candidates), np.nan, dtype=np.float32)
    todo = [i for i in range(len(candidates)) if not np.isfinite(scores[i])]
    total = len(candidates)
    calls = scored = 0
    cancelled = False
    if on_batch is not None:
        on_batch(total - len(todo), total)
    last_save = time.monotonic()
    tiles = stream_tiles(slide, grid, (candidates[i] for i in todo), workers=read_workers,
                         prefetch=2 * batch_size)
    positions = iter(todo)
    for batch in batched(tiles, batch_size):
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        values = np.asarray(scorer(overview, [image for _, image in batch]), dtype=np.float32).reshape(-1)
        calls += 1
        if values.shape[0] != len(batch):
            raise ValueError(f"the scorer returned {values.shape[0]} scores for {len(batch)} tiles")
        for value in values:
            scores[next(positions)] = value
        scored += len(batch)
        if on_batch is not None:
            on_batch(total - len(todo) + scored, total)
        if cache is not None and time.monotonic() - last_save > checkpoint_s:
            cache.save(indices, boxes, scores)
            last_save = time.monotonic()
    if cache is not None and (scored or not cache.path.is_file()):
        cache.save(indices, boxes, scores)
    return ScoringResult(scores, calls, scored, cancelled)
