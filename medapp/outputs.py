"""The one guard every writer of user files goes through: an output must never be an input or lie inside one.

Why: medapp's inputs are originals (a patient's images, a pathologist's slides). `medapp deid r/in/a.dcm r/in` once
replaced `a.dcm` with its de-identified copy, and `medapp deid w/in w` wrote a de-identified copy over another
original, because the old check compared the output *folder* with the input *file*. This module compares each
final output path with each input, per file and before anything is written, after resolving what makes two names
one file:

* symlinks and ``..`` (`os.path.realpath` of the absolute path), so ``out -> in/a.dcm`` or ``in/sub/../a.dcm`` is
  seen as ``in/a.dcm``;
* hard links and case-insensitive or bind-mounted names (same ``st_dev`` + ``st_ino``) for an output file that
  already exists, and for the output's existing ancestor folders against an input folder.

What is refused: an output that *is* an input file, and an output *inside* an input folder (the "input tree").
Inside the tree is refused even when the name is new: a re-run would read its own outputs as inputs (a second
de-identification of de-identified copies, a caption table captioned as an image) and a later name clash could
overwrite an original. Writing next to the inputs, in a different folder (even the input folder's parent), is
fine. Inputs that do not exist are ignored here; opening them fails with its own message.

`OutputPathError` is a `UserError`, so the command line prints it as one line and exits 2; the window shows it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medapp.errors import UserError

__all__ = ["OutputPathError", "InputSet", "check_output", "check_outputs"]


class OutputPathError(UserError):
    """An output path that would overwrite an input or write into an input folder. Names the output and why."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _real(path: str | os.PathLike[str]) -> Path:
    """The path with symlinks and ``..`` resolved (non-existing tails are kept as written)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(st_dev, st_ino) of an existing path (following symlinks), else None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


@dataclass(frozen=True)
class _Input:
    given: Path  # as the user wrote it, for the message
    real: Path
    identity: tuple[int, int]
    is_dir: bool


class InputSet:
    """The inputs of one run, resolved once (a folder input is its whole tree)."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        items: list[_Input] = []
        for p in paths:
            if p is None:
                continue
            identity = _identity(p)
            if identity is None:
                continue
            items.append(_Input(Path(p), _real(p), identity, os.path.isdir(p)))
        self._items = tuple(items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def problem(self, target: str | os.PathLike[str], *, trees: bool = True) -> str | None:
        """Why `target` must not be written, or None when it is safe with respect to these inputs.

        `trees=False` checks only that `target` is no input under another name (see `check_output`)."""
        real = _real(target)
        for item in self._items:
            if real == item.real:
                kind = "input folder" if item.is_dir else "input file"
                return f"is the {kind} {item.given} itself; originals are never overwritten, choose another output"
            if trees and item.is_dir and real.is_relative_to(item.real):
                return (f"is inside the input folder {item.given}; write outputs outside it (a re-run would read "
                        "them as inputs and could overwrite originals)")
        existing = _identity(target)
        if existing is not None:
            for item in self._items:
                if not item.is_dir and existing == item.identity:
                    return (f"is another name (a hard or symbolic link) of the input file {item.given}; originals "
                            "are never overwritten, choose another output")
            hit = self._hard_link_into_tree(target)  # a file *of* an input folder, so checked with trees=False too
            if hit is not None:
                return (f"is another name (a hard link) of {hit}, a file in the input folder; originals are never "
                        "overwritten, choose another output")
        folder = self._ancestor_in_tree(real) if trees else None
        if folder is not None:
            return (f"is inside the input folder {folder.given} (reached under another name); write outputs "
                    "outside it")
        return None

    def _ancestor_in_tree(self, real: Path) -> _Input | None:
        """An input folder that one of the output's existing ancestors *is* (same device + inode): catches a
        bind mount or a case-insensitive spelling that `realpath` does not unify."""
        trees = {item.identity: item for item in self._items if item.is_dir}
        if not trees:
            return None
        for folder in real.parents:
            identity = _identity(folder)
            if identity is not None and identity in trees:
                return trees[identity]
        return None

    def _hard_link_into_tree(self, target: str | os.PathLike[str]) -> Path | None:
        """A file in an input folder that `target` is a hard link of. Only an existing regular file with more than
        one link can be one, so the (costly) walk of the tree happens only then."""
        try:
            st = os.stat(target)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_nlink < 2:
            return None
        wanted = (st.st_dev, st.st_ino)
        for item in self._items:
            if not item.is_dir or item.identity[0] != st.st_dev:
                continue
            for dirpath, _dirs, files in os.walk(item.real):
                for name in files:
                    candidate = os.path.join(dirpath, name)
                    if _identity(candidate) == wanted:
                        return Path(candidate)
        return None


def check_output(
    target: str | os.PathLike[str],
    inputs: InputSet | Iterable[str | os.PathLike[str]],
    *,
    trees: bool = True,
) -> Path:
    """Raise `OutputPathError` if `target` is an input, an alias of one, or inside an input folder; else return it.

    Call it for every output of a run *before* the first byte is written (see `check_outputs`). `trees=False` is
    for the app's own state files (settings, session): they are neither re-read as inputs nor can they clobber an
    original by lying in a study folder (a portable install keeps them on the same stick as the studies it opens),
    so only "is this an input file under another name" is refused for them."""
    inputs = inputs if isinstance(inputs, InputSet) else InputSet(inputs)
    problem = inputs.problem(target, trees=trees)
    if problem is not None:
        raise OutputPathError(target, problem)
    return Path(target)


def check_outputs(
    targets: Iterable[str | os.PathLike[str] | None], inputs: InputSet | Iterable[str | os.PathLike[str]]
) -> None:
    """`check_output` for each target (None entries, i.e. outputs not asked for, are skipped), and no two targets
    may be one file (a CSV and its JSONL on one name would interleave into garbage)."""
    inputs = inputs if isinstance(inputs, InputSet) else InputSet(inputs)
    seen: dict[Path, str | os.PathLike[str]] = {}
    for target in targets:
        if target is None:
            continue
        check_output(target, inputs)
        real = _real(target)
        if real in seen:
            raise OutputPathError(target, f"is also given as another output ({seen[real]}); choose two names")
        seen[real] = target
