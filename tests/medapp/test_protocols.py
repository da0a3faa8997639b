"""The job boundaries' Protocols (medapp.protocols) are met by the real engine, audit log, settings and writer."""

from __future__ import annotations

import inspect
from pathlib import Path

from medapp.protocols import AuditSink, CaptionSink, Engine, EngineInfoLike, GenerationLike, GenerationSettings


def test_real_collaborators_satisfy_the_protocols(tiny_engine, tmp_path: Path) -> None:
    from medapp.audit import AuditLog
    from medapp.settings import Settings
    from reports.captions import CaptionWriter

    assert isinstance(tiny_engine, Engine) and isinstance(tiny_engine.info, EngineInfoLike)
    assert isinstance(AuditLog(tmp_path / "audit.jsonl"), AuditSink)
    assert isinstance(Settings(), GenerationSettings)
    with CaptionWriter(tmp_path / "c.csv") as writer:
        assert isinstance(writer, CaptionSink)
    generation = tiny_engine.caption_batch([_gray()], "Describe.", max_new_tokens=1, batch_size=1)[0]
    assert isinstance(generation, GenerationLike)


def test_protocol_keywords_exist_on_the_engine(tiny_engine) -> None:
    """runtime_checkable only checks names: the keyword arguments the jobs pass must exist too."""
    for name in ("generate", "caption_batch"):
        wanted = set(inspect.signature(getattr(Engine, name)).parameters) - {"self"}
        assert wanted <= set(inspect.signature(getattr(tiny_engine, name)).parameters), name


def test_a_stand_in_without_the_methods_is_not_an_engine() -> None:
    class NoEngine:
        info = None

    assert not isinstance(NoEngine(), Engine)


def _gray():
    from PIL import Image

    return Image.new("RGB", (64, 48), (120, 120, 120))
