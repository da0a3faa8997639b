"""The three model jobs, Qt-free: `ask`, `draft_report` and `caption_batch` (plus `export_report` / `sign_report`).

Each takes the engine (from `medapp.model_holder.ModelHolder.get()`), plain callbacks for streamed tokens or
progress, and a `threading.Event` to cancel; the window runs them on worker threads, the CLI in the foreground.
Importing this package is light: torch loads with the engine, not here.
"""

from medapp.jobs.ask import Answer, ask
from medapp.jobs.caption import CAPTION_PROMPT, CaptionItem, CaptionSummary, caption_batch, list_items
from medapp.jobs.export import export_report, sign_report
from medapp.jobs.progress import Progress
from medapp.jobs.report import draft_report, report_prompt

__all__ = [
    "ask",
    "Answer",
    "draft_report",
    "report_prompt",
    "caption_batch",
    "list_items",
    "CaptionItem",
    "CaptionSummary",
    "CAPTION_PROMPT",
    "Progress",
    "export_report",
    "sign_report",
]
