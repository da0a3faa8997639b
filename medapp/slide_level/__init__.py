"""Slide-level description: Dragonfly v1's zoom-in rule carried from crops to a whole-slide pyramid.

A pathologist reads a gigapixel slide; the model answers about one picture. The v1 paper's idea bridges the two:
look at a low-resolution overview and zoom in only where it matters, scoring each candidate region by the dot
product of its mean visual embedding with the overview's. Here the candidates are tissue tiles at a chosen
magnification, the embeddings come from the model's own vision tower and projector, the top regions (kept apart
from each other) are captioned with the full multi-resolution pipeline, and one description is written from the
numbered captions, each sentence citing the regions it rests on so the pathologist can check it.

Modules, one job each:
* `settings`    — the one place for prompts and generation settings (written into every output).
* `candidates`  — magnification → tile geometry, the tissue grid, tiles streamed from the pyramid.
* `scoring`     — the swappable `Scorer`, the engine's dot-product scorer and the on-disk score cache.
* `select`      — top-k with a minimum distance between picks (greedy NMS on level-0 centres).
* `citations`   — keep only region numbers that exist; one sentence ↔ its regions.
* `heatmap`     — scores and numbered boxes drawn over the thumbnail (Pillow).
* `job`         — `describe_slide`: one slide's resumable workflow (slide.json).
* `outputs`     — the heat-map PNG and the PDF; how a region becomes pixels.
* `folder`      — `describe_slides`: every slide under a folder, one output folder each.

Importing this package imports neither torch nor Qt.
"""

from medapp.slide_level.settings import SlideLevelSettings

__all__ = ["SlideLevelSettings"]
