"""Viewers: the DICOM / plain image viewer (ImageViewer) and the whole-slide viewer (SlideViewer).

Each viewer keeps its authoritative state in a small Qt-signalled state object (or plain attributes for the slide)
and publishes "what the model would see" to the window's AppContext through `model_input(use_region=True)`.
"""

from ui.viewer.image_viewer import ImageViewer
from ui.viewer.slide_viewer import SlideViewer
from ui.viewer.stack_state import StackState

__all__ = ["ImageViewer", "SlideViewer", "StackState"]
