"""Force Hugging Face libraries offline before any of them is imported: the one place these variables are set.

huggingface_hub and transformers read these variables once, at import time, so they must be set before the first
import anywhere in the process. medapp never downloads weights: real checkpoints come from a local folder or the
local Hugging Face cache. Telemetry is switched off for the same reason (nothing leaves the machine).

It lives in `models` because `models` is the package that imports Hugging Face code and may not import medapp;
`import models` and `import medapp` (which imports this module) both run it.
"""

import os

__all__ = ["OFFLINE_VARIABLES", "force_offline"]

OFFLINE_VARIABLES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


def force_offline() -> None:
    """Set the offline variables unconditionally (a user's HF_HUB_OFFLINE=0 must not re-enable downloads)."""
    os.environ.update(OFFLINE_VARIABLES)


force_offline()
