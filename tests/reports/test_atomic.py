"""Atomic writes: the old file survives any failure, no temporary file is left, permissions are kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reports import ReportError
from reports.atomic import atomic_write_bytes, atomic_write_json, atomic_writer


def test_failure_mid_write_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.pdf"
    atomic_write_bytes(target, b"good")
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write(b"half a fi")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pdf"]


def test_replaces_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    os.chmod(target, 0o640)
    atomic_write_json(target, {"x": "µ 王"})
    assert target.read_text(encoding="utf-8").strip() == '{\n "x": "µ 王"\n}'
    assert (target.stat().st_mode & 0o777) == 0o640


def test_unserialisable_json_leaves_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, [1])
    with pytest.raises(ReportError, match="cannot serialise"):
        atomic_write_json(target, {"bad": object()})
    assert target.read_text().strip() == "[\n 1\n]"


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "x.pdf", b"x")


def test_before_commit_sees_the_data_and_its_failure_keeps_the_old_file(tmp_path: Path) -> None:
    """The hook runs when the bytes are on disk but not yet visible; if it raises, nothing changes."""
    target = tmp_path / "out.pdf"
    atomic_write_bytes(target, b"good")
    seen: list[bytes] = []

    def hook(tmp: Path) -> None:
        seen.append(tmp.read_bytes())
        assert target.read_bytes() == b"good"  # not visible yet
        raise RuntimeError("audit failed")

    with pytest.raises(RuntimeError, match="audit failed"):
        atomic_write_bytes(target, b"new", before_commit=hook)
    assert seen == [b"new"] and target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pdf"]


def test_staged_bytes_are_invisible_until_committed(tmp_path: Path) -> None:
    from reports.atomic import staged_bytes

    target = tmp_path / "a.dcm"
    with staged_bytes(target, b"one") as staged:
        assert not target.exists() and staged.tmp.read_bytes() == b"one"
    assert list(tmp_path.iterdir()) == []  # left without commit(): discarded
    with staged_bytes(target, b"two") as staged:
        staged.commit()
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["a.dcm"]
