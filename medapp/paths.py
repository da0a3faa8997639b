"""Where medapp keeps per-user files: settings, session autosave and the audit log.

One environment variable, ``MEDAPP_HOME``, moves all of them into one folder. Tests use it so they never touch the
real user's files, and portable installs (a USB stick, a shared reading-room account) use it to keep everything
together. Without it the platform's conventions apply through platformdirs (``~/.config/medapp`` and
``~/.local/share/medapp`` on Linux, ``%LOCALAPPDATA%\\medapp`` on Windows, ``~/Library/Application Support/medapp`` on
macOS).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "HOME_ENV", "config_dir", "data_dir", "settings_path", "session_dir", "audit_path", "audit_key_path",
    "audit_anchor_path",
]

HOME_ENV = "MEDAPP_HOME"
_APP = "medapp"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    """Folder of ``settings.json`` (not created here: reading settings must not write to disk)."""
    home = _home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_config_dir(_APP, appauthor=False))


def data_dir() -> Path:
    """Folder of the session autosave and the audit log."""
    home = _home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir(_APP, appauthor=False))


def settings_path() -> Path:
    return config_dir() / "settings.json"


def session_dir() -> Path:
    return data_dir() / "session"


def audit_path() -> Path:
    return data_dir() / "audit" / "audit.jsonl"


def audit_key_path() -> Path:
    """The per-installation HMAC key of the audit chain (0600), outside the audit folder (see `medapp.audit`)."""
    return data_dir() / "audit.key"


def audit_anchor_path() -> Path:
    """Entry count and head HMAC of the audit log, kept apart from the log so a cut end shows (`medapp.audit`)."""
    return data_dir() / "audit.anchor.json"
