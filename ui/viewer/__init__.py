"""Viewers: the DICOM / plain image viewer (ImageViewer) and the whole-slide viewer (SlideViewer).

Each viewer keeps its authoritative state in a small Qt-signalled state object and publishes "what the model would
see" to the window's AppContext as a ModelInput provider.
"""

from ui.viewer.image_viewer import ImageViewer
from ui.viewer.stack_state import StackState

__all__ = ["ImageViewer", "StackState"]
