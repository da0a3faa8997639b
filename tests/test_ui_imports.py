"""The window talks to the core only: no module in ui/ imports dicom_io, models or reports (docs/ARCHITECTURE.md).

AST-based, so imports inside functions, `from x import y` and `importlib.import_module("x")` with a literal all
count, and nothing is imported to check it (no Qt needed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("dicom_io", "models", "reports")


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def _violations(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename)
    return [
        f"{filename}:{line}: imports {name}"
        for line, name in _imported_modules(tree)
        if name.split(".")[0] in FORBIDDEN
    ]


UI_FILES = sorted((ROOT / "ui").rglob("*.py"))


def test_there_are_ui_modules_to_check() -> None:
    assert len(UI_FILES) > 10  # guards against a wrong ROOT making the real test vacuous


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_ui_imports_only_medapp(path: Path) -> None:
    assert _violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import dicom_io",
        "import models.engine as e",
        "def f():\n    from reports.errors import ReportError",
        "from dicom_io import Window",
        "import importlib\nimportlib.import_module('models.check')",
        "__import__('reports')",
    ],
)
def test_the_checker_sees_each_import_form(snippet: str) -> None:
    assert _violations(snippet, "x.py"), snippet


def test_the_checker_allows_medapp_and_lookalikes() -> None:
    assert _violations("import medapp.documents\nfrom medapp.reporting import Report\nimport models_extra", "x.py") == []
