"""`describe_slide`: one slide → scored tissue tiles → k regions read in full → one cited description, resumably.

Workflow (each step's output is on disk before the next starts, so a kill loses at most one batch):

1. **Candidates** (`candidates.candidate_grid`): tissue tiles at the chosen magnification, one model crop each.
2. **Scores** (`scoring.score_candidates`): the v1 dot-product rule against the slide thumbnail, batched, cached in
   the slide's output folder by slide fingerprint + model hash (+ scorer and grid), so a rerun scores nothing.
3. **Regions** (`select.select_regions`): top-k, at least `min_distance` tile sides apart.
4. **Captions**: each region image through the full multi-resolution pipeline (`engine.caption_batch`), in batches
   whose boundaries are fixed by rank (regions 1–4, 5–8, …) whatever was done before, so a resumed run asks the
   model exactly what an uninterrupted run asks. After each batch `slide.json` is rewritten with `complete: false`.
5. **Description**: the overview image plus the numbered captions (`SlideLevelSettings.description_text`);
   citations are checked (`citations.validate_citations`).
6. **Outputs** (`outputs.write_outputs`): `heatmap.png`, `slide.pdf`, then `slide.json` with `complete: true` last, all written atomically
   (`reports.atomic`). A slide whose `slide.json` is complete for the same slide fingerprint, model hash, scorer
   and settings is skipped.

Every model use is audited (event "caption", kind "slide-scores" / "slide-regions" / "slide-description", input
hashes only, no names or paths) before its result is written, like the folder captioning job. AI output is marked
as a draft in every file.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from medapp.errors import UserError
from medapp.jobs.progress import EtaClock, Progress, ProgressCallback
from medapp.slide_level.settings import SlideLevelSettings

__all__ = [
    "FORMAT", "STAGE_CAPTION", "STAGE_DESCRIBE", "STAGE_SCORE", "SlideOutcome", "default_output_folder",
    "describe_slide", "load_result", "load_scores",
]

FORMAT = "medapp-slide-description/1"
DRAFT = "AI DRAFT — not reviewed"
STAGE_SCORE = "tiles scored"
STAGE_CAPTION = "regions captioned"
STAGE_DESCRIBE = "description"
RESULT_NAME = "slide.json"


@dataclass
class SlideOutcome:
    """What happened to one slide."""

    folder: Path
    status: str  # "done" | "skipped" (already complete) | "cancelled"
    regions: int = 0
    tiles_scored: int = 0  # scored in this run (0 when the cache had them)
    scorer_calls: int = 0
    captions_done: int = 0  # captioned in this run
    seconds: float = 0.0

    @property
    def result_path(self) -> Path:
        return self.folder / RESULT_NAME




def load_result(folder: str | Path) -> dict[str, Any] | None:
    """The slide.json in `folder`, or None when absent or unreadable (then the slide is simply done again)."""
    path = Path(folder) / RESULT_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def _identity(fingerprint: str, model_sha: str | None, scorer: str, settings: SlideLevelSettings) -> dict[str, Any]:
    return {"slide_fingerprint": fingerprint, "model_sha256": model_sha, "scorer": scorer,
            "settings_sha256": settings.settings_sha256}


def _same_identity(data: dict[str, Any], identity: dict[str, Any]) -> bool:
    return bool(data) and data.get("identity") == identity


def _open_slide(path: Path) -> Any:
    from dicom_io.slide import Slide
    from medapp.view import open_cached

    opened = open_cached(path)
    if not isinstance(opened, Slide):
        raise UserError(f"{path}: not a whole-slide image (slide-level description needs a slide pyramid)")
    return opened




def _report(on_progress: ProgressCallback | None, stage: str, done: int, total: int, clock: EtaClock | None) -> None:
    if on_progress is not None:
        on_progress(Progress(done, total, clock.eta(done) if clock else None, stage))


def describe_slide(
    engine: Any,
    path: str | Path,
    folder: str | Path,
    *,
    settings: SlideLevelSettings | None = None,
    scorer: Any = None,
    file_key: str | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    audit: Any = None,
) -> SlideOutcome:
    """Describe one slide into `folder` (created); see the module docstring for the steps and files.

    `scorer` replaces the model's dot-product scorer (`scoring.Scorer`); `file_key` is the name written into
    slide.json (default: the file name). `on_progress(Progress)` gets `item` = one of the STAGE_* names.
    """
    from medapp.hashing import slide_fingerprint
    from medapp.slide_level.candidates import candidate_grid
    from medapp.slide_level.scoring import EmbeddingScorer, ScoreCache, cache_key, score_candidates, scorer_id
    from medapp.slide_level.select import select_regions
    from reports.atomic import atomic_write_json

    settings = settings or SlideLevelSettings()
    started = time.monotonic()
    folder = Path(folder)
    slide = _open_slide(Path(path))
    fingerprint = slide_fingerprint(slide.path)
    info = engine.info
    scorer = scorer if scorer is not None else EmbeddingScorer(engine, settings.score_batch_size)
    identity = _identity(fingerprint, info.checkpoint_sha256, scorer_id(scorer), settings)
    previous = load_result(folder) or {}
    if _same_identity(previous, identity) and previous.get("complete"):
        return SlideOutcome(folder, "skipped", regions=len(previous.get("regions", [])),
                            seconds=time.monotonic() - started)
    folder.mkdir(parents=True, exist_ok=True)

    # 1-2: candidates and scores
    crop_px = int(engine.processor.variant_spec.crop_size)
    grid, candidates = candidate_grid(slide, settings.magnification, crop_px, tissue_fraction=settings.tissue_fraction)
    if not candidates:
        raise UserError(f"{slide.path}: no tissue found at {settings.magnification:g}x (every tile is mostly glass)")
    overview = slide.thumbnail(settings.overview_side)
    key = cache_key(fingerprint=fingerprint, model_sha256=info.checkpoint_sha256, scorer=scorer_id(scorer), grid=grid,
                    tissue_fraction=settings.tissue_fraction, overview_side=settings.overview_side)
    cache = ScoreCache(folder, key)
    clock = EtaClock(len(candidates))
    scoring = score_candidates(
        slide, grid, candidates, overview, scorer, cache=cache, batch_size=settings.score_batch_size,
        on_batch=lambda done, total: _report(on_progress, STAGE_SCORE, done, total, clock), cancel=cancel,
    )
    outcome = SlideOutcome(folder, "cancelled", tiles_scored=scoring.scored_now, scorer_calls=scoring.scorer_calls)
    if scoring.scored_now and audit is not None and isinstance(scorer, EmbeddingScorer):
        audit.record("caption", inputs=[fingerprint], model_sha256=info.checkpoint_sha256, kind="slide-scores",
                     n_inputs=len(candidates), n_done=scoring.scored_now, cancelled=scoring.cancelled,
                     batch_size=settings.score_batch_size, seconds=round(time.monotonic() - started, 3))
    if scoring.cancelled:
        outcome.seconds = time.monotonic() - started
        return outcome

    # 3: regions
    centres = np.asarray([c.centre for c in candidates], dtype=np.float64).reshape(-1, 2)
    picks = select_regions(centres, scoring.scores, settings.top_k, settings.min_distance * grid.tile0)
    regions: list[dict[str, Any]] = []
    for rank, i in enumerate(picks, 1):
        cand = candidates[i]
        regions.append({
            "number": rank, "rank": rank, "box": list(cand.box), "centre": [round(v, 1) for v in cand.centre],
            "magnification": settings.magnification, "score": float(scoring.scores[i]), "tissue": round(cand.tissue, 4),
            "grid_index": cand.index, "caption": None, "stop_reason": None, "input_sha256": None,
        })
    if _same_identity(previous, identity):  # an interrupted run of the same job: keep its finished captions
        earlier = {tuple(r.get("box", ())): r for r in previous.get("regions", []) if r.get("caption") is not None}
        for region in regions:
            done = earlier.get(tuple(region["box"]))
            if done is not None:
                region.update(caption=done["caption"], stop_reason=done.get("stop_reason"),
                              input_sha256=done.get("input_sha256"))

    state: dict[str, Any] = {
        "format": FORMAT, "complete": False, "status": DRAFT, "identity": identity,
        "slide": {"file": file_key or slide.path.name, "fingerprint": fingerprint,
                  "width": slide.level_dimensions[0][0], "height": slide.level_dimensions[0][1],
                  "mpp": list(slide.mpp) if slide.mpp else None, "objective_power": slide.objective_power},
        "grid": grid.to_dict(), "n_candidates": len(candidates),
        "scores_file": cache.path.name, "regions": regions, "description": None,
        "settings": settings.to_dict(), "provenance": _provenance(engine, scorer_id(scorer), settings),
    }

    # 4: captions, in rank-aligned batches (slide.json rewritten after each); 5: the description
    outcome.captions_done, finished = _caption_regions(engine, slide, folder, state, settings, on_progress, cancel,
                                                       audit)
    description = None
    if finished and not (cancel is not None and cancel.is_set()):
        description = _describe(engine, overview, regions, settings, on_progress, cancel, audit)
    if description is None:
        atomic_write_json(folder / RESULT_NAME, state)  # resume continues from the finished captions
        outcome.seconds = time.monotonic() - started
        return outcome
    state["description"] = description

    # 6: outputs, slide.json last
    from medapp.slide_level.outputs import write_outputs

    write_outputs(slide, folder, state, overview, cache_scores=(cache, scoring.scores, candidates))
    state["complete"] = True
    atomic_write_json(folder / RESULT_NAME, state)
    outcome.status, outcome.regions = "done", len(regions)
    outcome.seconds = time.monotonic() - started
    return outcome


def _caption_regions(engine: Any, slide: Any, folder: Path, state: dict[str, Any], settings: SlideLevelSettings,
                     on_progress: ProgressCallback | None, cancel: threading.Event | None,
                     audit: Any) -> tuple[int, bool]:
    """Caption the regions still without one, `caption_batch_size` at a time, in batches fixed by rank.

    Fixed boundaries (1–4, 5–8, …) mean a resumed run sends the model exactly the batches an uninterrupted run
    sends, so it gets the same captions. Each batch is audited, then written into slide.json (`complete: false`).
    Returns (how many were captioned now, whether all are done); on cancel the unfinished batch is redone on resume.
    """
    from medapp.hashing import image_sha256
    from reports.atomic import atomic_write_json

    regions = state["regions"]
    size = settings.caption_batch_size
    model_sha = engine.info.checkpoint_sha256
    clock = EtaClock(sum(1 for r in regions if r["caption"] is None))
    done = 0
    _report(on_progress, STAGE_CAPTION, sum(r["caption"] is not None for r in regions), len(regions), clock)
    for start in range(0, len(regions), size):
        chunk = regions[start : start + size]
        if all(r["caption"] is not None for r in chunk):
            continue
        if cancel is not None and cancel.is_set():
            return done, False
        batch_started = time.monotonic()
        from medapp.slide_level.outputs import region_image

        images = [region_image(slide, tuple(r["box"]), settings.region_max_side) for r in chunk]
        generations = engine.caption_batch(images, settings.region_prompt,
                                           max_new_tokens=settings.caption_max_new_tokens, batch_size=size,
                                           cancel=cancel)
        if len(generations) < len(chunk) or any(g.stop_reason == "cancelled" for g in generations):
            return done, False
        hashes = [image_sha256(im) for im in images]
        if audit is not None:  # before the captions are written: nothing on disk without an audit entry
            audit.record("caption", inputs=hashes, model_sha256=model_sha, kind="slide-regions", n_inputs=len(chunk),
                         n_done=len(chunk), batch_size=size, resumed=any(r["caption"] is not None for r in regions),
                         seconds=round(time.monotonic() - batch_started, 3))
        for region, generation, digest in zip(chunk, generations, hashes, strict=True):
            region.update(caption=generation.text.strip(), stop_reason=generation.stop_reason, input_sha256=digest)
        done += len(chunk)
        atomic_write_json(folder / RESULT_NAME, state)
        _report(on_progress, STAGE_CAPTION, sum(r["caption"] is not None for r in regions), len(regions), clock)
    return done, True


def _describe(engine: Any, overview: Any, regions: list[dict[str, Any]], settings: SlideLevelSettings,
              on_progress: ProgressCallback | None, cancel: threading.Event | None, audit: Any) -> dict[str, Any] | None:
    """The description: the overview image plus the numbered captions, citations checked; None when cancelled."""
    from medapp.hashing import image_sha256, text_sha256
    from medapp.slide_level.citations import validate_citations

    _report(on_progress, STAGE_DESCRIBE, 0, 1, None)
    prompt = settings.description_text([r["caption"] for r in regions])
    started = time.monotonic()
    generation = engine.generate(overview, None, prompt, max_new_tokens=settings.description_max_new_tokens,
                                 cancel=cancel)
    if generation.stop_reason == "cancelled":
        return None
    cited = validate_citations(generation.text.strip(), len(regions))
    if audit is not None:
        audit.record("caption", inputs=[image_sha256(overview)], model_sha256=engine.info.checkpoint_sha256,
                     kind="slide-description", n_inputs=len(regions), n_tokens=len(generation.token_ids),
                     stop_reason=generation.stop_reason, prompt_sha256=text_sha256(prompt),
                     answer_chars=len(cited.text), seconds=round(time.monotonic() - started, 3))
    _report(on_progress, STAGE_DESCRIBE, 1, 1, None)
    return {
        "text": cited.text, "raw": cited.raw, "stop_reason": generation.stop_reason,
        "sentences": [{"text": s.text, "regions": list(s.regions)} for s in cited.sentences],
        "invalid_citations": list(cited.invalid), "uncited_sentences": cited.uncited_sentences, "prompt": prompt,
    }


def _provenance(engine: Any, scorer: str, settings: SlideLevelSettings) -> dict[str, Any]:
    from medapp import __version__

    info = engine.info
    return {
        "app": "medapp", "app_version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_id": info.model_id, "model_sha256": info.checkpoint_sha256, "model_version": info.version,
        "device": info.device, "dtype": info.dtype, "quant": info.quant, "scorer": scorer,
        "settings_sha256": settings.settings_sha256,
        "prompts": {"region": settings.region_prompt, "description_template": settings.description_prompt},
        "note": "AI-generated draft; each sentence cites the numbered regions it is based on",
    }








def default_output_folder(path: str | Path) -> Path:
    """Where the window keeps a slide's description: the app data folder, by slide fingerprint (no file names)."""
    from medapp import paths
    from medapp.hashing import slide_fingerprint

    return paths.data_dir() / "slide-descriptions" / slide_fingerprint(_open_slide(Path(path)).path)[:24]


def load_scores(folder: str | Path, result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (n, 4), scores (n,)) of the candidates from the score cache named in `result` (empty when missing)."""
    path = Path(folder) / str(result.get("scores_file", ""))
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["boxes"].astype(np.int64), data["scores"].astype(np.float32)
    except (OSError, ValueError, KeyError):
        return np.zeros((0, 4), np.int64), np.zeros(0, np.float32)
