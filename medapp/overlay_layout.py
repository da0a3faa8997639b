"""Where the viewer's corner text and orientation letters go, so that none of them overlap at any view size.

Why a Qt-free function: in a 2×2 layout a view is ~240 px wide, and the corner lines drawn at their natural width ran
into each other ("W 400 L 40 (file)" into "0.70×0.70 mm/px") and under the edge letters ("A" / "P"). The
arithmetic is rectangles in, rectangles out, so plain tests can assert "no two boxes intersect" for every width
from 200 to 1200 px; the painter (`ui.viewer.overlay.paint_overlay`) only measures text and draws where this says.

The rules, in order:

1. The orientation letters are patient-safety information: always placed, centred on their edge, never shortened.
2. Vertically, a corner block that would reach the letter on its side (or, without a letter, the opposite corner's
   block) loses its last lines, the least important ones (the caller lists each corner most important first). A
   lone corner is never cut by the rectangle's own size (the slide's scale-bar label is drawn in a 24-px strip).
3. Horizontally, two corners on the same row share the width: each gets at least half (minus a gap), the narrower
   one's unused part goes to the other; a line level with a letter stops a gap short of it. A line longer
   than its room is cut at the right with "…" (the start of a line is what identifies it: "W 400 L 40 (…", "CT
   Synthetic ax…"), but never inside a number ("W 1500 L…", not a level of "-6…"); a line with room for nothing
   (or only for part of a number) is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Box", "Placed", "OverlayLayout", "layout_overlay", "elide_right", "ELLIPSIS", "CORNERS", "EDGES"]

ELLIPSIS = "…"
CORNERS = ("tl", "tr", "bl", "br")
EDGES = ("left", "right", "top", "bottom")

Measure = Callable[[str], float]


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle (x right, y down), the extent of one line of text (ascent + descent high)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def intersects(self, other: Box, gap: float = 0.0, gap_y: float | None = None) -> bool:
        """True when the two overlap, or come closer than `gap` side by side (`gap_y` above one another, default
        `gap`); boxes that only touch do not intersect."""
        gy = gap if gap_y is None else gap_y
        return (self.x < other.right + gap and other.x < self.right + gap
                and self.y < other.bottom + gy and other.y < self.bottom + gy)


@dataclass(frozen=True)
class Placed:
    """One drawn string: `key` is its corner ("tl" …) or edge ("left" …); `text` possibly cut with "…"."""

    key: str
    text: str
    box: Box


@dataclass(frozen=True)
class OverlayLayout:
    lines: tuple[Placed, ...]  # corner lines, in drawing order
    markers: tuple[Placed, ...]  # orientation letters
    dropped: tuple[str, ...] = ()  # corner lines left out for lack of room
    elided: int = 0  # how many lines were cut with "…"

    def corner(self, key: str) -> list[Placed]:
        """The placed lines of one corner, top to bottom."""
        return sorted((p for p in self.lines if p.key == key), key=lambda p: p.box.y)

    def placed(self) -> tuple[Placed, ...]:
        return self.lines + self.markers

    def collisions(self, gap: float = 0.0, gap_y: float | None = None) -> list[tuple[Placed, Placed]]:
        """Pairs that overlap: any two boxes at all, or, between different corners / letters, closer than `gap`
        side by side or `gap_y` above one another (the lines of one corner are stacked on purpose; their shared
        backing plate is drawn around them)."""
        items = self.placed()
        found = []
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                same = a.key == b.key
                if a.box.intersects(b.box, 0.0 if same else gap, 0.0 if same else gap_y):
                    found.append((a, b))
        return found


def elide_right(text: str, limit: float, measure: Measure) -> str:
    """`text` if it fits in `limit`, else its longest start that fits with "…" after it, or "" if none does.

    A number is never cut: "W 1500 L -600" in too little room reads "W 1500 L…", not "W 1500 L -6…" (a level of
    -6 that is not the level)."""
    if measure(text) <= limit:
        return text
    lo, hi = 0, len(text) - 1  # the longest k with text[:k] + "…" fitting (k = 0: nothing worth showing)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid].rstrip() + ELLIPSIS) <= limit:
            lo = mid
        else:
            hi = mid - 1
    if 0 < lo < len(text) and not text[lo - 1].isspace() and not text[lo].isspace():
        start = text.rfind(" ", 0, lo) + 1  # the cut falls inside a word: one with a digit goes whole
        end = text.find(" ", lo)
        if any(c.isdigit() for c in text[start:end if end >= 0 else len(text)]):
            lo = start
    return text[:lo].rstrip() + ELLIPSIS if lo > 0 and text[:lo].strip() else ""


def _marker_boxes(width: float, height: float, markers: Mapping[str, str], measure: Measure, line_h: float,
                  margin: float, edge_margin: float) -> dict[str, tuple[str, Box]]:
    boxes: dict[str, tuple[str, Box]] = {}
    for edge in EDGES:
        text = markers.get(edge, "")
        if not text:
            continue
        w = measure(text)
        if edge == "left":
            box = Box(margin, (height - line_h) / 2, w, line_h)
        elif edge == "right":
            box = Box(width - margin - w, (height - line_h) / 2, w, line_h)
        elif edge == "top":
            box = Box((width - w) / 2, edge_margin, w, line_h)
        else:
            box = Box((width - w) / 2, height - edge_margin - line_h, w, line_h)
        boxes[edge] = (text, box)
    return boxes


def _fit_vertically(top: int, bottom: int, height: float, line_h: float, margin: float, gap: float,
                    marker: Box | None) -> tuple[int, int]:
    """How many lines the top and bottom corner of one side keep (rule 2)."""
    if marker is not None:
        while top and margin + top * line_h + gap > marker.y:
            top -= 1
        while bottom and height - margin - bottom * line_h - gap < marker.bottom:
            bottom -= 1
        return top, bottom
    while top and bottom and margin + top * line_h + gap > height - margin - bottom * line_h:
        if top > bottom:
            top -= 1
        else:  # a tie costs the bottom corner its last line (zoom, ROI, thickness: read least often)
            bottom -= 1
    return top, bottom


def _share_width(left: float, right: float, avail: float, gap: float) -> tuple[float, float]:
    """The room of the left and right corner of one row (rule 3), from their widest lines."""
    if not left or not right or left + gap + right <= avail:
        return avail, avail
    half = (avail - gap) / 2
    if left <= half:
        return left, avail - gap - left
    if right <= half:
        return avail - gap - right, right
    return half, half


def layout_overlay(
    width: float,
    height: float,
    corners: Mapping[str, Sequence[str]],
    markers: Mapping[str, str] | None = None,
    *,
    measure: Measure,
    line_height: float,
    marker_measure: Measure | None = None,
    marker_height: float | None = None,
    ink_top: float = 0.0,
    margin: float = 6.0,
    marker_margin: float = 3.0,
    gap: float = 8.0,
    gap_y: float = 3.0,
    origin: tuple[float, float] = (0.0, 0.0),
) -> OverlayLayout:
    """Place `corners` ("tl", "tr", "bl", "br" → lines, most important first) and `markers` ("left", "right",
    "top", "bottom" → letters) in a `width` × `height` rectangle at `origin`.

    `measure` gives a corner line's width and `line_height` its pitch (the painter's QFontMetricsF
    `horizontalAdvance` and `height`); `ink_top` is the empty top of a line (above the capitals: ascent − cap
    height − halo), left out of its box. The letters (capitals, no descenders) use `marker_measure` and
    `marker_height` (cap height + halo of their larger bold font); top and bottom ones sit `marker_margin` from
    their edge, so that they are level with one corner line only. `gap` (side by side) and `gap_y` (above one
    another) are the least distances kept between boxes of different corners and letters: room for the corner's
    backing plate and the one-pixel halo.
    """
    marker_measure = marker_measure or measure
    marker_h = line_height if marker_height is None else marker_height
    mk = _marker_boxes(width, height, markers or {}, marker_measure, marker_h, margin, marker_margin)
    lines = {c: [t for t in corners.get(c, ()) if t] for c in CORNERS}
    keep: dict[str, int] = {}
    for top, bottom, edge in (("tl", "bl", "left"), ("tr", "br", "right")):
        marker = mk[edge][1] if edge in mk else None
        keep[top], keep[bottom] = _fit_vertically(len(lines[top]), len(lines[bottom]), height, line_height, margin,
                                                  gap_y, marker)
    dropped = [t for c in CORNERS for t in lines[c][keep[c]:]]
    avail = width - 2 * margin
    room: dict[str, float] = {}
    for left, right in (("tl", "tr"), ("bl", "br")):
        widest = [max((measure(t) for t in lines[c][:keep[c]]), default=0.0) for c in (left, right)]
        room[left], room[right] = _share_width(widest[0], widest[1], avail, gap)

    placed: list[Placed] = []
    elided = 0
    for corner in CORNERS:
        is_left, is_top = corner[1] == "l", corner[0] == "t"
        kept = lines[corner][:keep[corner]]
        ordered = kept if is_top else list(reversed(kept))  # bottom corners fill upwards from the edge
        row: list[Placed] = []
        for text in ordered:
            k = len(row)
            y = margin + k * line_height if is_top else height - margin - (k + 1) * line_height
            limit = room[corner]
            for _, letter in mk.values():  # a letter level with this line: stop a gap short of it
                if y + ink_top < letter.bottom + gap_y and letter.y < y + line_height + gap_y:
                    limit = min(limit, letter.x - gap - margin if is_left else width - margin - letter.right - gap)
            shown = elide_right(text, limit, measure)
            if not shown:
                dropped.append(text)
                continue
            elided += shown != text
            w = measure(shown)
            x = margin if is_left else width - margin - w
            row.append(Placed(corner, shown, Box(origin[0] + x, origin[1] + y + ink_top, w, line_height - ink_top)))
        placed.extend(row if is_top else reversed(row))
    ox, oy = origin
    letters = tuple(Placed(edge, text, Box(ox + b.x, oy + b.y, b.w, b.h)) for edge, (text, b) in mk.items())
    return OverlayLayout(tuple(placed), letters, tuple(dropped), elided)
