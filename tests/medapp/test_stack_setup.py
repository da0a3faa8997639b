"""The starting window of a newly opened stack (`medapp.stack_setup`): a CT without a stored window opens at soft
tissue (W 400 L 40), not at its full air-to-bone range; the file's own window still wins; non-HU data keeps the
automatic window."""

from __future__ import annotations

import numpy as np
import pytest

from medapp.documents import open_document
from medapp.stack_setup import CT_DEFAULT_LABEL, ct_default_window, prepare_stack


def test_rule_applies_to_hu_ct_only():
    soft = ct_default_window("CT", (-1024.0, 1500.0))
    assert soft is not None and (soft.center, soft.width) == (40.0, 400.0)
    assert ct_default_window("ct", (-1000.0, 300.0)) is not None, "modality is compared case-insensitively"
    assert ct_default_window("MR", (-1024.0, 1500.0)) is None, "HU windows mean nothing for MR"
    assert ct_default_window(None, (-1024.0, 1500.0)) is None
    assert ct_default_window("CT", (0.0, 4095.0)) is None, "stored values without rescale are not HU"
    assert ct_default_window("CT", (-1024.0, -900.0)) is None, "nothing but air: soft tissue would be black"
    assert ct_default_window("CT", None) is None


def test_ct_without_window_opens_at_soft_tissue(tmp_path, synthetic_ct_series):
    files = synthetic_ct_series(tmp_path / "ct", n=1, size=32, window=None)  # no WindowCenter / WindowWidth
    stack = open_document(files[0])
    assert stack.default_window is None
    setup = prepare_stack(stack)
    assert setup.label == CT_DEFAULT_LABEL == "soft tissue"
    assert (setup.window.center, setup.window.width) == (40.0, 400.0)
    assert stack.auto_window().width > 1000, "the full-range window the rule replaces"


def test_file_window_still_wins(tmp_path, synthetic_ct_series):
    files = synthetic_ct_series(tmp_path / "ct", n=1, size=32, window=(-600.0, 1500.0))
    setup = prepare_stack(open_document(files[0]))
    assert setup.label == "file" and (setup.window.center, setup.window.width) == (-600.0, 1500.0)


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_other_data_keeps_the_automatic_window(tmp_path, ct_dataset, modality):
    pixels = (np.arange(32 * 32).reshape(32, 32) % 2000).astype(np.int16)  # 0..1999, no air: not HU
    ds = ct_dataset(pixels, window=None, intercept=0.0, Modality=modality)
    path = tmp_path / "image.dcm"
    ds.save_as(path, enforce_file_format=True)
    setup = prepare_stack(open_document(path))
    assert setup.label == "auto"
