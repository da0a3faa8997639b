"""What is open and on screen, as one Qt-free evented model: `ViewerState`.

Why one model: "what is on screen" used to exist in four shapes (the core's `ViewState`, the session's
`ViewSnapshot`, the viewer's QObject `StackState` and the panels' `ModelInput`), converted into each other by hand
in the main window. Now there is this object; the others are derived from it:

- `to_view()` gives the frozen `medapp.view.ViewState` that `render_view` / `medapp render` reproduce pixels from;
- `snapshot()` / `restore()` are what the session saves and brings back (`medapp.session.ViewSnapshot`);
- the CLI and jobs can build one (`ViewerState.for_path`) and render it without a screen;
- widgets take it in their constructor, subscribe to `state.events.<field>` and write user input back through
  the methods below (napari's Dims / QtDims split). No sibling widget is ever told directly.

Events come from psygnal's evented dataclass: setting a field to a different value emits
`state.events.<field>(new, old)` synchronously on the caller's thread (the window only changes it on the UI
thread). `document` and `report` compare by identity (two opened files are never "equal"). Opening a document
resets frame, window and region first, silently, and then emits `document` once: a subscriber to `document`
re-reads everything, so it never sees the new file with the old file's frame.

Coordinates are the core's (`medapp.view`): `region` is (x, y, w, h) in image pixels of the frame, or in level-0
pixels for whole-slide images.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psygnal import evented

if TYPE_CHECKING:
    from psygnal import SignalGroup

from medapp.stack_setup import StackSetup, prepare_stack

__all__ = ["ViewerState"]

_EMPTY_SETUP = StackSetup(colour=False, choices=[], window=None, label="", value_range=None)


@evented(equality_operators={"document": operator.is_, "report": operator.is_, "setup": operator.is_})
@dataclass(eq=False)
class ViewerState:
    """The document on screen and how it is shown. Every field is evented (`state.events.frame` ...)."""

    if TYPE_CHECKING:  # added by psygnal's @evented: one SignalInstance per field

        @property
        def events(self) -> SignalGroup: ...

    document: Any = None  # a dicom_io ImageStack or Slide (medapp.documents.open_document), or None
    setup: StackSetup = _EMPTY_SETUP  # colour / window choices / starting window of a stack (prepare_stack)
    frame: int = 0
    window: Any = None  # dicom_io.Window shown (None: colour image, slide, or nothing open)
    window_label: str = ""  # "file", "auto", "custom", "saved" or a preset name (shown in the overlay)
    region: tuple[int, int, int, int] | None = None  # the drawn region the model sees, or None
    level: int | None = None  # slides: a fixed pyramid level for the model input (None: follow the screen)
    visible: tuple[int, int, int, int] | None = None  # slides: the part on screen (level-0 px)
    downsample: float | None = None  # slides: level-0 px per screen px (the screen's resolution)
    magnification: float | None = None  # slides: objective-equivalent magnification on screen
    show_overlay: bool = True
    show_phi: bool = False
    # display transform (reading aids; the model input ignores them, see medapp.model_input): grey images shown
    # inverted; the image mirrored (flip_h / flip_v) and then rotated clockwise by `rotation` (0/90/180/270)
    invert: bool = False
    rotation: int = 0
    flip_h: bool = False
    flip_v: bool = False
    report: Any = None  # the active reports.Report draft (the report panel edits it)

    # --- what is open ------------------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return Path(self.document.path) if self.document is not None else None

    @property
    def kind(self) -> str:
        """"dicom" | "series" | "image" | "slide", or "" when nothing is open."""
        return str(getattr(self.document, "kind", "") or "") if self.document is not None else ""

    @property
    def is_slide(self) -> bool:
        return self.kind == "slide"

    @property
    def stack(self) -> Any:
        """The ImageStack on screen, or None (nothing open, or a slide)."""
        return None if self.document is None or self.is_slide else self.document

    @property
    def slide(self) -> Any:
        return self.document if self.is_slide else None

    @property
    def n_frames(self) -> int:
        stack = self.stack
        return int(getattr(stack, "n_frames", 0) or 0) if stack is not None else 0

    @property
    def modality(self) -> str | None:
        if self.document is None:
            return None
        value = (getattr(self.document, "metadata", None) or {}).get("modality")
        return str(value) if value else None

    @property
    def colour(self) -> bool:
        return self.setup.colour

    @property
    def choices(self) -> list[Any]:
        return list(self.setup.choices)

    @property
    def value_range(self) -> tuple[float, float] | None:
        return self.setup.value_range

    @property
    def default_window(self) -> Any:
        return self.setup.window

    def open(self, document: Any, setup: StackSetup | None = None) -> None:
        """Show `document` (ImageStack, Slide or None) at frame 0, no region, with its starting window.

        `setup` comes from `prepare_stack()` run in the worker that opened the file (it decodes frame 0); it is
        computed here when missing. Emits `document` once, after everything else is reset.
        """
        if document is not None and setup is None and getattr(document, "kind", "") != "slide":
            setup = prepare_stack(document)
        setup = setup or _EMPTY_SETUP
        with self.events.blocked():
            self.setup = setup
            self.frame = 0
            self.window, self.window_label = setup.window, setup.label
            self.region = None
            self.level = self.visible = self.downsample = self.magnification = None
            self.invert, self.rotation, self.flip_h, self.flip_v = False, 0, False, False
        if document is self.document:
            self.events.document.emit(document, document)  # the same file again: still a fresh start
        else:
            self.document = document

    # --- user input ----------------------------------------------------------------------------------------------
    def set_frame(self, frame: int) -> None:
        """Go to `frame`, clamped to the stack (ignored without a stack)."""
        if self.stack is None:
            return
        self.frame = max(0, min(self.n_frames - 1, int(frame)))

    def set_window(self, window: Any, label: str = "custom") -> None:
        """Show `window` (a dicom_io.Window) named `label`; ignored for colour images, slides and None."""
        if self.stack is None or self.colour or window is None:
            return
        if float(window.width) < 1e-6:
            from medapp.documents import make_window

            window = make_window(float(window.center), 1e-6, window.function)
        self.window_label = label  # first, so a `window` subscriber reads the new label
        self.window = window

    def apply_preset(self, number: int) -> bool:
        """Number key `number` (1-based). False when no such preset exists (the key is then ignored)."""
        if 1 <= number <= len(self.setup.choices):
            choice = self.setup.choices[number - 1]
            self.set_window(choice.window, choice.label)
            return True
        return False

    def apply_preset_named(self, name: str) -> bool:
        """The window choice labelled `name` ("ct-lung", "file" ...); False when there is none."""
        for number, choice in enumerate(self.setup.choices, start=1):
            if choice.label == name:
                return self.apply_preset(number)
        return False

    def reset_window(self) -> None:
        if self.setup.window is not None:
            self.set_window(self.setup.window, self.setup.label)

    def set_region(self, region: tuple[float, float, float, float] | None) -> None:
        """Draw (or with None clear) the region the model sees, clipped to the image (slide level 0); a region
        smaller than 2 x 2 pixels after clipping is no region."""
        if region is not None and self.document is not None:
            width, height = self._full_size()
            x, y, w, h = (int(round(v)) for v in region)
            x0, y0 = max(0, min(x, x + w)), max(0, min(y, y + h))
            x1, y1 = min(width, max(x, x + w)), min(height, max(y, y + h))
            region = (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 2 and y1 - y0 >= 2 else None
        elif region is not None:
            region = None
        self.region = region  # type: ignore[assignment]

    def set_overlay(self, *, show: bool | None = None, phi: bool | None = None) -> None:
        if show is not None:
            self.show_overlay = bool(show)
        if phi is not None:
            self.show_phi = bool(phi)

    # --- display transform (Weasis / QuPath habits) ------------------------------------------------------------
    def set_invert(self, on: bool) -> None:
        """Show a grey image inverted (black ↔ white); ignored for colour images and slides."""
        if self.stack is None or self.colour:
            return
        self.invert = bool(on)

    def rotate(self, degrees: int = 90) -> None:
        """Turn what is on screen clockwise by `degrees` (a multiple of 90; negative = counter-clockwise)."""
        if self.stack is None:
            return
        self.rotation = (self.rotation + int(round(degrees / 90.0)) * 90) % 360

    def flip_horizontal(self) -> None:
        """Mirror what is on screen left ↔ right. In the (mirror, then rotate) normal form a screen mirror of a
        rotated image is the mirror of the image with the opposite rotation."""
        if self.stack is None:
            return
        self.rotation = (-self.rotation) % 360  # first: a `flip_h` subscriber reads the final transform
        self.flip_h = not self.flip_h

    def flip_vertical(self) -> None:
        """Mirror what is on screen top ↔ bottom."""
        if self.stack is None:
            return
        self.rotation = (-self.rotation) % 360  # first: a `flip_v` subscriber reads the final transform
        self.flip_v = not self.flip_v

    def set_transform(self, *, rotation: int = 0, flip_h: bool = False, flip_v: bool = False) -> None:
        """Set the geometric transform at once (session restore); a rotation that is not a multiple of 90 is
        rounded to one."""
        if self.stack is None:
            return
        self.flip_h, self.flip_v = bool(flip_h), bool(flip_v)
        self.rotation = (int(round(int(rotation) / 90.0)) * 90) % 360

    @property
    def transformed(self) -> bool:
        """True when the display differs from the file's own orientation and polarity."""
        return self.invert or self.rotation != 0 or self.flip_h or self.flip_v

    def reset_display(self) -> None:
        """The one-key reset: the file's window, no inversion, no rotation, no flip (the viewer also fits)."""
        if self.stack is None:
            return
        self.set_invert(False)
        self.set_transform()
        self.reset_window()

    def _full_size(self) -> tuple[int, int]:
        if self.is_slide:
            w, h = self.document.level_dimensions[0]
            return int(w), int(h)
        w, h = self.document.size
        return int(w), int(h)

    # --- derived shapes ------------------------------------------------------------------------------------------
    def window_values(self) -> tuple[float, float] | None:
        """The shown window as plain (center, width), or None."""
        if self.window is None:
            return None
        return float(self.window.center), float(self.window.width)

    def to_view(self, *, use_region: bool = True) -> Any:
        """The frozen `medapp.view.ViewState` that `render_view` turns into exactly the pixels the model gets.

        For a slide without a drawn region the visible part is the region, read at the level the screen implies
        (`medapp.view.model_level`); `use_region=False` ignores the drawn region (the chat's "whole
        view"). None when nothing is open.
        """
        from medapp.view import ViewState

        path = self.path
        if path is None:
            return None
        region = self.region if use_region else None
        if self.is_slide:
            region = region or self.visible
            level = self.level
            if level is None and region is not None and self.downsample is not None:
                from medapp.view import model_level

                level = model_level(self.document, region, self.downsample)
            return ViewState(path, region=region, level=level)
        return ViewState(path, frame=self.frame, window=self.window_values(), region=region)

    def snapshot(self) -> Any:
        """What the session keeps for this document (`medapp.session.ViewSnapshot`): frame, region, window and the
        display transform."""
        from medapp.session import ViewSnapshot

        window = None if self.is_slide else self.window_values()
        return ViewSnapshot(
            frame=0 if self.is_slide else int(self.frame),
            region=list(self.region) if self.region else None,
            window=list(window) if window else None,
            invert=bool(self.invert),
            rotation=int(self.rotation),
            flip_h=bool(self.flip_h),
            flip_v=bool(self.flip_v),
        )

    def restore(self, snapshot: Any) -> None:
        """Bring back a saved frame, window (or preset) and region (reopening a file; crash recovery)."""
        if snapshot is None or self.document is None:
            return
        if self.stack is not None:
            self.set_frame(int(snapshot.frame or 0))
            if snapshot.window:
                from medapp.documents import make_window

                window = make_window(snapshot.window[0], snapshot.window[1])
                self.set_window(window, self._name_of(window))
            elif snapshot.preset:
                self.apply_preset_named(snapshot.preset)
            self.set_invert(bool(getattr(snapshot, "invert", False)))
            self.set_transform(rotation=int(getattr(snapshot, "rotation", 0) or 0),
                               flip_h=bool(getattr(snapshot, "flip_h", False)),
                               flip_v=bool(getattr(snapshot, "flip_v", False)))
        self.set_region(tuple(snapshot.region) if snapshot.region else None)

    def _name_of(self, window: Any) -> str:
        """The name a restored window is shown with: the opening default's or a preset's when the values are theirs
        (the overlay said "(saved)" for a lung window kept across a restart), else "saved"."""
        named = [(self.setup.window, self.setup.label)] + [(c.window, c.label) for c in self.setup.choices]
        for candidate, label in named:
            if candidate is not None and label and (float(candidate.center), float(candidate.width)) == (
                    float(window.center), float(window.width)):
                return str(label)
        return "saved"

    @classmethod
    def for_path(cls, path: str | Path) -> ViewerState:
        """A state showing `path` (opened through the core's cache), for the CLI, jobs and tests. A folder is
        shown as its first series, as the window and `render_view` do."""
        from medapp.view import open_cached

        document = open_cached(path)
        if hasattr(document, "patients"):  # a Collection
            from dicom_io import NoImagesError

            series = [s for s in document.series if s.n_images]
            if not series:
                raise NoImagesError(Path(path), "the folder holds no displayable series")
            document = series[0].open()
        state = cls()
        state.open(document)
        return state
