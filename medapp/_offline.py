"""Force Hugging Face libraries offline before any of them is imported.

huggingface_hub and transformers read these variables once, at import time, so they must be set before the first
import anywhere in the process. medapp never downloads weights: real checkpoints come from a local folder or the
local Hugging Face cache. Telemetry is switched off for the same reason (nothing leaves the machine).
"""

import os

_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


def force_offline() -> None:
    """Set the offline variables unconditionally (a user's HF_HUB_OFFLINE=0 must not re-enable downloads)."""
    os.environ.update(_OFFLINE)


force_offline()
