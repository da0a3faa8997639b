"""Writers never overwrite an input or write into an input folder (`medapp.outputs`), and exports are audited
before they become visible (issue #10, items 1 and 2)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from medapp.cli import main
from medapp.outputs import OutputPathError, check_output

ALIASES = ("symlink", "dotdot", "hardlink")


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones too) with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _alias(kind: str, original: Path, elsewhere: Path, name: str) -> Path:
    """Another name of `original`, in the folder `elsewhere` (which must differ from the original's folder)."""
    elsewhere.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        link = elsewhere / name
        link.symlink_to(original)
        return link
    if kind == "hardlink":
        link = elsewhere / name
        os.link(original, link)
        return link
    # `..`: through a sibling folder back to the original
    return elsewhere / ".." / original.parent.name / original.name


def _one_line(err: str) -> str:
    """The one `medapp: ...` message on stderr (a progress bar may come before it), no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("medapp: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- deid -----------------------------------------------------------------------------------------------------------
def test_deid_into_the_files_own_folder_keeps_the_original(
    tmp_path: Path, medapp_home: Path, ct_small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "r" / "in"
    folder.mkdir(parents=True)
    shutil.copy(ct_small, folder / "a.dcm")
    before = _snapshot(folder)
    assert main(["deid", str(folder / "a.dcm"), str(folder)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "a.dcm" in line and "originals are never overwritten" in line
    assert _snapshot(folder) == before  # byte-identical, and no temporary file left


def test_deid_into_an_ancestor_keeps_every_original(
    tmp_path: Path, medapp_home: Path, ct_small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """w/in/in/a.dcm would land on w/in/a.dcm, another original: refused before the first file is written."""
    from pydicom import examples

    work = tmp_path / "w"
    (work / "in" / "in").mkdir(parents=True)
    shutil.copy(ct_small, work / "in" / "a.dcm")
    shutil.copy(examples.get_path("mr"), work / "in" / "in" / "a.dcm")
    before = _snapshot(work)
    assert main(["deid", str(work / "in"), str(work)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "inside the input folder" in line and "a.dcm" in line
    assert _snapshot(work) == before  # nothing changed and nothing written, not even w/a.dcm


def test_deid_next_to_the_inputs_is_fine(tmp_path: Path, medapp_home: Path, ct_small: Path) -> None:
    """The guard refuses overwriting and recursion only: a sibling output folder works, originals stay."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ct_small, src / "a.dcm")
    before = _snapshot(src)
    assert main(["deid", str(src), str(tmp_path)]) == 0  # the parent: outputs land beside `in`, not inside it
    assert (tmp_path / "a.dcm").is_file() and _snapshot(src) == before


@pytest.mark.parametrize("kind", ALIASES)
def test_deid_refuses_an_alias_of_its_input(
    tmp_path: Path, medapp_home: Path, ct_small: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in" / "a.dcm"
    src.parent.mkdir()
    shutil.copy(ct_small, src)
    alias = _alias(kind, src, tmp_path / "out", "copy.dcm")
    before = src.read_bytes()
    assert main(["deid", str(src), str(alias)]) == 2
    assert "input file" in _one_line(capsys.readouterr().err)
    assert src.read_bytes() == before


def _break_audit(home: Path) -> None:
    """Make every append fail for real: a folder takes the audit log's name."""
    from medapp import paths

    paths.audit_path().mkdir(parents=True)
    assert paths.audit_path().is_relative_to(home)


@pytest.mark.parametrize("folder_input", [False, True])
def test_deid_audit_failure_leaves_no_output(
    tmp_path: Path, medapp_home: Path, ct_small: Path, folder_input: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ct_small, src / "a.dcm")
    shutil.copy(ct_small, src / "b.dcm")
    out = tmp_path / "out"
    out.mkdir()
    _break_audit(medapp_home)
    argv = ["deid", str(src), str(out)] if folder_input else ["deid", str(src / "a.dcm"), str(out / "a.dcm")]
    assert main(argv) == 2
    assert "audit" in _one_line(capsys.readouterr().err)
    assert _snapshot(out) == {}  # no output and no temporary file


# -- report export --------------------------------------------------------------------------------------------------
def _report():
    from reports.model import Report, Section

    return Report(sections=(Section("findings", "Findings", "No acute finding."),), modality="CT")


@pytest.mark.parametrize("kind", ["pdf", "dicom"])
def test_export_audit_failure_leaves_no_output(tmp_path: Path, kind: str) -> None:
    from medapp.audit import AuditLog, AuditWriteError
    from medapp.jobs.export import export_report

    broken = tmp_path / "log-is-a-folder"
    broken.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(AuditWriteError):
        export_report(_report(), out / f"r.{kind}", kind=kind, audit=AuditLog(broken))
    assert _snapshot(out) == {}


def test_export_is_audited_before_it_is_visible(tmp_path: Path) -> None:
    """At the moment the entry is written the output does not exist yet; right after, it does."""
    from medapp.audit import AuditLog
    from medapp.jobs.export import export_report

    out = tmp_path / "r.pdf"
    seen: list[bool] = []

    class Watching(AuditLog):
        def record(self, event, **kw):  # the real append, plus a look at the disk first
            seen.append(out.exists())
            return super().record(event, **kw)

    export_report(_report(), out, audit=Watching(tmp_path / "a.jsonl"))
    assert seen == [False] and out.is_file()


@pytest.mark.parametrize("kind", ALIASES)
def test_report_export_refuses_an_alias_of_its_input(tmp_path: Path, ct_small: Path, kind: str) -> None:
    from medapp.jobs.export import export_report

    src = tmp_path / "in" / "ct.dcm"
    src.parent.mkdir()
    shutil.copy(ct_small, src)
    before = src.read_bytes()
    for fmt in ("pdf", "dicom"):
        alias = _alias(kind, src, tmp_path / f"out-{fmt}", "report.dcm")
        with pytest.raises(OutputPathError, match="input file"):
            export_report(_report(), alias, kind=fmt, inputs=[src])
    assert src.read_bytes() == before


@pytest.mark.parametrize("kind", ALIASES)
def test_report_command_refuses_an_alias_before_loading_a_model(
    tmp_path: Path, medapp_home: Path, ct_small: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in" / "ct.dcm"
    src.parent.mkdir()
    shutil.copy(ct_small, src)
    before = src.read_bytes()
    alias = _alias(kind, src, tmp_path / "out", "r.pdf")
    assert main(["report", str(src), "-o", str(tmp_path / "ok.pdf"), "--dicom-out", str(alias)]) == 2
    assert "input file" in _one_line(capsys.readouterr().err)
    assert src.read_bytes() == before and not (tmp_path / "ok.pdf").exists()


# -- caption table, JSONL and contact sheet -------------------------------------------------------------------------
@pytest.fixture
def caption_folder(tmp_path: Path, ct_small: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(ct_small, folder / "ct.dcm")
    return folder


@pytest.mark.parametrize("flag", ["-o", "--jsonl", "--sheet"])
@pytest.mark.parametrize("kind", ALIASES)
def test_caption_refuses_aliases_of_files_in_its_folder(
    tmp_path: Path, medapp_home: Path, caption_folder: Path, kind: str, flag: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _snapshot(caption_folder)
    alias = _alias(kind, caption_folder / "ct.dcm", tmp_path / "out", "captions.csv")
    argv = ["caption", str(caption_folder), "-o", str(tmp_path / "c.csv")]
    argv = argv[:3] + [str(alias)] if flag == "-o" else argv + [flag, str(alias)]
    assert main(argv) == 2
    assert "input folder" in _one_line(capsys.readouterr().err)
    assert _snapshot(caption_folder) == before and not (tmp_path / "c.csv").exists()


def test_caption_refuses_a_new_table_inside_its_folder(
    medapp_home: Path, caption_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["caption", str(caption_folder), "-o", str(caption_folder / "captions.csv")]) == 2
    assert "inside the input folder" in _one_line(capsys.readouterr().err)
    assert not (caption_folder / "captions.csv").exists()


def test_caption_refuses_one_file_for_two_outputs(
    tmp_path: Path, medapp_home: Path, caption_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.csv"
    (tmp_path / "x").mkdir()
    assert main(["caption", str(caption_folder), "-o", str(out), "--jsonl", str(tmp_path / "x" / ".." / "c.csv")]) == 2
    assert "another output" in _one_line(capsys.readouterr().err)


# -- settings and session -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALIASES)
def test_settings_save_refuses_an_alias_of_an_input(tmp_path: Path, ct_small: Path, kind: str) -> None:
    from medapp.settings import Settings

    src = tmp_path / "in" / "ct.dcm"
    src.parent.mkdir()
    shutil.copy(ct_small, src)
    before = src.read_bytes()
    alias = _alias(kind, src, tmp_path / "cfg", "settings.json")
    with pytest.raises(OutputPathError, match="input file"):
        Settings().save(alias, inputs=[src])
    assert src.read_bytes() == before
    assert Settings().save(tmp_path / "cfg" / "ok.json", inputs=[src]).is_file()  # elsewhere: fine


@pytest.mark.parametrize("kind", ALIASES)
def test_session_refuses_an_input_that_is_its_own_file(tmp_path: Path, kind: str) -> None:
    """Opening the session file itself (under any name) as an input would have the next save overwrite it."""
    from medapp.session import Session

    session = Session(tmp_path / "sess")
    session.open(tmp_path / "elsewhere.dcm")
    alias = _alias(kind, session.path, tmp_path / "study", "study.json")
    before = session.path.read_bytes()
    with pytest.raises(OutputPathError, match="input file"):
        session.open(alias)
    assert session.path.read_bytes() == before and session.state.open_paths == [str(tmp_path / "elsewhere.dcm")]


def test_session_may_live_in_an_open_folder_but_not_be_one_of_its_files(tmp_path: Path) -> None:
    """A portable install keeps its session beside the studies it opens: fine, as long as no input is the file."""
    from medapp.session import Session

    study = tmp_path / "stick"
    (study / "sub").mkdir(parents=True)
    session = Session(study / "sub" / ".." / "medapp")
    session.open(study)
    assert session.path.is_file()
    alias = _alias("hardlink", session.path, study / "sub", "copy.json")
    with pytest.raises(OutputPathError, match="input file"):
        session.open(alias)


# -- render and the window's screenshot --------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["render", "gui"])
def test_render_and_screenshot_refuse_their_input(
    tmp_path: Path, medapp_home: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    src = tmp_path / "in" / "photo.png"
    src.parent.mkdir()
    Image.new("RGB", (8, 8), "red").save(src)
    before = src.read_bytes()
    alias = _alias("symlink", src, tmp_path / "out", "shot.png")
    if command == "render":
        argv = ["render", str(src), "-o", str(alias)]
    else:
        argv = ["gui", str(src), "--screenshot", str(alias)]
    assert main(argv) == 2
    assert "input file" in _one_line(capsys.readouterr().err)
    assert src.read_bytes() == before


# -- the guard itself -----------------------------------------------------------------------------------------------
def test_guard_accepts_new_files_beside_inputs_and_refuses_the_tree(tmp_path: Path) -> None:
    study = tmp_path / "study"
    (study / "sub").mkdir(parents=True)
    (study / "sub" / "x.dcm").write_bytes(b"x")
    assert check_output(tmp_path / "out.csv", [study]) == tmp_path / "out.csv"
    with pytest.raises(OutputPathError, match="inside the input folder"):
        check_output(study / "sub" / "new.csv", [study])
    with pytest.raises(OutputPathError, match="input folder .* itself"):
        check_output(tmp_path / "other" / ".." / "study", [study])
    linked = tmp_path / "linked"
    linked.symlink_to(study / "sub", target_is_directory=True)
    with pytest.raises(OutputPathError, match="inside the input folder"):
        check_output(linked / "new.csv", [study])
