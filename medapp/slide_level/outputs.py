"""A slide description's files besides slide.json: the heat-map PNG and the PDF, and how regions are read.

`region_image` is the one way a picked region becomes pixels (for the model and for the PDF thumbnails), through
`medapp.view.render_slide_region`, the app's single place that reads and shrinks slide regions. `write_outputs` turns
the finished state into plain data for `medapp.slide_level.heatmap` and `reports.slide_pdf` and writes both
atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HEATMAP_NAME", "PDF_NAME", "region_image", "write_outputs"]

HEATMAP_NAME, PDF_NAME = "heatmap.png", "slide.pdf"
_THUMB_PX = 384


def region_image(slide: Any, box: tuple[int, int, int, int], max_side: int) -> Any:
    """A region as the pipeline gets it: read from the finest level that keeps it within `max_side`, then shrunk."""
    from PIL import Image

    from medapp.view import render_slide_region, slide_region_level

    image = render_slide_region(slide, box, slide_region_level(slide, box, max_side))
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def write_outputs(slide: Any, folder: Path, state: dict[str, Any], overview: Any,
                  cache_scores: tuple[Any, np.ndarray, Sequence[Any]]) -> None:
    """heatmap.png and slide.pdf from the finished state (plain data to reports/)."""
    import io

    from medapp.slide_level.heatmap import draw_region_boxes, heatmap_image
    from reports.atomic import atomic_write_bytes
    from reports.slide_pdf import SlideDocument, SlideRegionEntry, render_slide_pdf

    _cache, scores, candidates = cache_scores
    size0 = tuple(slide.level_dimensions[0])
    boxes = np.asarray([c.box for c in candidates], dtype=np.int64).reshape(-1, 4)
    picked = [r["box"] for r in state["regions"]]
    heat = heatmap_image(overview, size0, boxes, scores, picked)
    buf = io.BytesIO()
    heat.save(buf, "PNG")
    atomic_write_bytes(folder / HEATMAP_NAME, buf.getvalue())

    desc = state["description"]
    notes = []
    if desc["invalid_citations"]:
        notes.append("Citations of regions that do not exist were removed: "
                     + ", ".join(f"[{n}]" for n in desc["invalid_citations"]))
    if desc["uncited_sentences"]:
        notes.append(f"{desc['uncited_sentences']} sentence(s) cite no region; treat them with extra care.")
    entries = []
    for r in state["regions"]:
        thumb = region_image(slide, tuple(r["box"]), _THUMB_PX)
        entries.append(SlideRegionEntry(r["number"], thumb, r["caption"] or "", tuple(r["box"]), r["magnification"],
                                        r["score"]))
    prov = state["provenance"]
    rows = [("Model", f"{prov['model_id']} ({prov['model_version']})"),
            ("Model SHA-256", prov["model_sha256"] or "unknown"),
            ("App", f"{prov['app']} {prov['app_version']}"), ("Created", prov["created"]),
            ("Slide fingerprint", state["slide"]["fingerprint"]), ("Scorer", prov["scorer"]),
            ("Magnification", f"{state['settings']['magnification']:g}×, {state['n_candidates']} tissue tiles scored, "
                              f"top {state['settings']['top_k']}"),
            ("Region prompt", prov["prompts"]["region"]),
            ("Settings SHA-256", prov["settings_sha256"])]
    document = SlideDocument(
        title=f"Slide description — {state['slide']['file']}",
        overview=draw_region_boxes(overview, size0, picked),
        description=desc["text"], regions=entries, provenance=rows, notes=notes,
    )
    render_slide_pdf(document, folder / PDF_NAME)
