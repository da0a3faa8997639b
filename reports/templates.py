"""Report templates per modality, kept as data in ``templates.json``.

A template is the prompt that asks Dragonfly-Med for a report with headings, the sections (keys in ACR order, titles
as this modality's readers expect them: a pathologist reads "Diagnosis" where a radiologist reads "Impression") and
the heading aliases the parser accepts for each section. Keeping them as JSON lets a department edit wording without
touching code; :func:`load_templates` validates the file so a bad edit fails loudly with the file name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from reports.errors import ReportError
from reports.model import SECTION_KEYS

__all__ = ["TemplateSection", "ReportTemplate", "template_for", "load_templates", "templates", "GENERIC"]

GENERIC = "generic"
_REQUIRED_KEYS = ("findings", "impression")


@dataclass(frozen=True)
class TemplateSection:
    """A section slot: stable ``key``, printed ``title`` and the headings (lower case) that mean it."""

    key: str
    title: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportTemplate:
    """``name``, the model ``prompt`` and ordered ``sections``; ``modalities`` and ``exam`` are what selects and
    titles it."""

    name: str
    prompt: str
    sections: tuple[TemplateSection, ...]
    modalities: tuple[str, ...] = ()
    exam: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.sections)

    def title_of(self, key: str) -> str:
        for s in self.sections:
            if s.key == key:
                return s.title
        raise KeyError(key)


def _fail(source: str, msg: str) -> ReportError:
    return ReportError(f"{source}: {msg}")


def _parse(data: Any, source: str) -> dict[str, ReportTemplate]:
    if not isinstance(data, dict) or data.get("format") != "medapp.report-templates":
        raise _fail(source, "not a medapp report-templates file (format key missing or wrong)")
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(
        isinstance(v, list) and all(isinstance(a, str) and a.strip() for a in v) for v in aliases.values()
    ):
        raise _fail(source, "aliases must map a section key to a list of non-empty strings")
    out: dict[str, ReportTemplate] = {}
    raw_templates = data.get("templates")
    if not isinstance(raw_templates, list) or not raw_templates:
        raise _fail(source, "templates must be a non-empty list")
    for i, t in enumerate(raw_templates):
        where = f"templates[{i}]"
        if not isinstance(t, dict):
            raise _fail(source, f"{where} must be an object")
        name, prompt = t.get("name"), t.get("prompt")
        if not isinstance(name, str) or not name or not isinstance(prompt, str) or not prompt.strip():
            raise _fail(source, f"{where} needs a name and a non-empty prompt")
        secs = []
        seen: set[str] = set()
        for j, s in enumerate(t.get("sections") or []):
            if not isinstance(s, dict) or not isinstance(s.get("key"), str) or not isinstance(s.get("title"), str):
                raise _fail(source, f"{where}.sections[{j}] needs a key and a title")
            key = s["key"]
            if key in seen:
                raise _fail(source, f"{where}: section {key!r} appears twice")
            seen.add(key)
            names = [s["title"], *aliases.get(key, []), *s.get("aliases", [])]
            uniq = tuple(dict.fromkeys(a.strip().lower() for a in names if a.strip()))
            secs.append(TemplateSection(key, s["title"], uniq))
        owner: dict[str, str] = {}
        for sec in secs:
            for alias in sec.aliases:
                if owner.setdefault(alias, sec.key) != sec.key:
                    raise _fail(source, f"template {name!r}: heading {alias!r} means both {owner[alias]} and {sec.key}")
        missing = [k for k in _REQUIRED_KEYS if k not in seen]
        if missing:
            raise _fail(source, f"template {name!r} lacks section(s) {', '.join(missing)}")
        unknown = seen - set(SECTION_KEYS)
        if unknown:
            raise _fail(source, f"template {name!r}: unknown section key(s) {', '.join(sorted(unknown))}")
        mods = tuple(str(m).upper() for m in t.get("modalities") or [])
        if name in out:
            raise _fail(source, f"template {name!r} defined twice")
        out[name] = ReportTemplate(name, prompt.strip(), tuple(secs), mods, str(t.get("exam") or ""))
    if GENERIC not in out:
        raise _fail(source, f"no {GENERIC!r} fallback template")
    return out


def load_templates(path: str | Path | None = None) -> dict[str, ReportTemplate]:
    """Read and validate a templates file (default: the one shipped in the package), by name."""
    if path is None:
        return dict(_builtin())
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(source, f"cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise _fail(source, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    return _parse(data, source)


@lru_cache(maxsize=1)
def _builtin() -> dict[str, ReportTemplate]:
    ref = resources.files("reports").joinpath("templates.json")
    return _parse(json.loads(ref.read_text(encoding="utf-8")), "reports/templates.json")


def templates() -> dict[str, ReportTemplate]:
    """The built-in templates by name."""
    return dict(_builtin())


def template_for(modality: str | None, *, library: dict[str, ReportTemplate] | None = None) -> ReportTemplate:
    """The template for a DICOM modality code (``CR``, ``DX``, ``CT``, ``MR``, ``US``, ``SM``) or a word such as
    ``"slide"``/``"pathology"``; a template name also works. Anything else gets the generic template."""
    lib = library if library is not None else _builtin()
    key = (modality or "").strip()
    if key in lib:
        return lib[key]
    upper = key.upper()
    for t in lib.values():
        if upper and upper in t.modalities:
            return t
    return lib[GENERIC]
