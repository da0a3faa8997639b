"""The install is reproducible: requirements/medapp.lock follows pyproject.toml, and the suite runs on the lock.

`./run.sh test` installs from the lock; these checks fail when a dependency was added without refreshing the lock,
or when the environment the tests run in is not the locked one (a hand-installed upgrade, a stale venv), which is
exactly how "CI green on an old environment, a clean install broken" happened before.
`./run.sh test-latest` deliberately runs other versions and does not run this file.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "medapp.lock"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", re.MULTILINE)


def _locked() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in _PIN.findall(LOCK.read_text())}


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["test"], *extras["cluster"]]]


def test_every_declared_dependency_is_locked_within_its_range() -> None:
    locked = _locked()
    for req in _declared():
        name = canonicalize_name(req.name)
        if name == "torch":
            assert name not in locked, "torch stays out of the lock: its build (CPU or CUDA) depends on the machine"
            continue
        assert name in locked, f"{req.name} is in pyproject.toml but not in the lock: run ./run.sh lock"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"the lock pins {req.name}=={locked[name]}, outside pyproject's {req.specifier}: run ./run.sh lock"
        )


def test_every_locked_package_has_hashes_and_no_cuda_build() -> None:
    text = LOCK.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[-1]):
        if _PIN.match(block):
            assert "--hash=sha256:" in block, f"no hash for {block.splitlines()[0]}"
    names = _locked()
    assert not [n for n in names if n.startswith("nvidia-") or n == "triton"], "CUDA packages crept into the lock"


def test_the_suite_runs_on_the_locked_versions() -> None:
    drift = []
    for name, version in _locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift.append(f"{name}: locked {version}, not installed")
            continue
        if installed != version:
            drift.append(f"{name}: locked {version}, installed {installed}")
    assert not drift, "the environment is not the locked one (run ./run.sh test):\n" + "\n".join(drift)
    assert metadata.version("torch").split("+")[0] == "2.13.0"
