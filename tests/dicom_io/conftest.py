"""Helpers for dicom_io tests: synthetic DICOM written with pydicom (never a copied fixture).

The builder itself is shared (tests/builders.py through the root conftest's `synthetic_ct_series`, `ct_dataset` and
`ct_phantom` fixtures); this file only gives the series a fresh folder per test, written in shuffled order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def ct_series(tmp_path: Path, synthetic_ct_series) -> Callable[..., Path]:
    """Write a CT series into a fresh folder: `ct_series(zs=[...], sizes=None, folder="series", **kw) -> folder`.

    Files are written in shuffled order under shuffled names (nothing may rely on file order); slice k holds the
    phantom + k, 32 pixels square unless `sizes` says otherwise.
    """

    def write(zs: list[float], sizes: list[int] | None = None, folder: str = "series", **kw: object) -> Path:
        out = tmp_path / folder
        out.mkdir()
        synthetic_ct_series(out, zs, size=32, sizes=sizes, shuffle=True, **kw)
        return out

    return write
