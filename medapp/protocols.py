"""What the jobs in `medapp.jobs` need from their collaborators, as Protocols instead of `Any`.

Why Protocols and not the concrete classes: the jobs must stay importable without torch (the engine class lives in
`models.engine` and loads torch with its model), tests and the window pass stand-ins (a fake engine, an audit log
that fails on purpose), and a Protocol states exactly which methods a job calls — so a change to the engine, the
audit log or the settings that would break a job shows up in a type checker, not at run time on a clinician's
machine. The real implementations are `models.engine.DragonflyEngine`, `medapp.audit.AuditLog`,
`medapp.settings.Settings` and `reports.captions.CaptionWriter`; tests check that they satisfy these Protocols.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from medapp.settings import GenerationLimits

__all__ = ["AuditSink", "CaptionSink", "Engine", "EngineInfoLike", "GenerationLike", "GenerationSettings"]


@runtime_checkable
class EngineInfoLike(Protocol):
    """The facts about the loaded model that provenance and the audit log record."""

    @property
    def model_id(self) -> str: ...

    @property
    def checkpoint_sha256(self) -> str | None: ...


@runtime_checkable
class GenerationLike(Protocol):
    """One answer of the engine: text, generated token ids and why it stopped ("eos", "max_new_tokens", "cancelled")."""

    @property
    def text(self) -> str: ...

    @property
    def token_ids(self) -> Sequence[int]: ...

    @property
    def stop_reason(self) -> str: ...


@runtime_checkable
class Engine(Protocol):
    """The model as the jobs use it (`models.engine.DragonflyEngine`)."""

    @property
    def info(self) -> EngineInfoLike: ...

    def generate(
        self,
        image: Any,
        turns: Sequence[Sequence[str]] | None,
        question: str,
        *,
        max_new_tokens: int = ...,
        do_sample: bool = ...,
        temperature: float = ...,
        top_p: float = ...,
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        timings: Any = None,
    ) -> GenerationLike: ...

    def caption_batch(
        self,
        images: Sequence[Any],
        prompt: str,
        *,
        max_new_tokens: int = ...,
        batch_size: int = ...,
        cancel: threading.Event | None = None,
    ) -> Sequence[GenerationLike]: ...


@runtime_checkable
class AuditSink(Protocol):
    """Where the jobs record what the model was used for (`medapp.audit.AuditLog`); hashes, never pixels or PHI."""

    def record(
        self,
        event: str,
        *,
        inputs: Sequence[str] = (),
        model_sha256: str | None = None,
        question: str | None = None,
        **details: Any,
    ) -> Any: ...


@runtime_checkable
class GenerationSettings(Protocol):
    """The part of `medapp.settings.Settings` a job reads: the generation limits the user chose."""

    def generation(self) -> GenerationLimits: ...


@runtime_checkable
class CaptionSink(Protocol):
    """Where `caption_batch` writes its rows and learns what a resumed run already did
    (`reports.captions.CaptionWriter`)."""

    def done_keys(self, *, include_errors: bool = False) -> set[tuple[str, str]]: ...

    def add(
        self,
        file: str | os.PathLike[str],
        caption: str = "",
        *,
        region: Any = None,
        model: str = "",
        error: str = "",
        input_sha256: str = "",
    ) -> Any: ...
