"""Top-k regions with a minimum distance between them (greedy non-maximum suppression on level-0 centres).

Why: neighbouring tiles of the same structure score alike, so a plain top-k would spend the whole reading budget on
one spot. Greedy NMS keeps the best tile, drops everything closer than `min_distance` to a kept one, and repeats —
the k regions then sample k different places. Ties in score go to the earlier grid index, so picks are
deterministic.
"""

from __future__ import annotations

import numpy as np

__all__ = ["select_regions"]


def select_regions(centres: np.ndarray, scores: np.ndarray, k: int, min_distance: float) -> list[int]:
    """Indices into `centres`/`scores` of up to `k` picks, best first, pairwise at least `min_distance` apart.

    Args:
        centres: `(n, 2)` level-0 (x, y) centres.
        scores: `(n,)` scores; NaN (not scored) is never picked.
        k: how many to pick.
        min_distance: least Euclidean distance between two picks' centres (level-0 pixels); 0 disables it.
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if centres.shape[0] != scores.shape[0]:
        raise ValueError(f"{centres.shape[0]} centres but {scores.shape[0]} scores")
    order = np.lexsort((np.arange(len(scores)), -np.nan_to_num(scores, nan=-np.inf)))
    ranked = [int(i) for i in order if np.isfinite(scores[i])]
    picks: list[int] = []
    limit = float(min_distance) ** 2
    for i in ranked:
        if len(picks) >= k:
            break
        if picks:
            d2 = ((centres[picks] - centres[i]) ** 2).sum(axis=1)
            if bool((d2 < limit).any()):
                continue
        picks.append(i)
    return picks
