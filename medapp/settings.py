"""Per-user settings: one JSON file, validated field by field.

Why a plain dataclass and a table of checks: every bad value must produce one sentence that names the setting, the
file and what is allowed, so a clinician (or the IT person) can fix the file by hand. The file lives in the
platform's user config folder (`medapp.paths.settings_path`, moved by ``MEDAPP_HOME``); a missing file means
defaults, and reading never writes. Unknown keys are errors rather than silently ignored, because a misspelt key
("max_new_token") would otherwise look like a setting that does not work.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from medapp import paths
from medapp.errors import UserError

__all__ = ["Settings", "GenerationLimits", "DEVICES", "QUANTS", "DTYPES"]

DEVICES = ("auto", "cpu", "cuda")
QUANTS = ("none", "4bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class GenerationLimits:
    """The knobs every model job passes to the engine. Greedy by default: the Dragonfly authors evaluate greedily,
    and a draft that changes from run to run is harder to review."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9

    def engine_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs


@dataclass
class Settings:
    """Everything the user can set. Field names are the JSON keys."""

    model_dir: str | None = None  # None: look in the Hugging Face cache (models.checkpoint.find_checkpoints)
    device: str = "auto"
    quant: str = "none"
    dtype: str = "auto"
    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    window_presets: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {"center", "width"}
    letterhead: str = ""
    clinician_name: str = ""
    batch_size: int = 4
    tissue_tiles: int = 4
    tissue_tile_px: int = 512
    audit_question_text: bool = False  # opt-in: store the question text in the audit log
    audit_file_names: bool = False  # opt-in: store input file base names in the audit log
    # DICOM network (medapp.pacs): our AE title, the port our storage SCP listens on during a C-MOVE, and the
    # PACS nodes the user configured — the only peers medapp ever connects to.
    pacs_ae_title: str = "MEDAPP"
    pacs_port: int = 11112
    pacs_listen_address: str = ""  # "" = the local address the PACS is routed through (not every interface)
    pacs_timeout: float = 30.0  # seconds, for connecting, association, every DIMSE message and the network
    pacs_nodes: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "ae_title", "host", "port", ...}]
    pacs_default_node: str = ""  # name of the node used without --node/--pacs; "" = the first one

    # -- loading and saving -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> Settings:
        """Read the settings file (defaults if it does not exist). Raises `UserError` naming the file and key."""
        path = Path(path) if path is not None else paths.settings_path()
        if not path.exists():
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read the settings file ({exc})") from exc
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{path}: the settings file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from exc
        if not isinstance(data, dict):
            raise UserError(f"{path}: the settings file must hold one JSON object, not {type(data).__name__}")
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | Path = "settings") -> Settings:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise UserError(f"{source}: unknown setting {key!r} (known settings: {', '.join(sorted(known))})")
        settings = cls(**dict(data))
        settings.validate(source)
        return settings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path | None = None, *, inputs: Iterable[str | Path] = ()) -> Path:
        """Validate, then write atomically (a crash mid-save leaves the previous file intact).

        `inputs` (the files open in the window) are never overwritten: a `path` that is one of them under any
        name (a link, `..`, a hard link) is refused (`medapp.outputs.OutputPathError`)."""
        path = Path(path) if path is not None else paths.settings_path()
        from medapp.outputs import check_output
        from reports.atomic import atomic_write_text

        self.validate(path)
        check_output(path, inputs, trees=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    def updated(self, **changes: Any) -> Settings:
        """A validated copy with `changes` applied (for the settings dialog and CLI flags)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise UserError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        new = replace(self, **changes)
        new.validate("settings")
        return new

    # -- validation -------------------------------------------------------------------------------------------
    def validate(self, source: str | Path = "settings") -> None:
        """Raise `UserError("<source>: setting 'x': <problem>")` for the first invalid field."""
        for f in fields(self):
            value = getattr(self, f.name)
            problem = _CHECKS[f.name](value)
            if problem:
                raise UserError(f"{source}: setting {f.name!r} {problem} (found {value!r})")

    # -- views used by the jobs -------------------------------------------------------------------------------
    def generation(self) -> GenerationLimits:
        return GenerationLimits(self.max_new_tokens, self.do_sample, float(self.temperature), float(self.top_p))

    def engine_dtype(self) -> str | None:
        """`None` lets the engine choose (float32 on CPU, the checkpoint dtype on CUDA)."""
        return None if self.dtype == "auto" else self.dtype


# -- field checks: each returns None when the value is fine, else the end of a sentence ----------------------------
def _choice(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _int_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be a whole number from {lo} to {hi}"
        return None

    return check


def _float_range(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (lo < v if lo_open else lo <= v) and v <= hi
        return None if ok else f"must be a number {'above' if lo_open else 'from'} {lo} {'and at most' if lo_open else 'to'} {hi}"

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _text(max_len: int) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, str) and len(v) <= max_len else f"must be text of at most {max_len} characters"


def _model_dir(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        return "must be a folder path or null (null: search the Hugging Face cache)"
    return None


def _presets(v: Any) -> str | None:
    if not isinstance(v, dict):
        return 'must be an object like {"ct-lung": {"center": -600, "width": 1500}}'
    for name, win in v.items():
        if not isinstance(win, dict) or set(win) != {"center", "width"}:
            return f'preset {name!r} must have exactly the keys "center" and "width"'
        c, w = win["center"], win["width"]
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in (c, w)):
            return f"preset {name!r} needs numeric center and width"
        if w < 1:
            return f"preset {name!r} needs a width of at least 1 (DICOM PS3.3 C.11.2.1.2)"
    return None


def _pacs_check(name: str, v: Any) -> str | None:
    """The AE title / host checks live with the node parser (medapp.pacs.nodes), so --pacs and the file agree."""
    from medapp.pacs import nodes

    return getattr(nodes, name)(v)


def _pacs_nodes(v: Any) -> str | None:
    from medapp.pacs.nodes import node_problem

    if not isinstance(v, list):
        return 'must be a list of nodes like [{"name": "pacs", "ae_title": "PACS", "host": "10.0.0.5", "port": 104}]'
    names: set[str] = set()
    for item in v:
        problem = node_problem(item)
        if problem:
            return problem
        if item["name"] in names:
            return f"has two nodes named {item['name']!r}"
        names.add(item["name"])
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "model_dir": _model_dir,
    "device": _choice(DEVICES),
    "quant": _choice(QUANTS),
    "dtype": _choice(DTYPES),
    "max_new_tokens": _int_range(1, 8192),
    "do_sample": _bool,
    "temperature": _float_range(0.0, 5.0, lo_open=True),
    "top_p": _float_range(0.0, 1.0, lo_open=True),
    "window_presets": _presets,
    "letterhead": _text(2000),
    "clinician_name": _text(200),
    "batch_size": _int_range(1, 64),
    "tissue_tiles": _int_range(0, 64),
    "tissue_tile_px": _int_range(64, 4096),
    "audit_question_text": _bool,
    "audit_file_names": _bool,
    "pacs_ae_title": lambda v: _pacs_check("check_ae_title", v),
    "pacs_port": _int_range(1, 65535),
    "pacs_listen_address": lambda v: None if v == "" else _pacs_check("check_host", v),
    "pacs_timeout": _float_range(0.0, 3600.0, lo_open=True),
    "pacs_nodes": lambda v: _pacs_nodes(v),
    "pacs_default_node": _text(64),
}
