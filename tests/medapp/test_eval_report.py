"""What a reviewer reads: bar lengths in the chart, published numbers beside ours with the difference."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from medapp.eval import chart
from medapp.eval.published import published_for
from medapp.eval.report import _published_rows
from medapp.eval.scoring import ScoreResult


def test_chart_bars_are_proportional(tmp_path: Path) -> None:
    groups = {"CT": {"n_closed": 4, "n_open": 2, "closed_accuracy": 1.0, "open_recall": 0.5},
              "MRI": {"n_closed": 0, "n_open": 3, "closed_accuracy": None, "open_recall": 0.25}}
    path = chart.render_category_chart("modality", groups, tmp_path / "c.png")
    with Image.open(path) as im:
        px = im.convert("RGB").load()
        x0, w = chart._MARGIN + chart._LABEL_W, chart._BAR_W
        closed_y = 56 + 4 + chart._BAR_H // 2  # first row, first bar
        open_y = closed_y + chart._BAR_H + 2
        blue, orange = chart.SERIES[0][2], chart.SERIES[1][2]
        assert px[x0 + int(0.95 * w), closed_y] == blue  # 100 % reaches the end
        assert px[x0 + int(0.45 * w), open_y] == orange and px[x0 + int(0.6 * w), open_y] != orange  # 50 %
        mri_open_y = open_y + chart._ROW_H
        assert px[x0 + int(0.2 * w), mri_open_y] == orange and px[x0 + int(0.3 * w), mri_open_y] != orange


def _result(rule: str, **totals: float) -> ScoreResult:
    return ScoreResult("path-vqa", rule, 10, 0, 0, {"n": 10, **totals}, {}, [])


def test_published_rows_difference_in_both_rules() -> None:
    scores = {"strict": _result("strict", all_f1=0.60, closed_accuracy=0.90),
              "llava-med": _result("llava-med", all_f1=0.65, closed_accuracy=0.95)}
    rows = _published_rows("path-vqa", "v2", scores)
    assert [(r["model"], r["field"], r["published"]) for r in rows] == [("Dragonfly-Med v2", "all_f1", 0.671)]
    assert rows[0]["difference"]["strict"] == pytest.approx(-0.071)
    assert rows[0]["difference"]["llava-med"] == pytest.approx(-0.021)
    v1 = _published_rows("path-vqa", "v1", scores)
    assert [(r["field"], r["difference"]["strict"]) for r in v1] == [("closed_accuracy", pytest.approx(-0.023))]
    assert published_for("vqa-rad") == []
