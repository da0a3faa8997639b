"""What the PACS parts of the window share: the settings and audit log they use, the node list, the cache folder.

Kept apart so the browser, the node dialog and the store button (one module each) need not import each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["default_cache_dir", "settings_of", "audit_of", "nodes_of", "OK_STYLE", "ERROR_STYLE"]

OK_STYLE = "color:#1b7f3b;"
ERROR_STYLE = "color:#b00020;"


def default_cache_dir() -> Path:
    """Where the window retrieves studies: beside the session and the audit log (MEDAPP_HOME moves it)."""
    from medapp import paths

    return paths.data_dir() / "pacs-cache"


def settings_of(ctx: Any) -> Any:
    """The context's settings, else the user's file, else defaults (tests and a damaged file still get a dialog)."""
    settings = getattr(ctx, "settings", None)
    if settings is not None:
        return settings
    from medapp.errors import UserError
    from medapp.settings import Settings

    try:
        return Settings.load()
    except UserError:
        return Settings()


def audit_of(ctx: Any) -> Any:
    return getattr(ctx, "audit", None)


def nodes_of(settings: Any) -> list[Any]:
    from medapp.pacs.config import configured_nodes

    return configured_nodes(settings)
