"""medapp: a desktop assistant for radiologists and pathologists around the Dragonfly-Med model.

Importing this package is cheap on purpose: it sets the Hugging Face offline variables and nothing else, so the CLI
and the window start fast and torch / transformers / Qt load only when a job needs them.
"""

from models import offline as _offline  # noqa: F401  (must run before any Hugging Face import)

__version__ = "0.1.0"
