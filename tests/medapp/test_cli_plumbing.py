"""Command-line plumbing: light imports, --help everywhere, no model -> instructions, deid, settings overrides."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from medapp import paths
from medapp.cli import SUBCOMMANDS, main
from medapp.model_holder import MODEL_REPO_ID

HEAVY = ("torch", "transformers", "PySide6")


def _loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport sys\nprint('LOADED:', ' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.rsplit("LOADED:", 1)[1].split()


def test_import_medapp_is_light() -> None:
    assert _loaded_after("import medapp, medapp.jobs, medapp.session, medapp.settings, medapp.audit") == []


def test_help_everywhere_without_torch() -> None:
    code = (
        "from medapp.cli import main\n"
        "for argv in (['--help'], *[[c, '--help'] for c in ('ask', 'report', 'caption', 'deid', 'audit')],"
        " ['audit', 'verify', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 0, (argv, e.code)\n"
    )
    assert _loaded_after(code) == []


def test_every_subcommand_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("ask", "report", "caption", "deid", "audit"):
        assert name in SUBCOMMANDS and name in out


def test_no_model_means_instructions_but_viewing_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      medapp_home: Path, ct_small: Path, capsys) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("MEDAPP_MODELS_DIR", str(tmp_path / "none"))
    assert main(["ask", str(ct_small), "Any nodule?"]) == 2
    err = capsys.readouterr().err.strip()
    assert MODEL_REPO_ID in err and "medapp model convert" in err and "\n" not in err
    assert main(["report", str(ct_small), "-o", str(tmp_path / "r.pdf")]) == 2
    assert not (tmp_path / "r.pdf").exists()
    # everything that needs no model keeps working
    assert main(["deid", str(ct_small), str(tmp_path / "anon.dcm")]) == 0
    from medapp.inputs import load_image

    assert load_image(ct_small).image.size == (128, 128)


def test_deid_folder_keeps_layout_and_skips_non_dicom(tmp_path: Path, medapp_home: Path, ct_small: Path,
                                                       golden_dir: Path, capsys) -> None:
    from pydicom import examples

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(ct_small, src / "ct.dcm")
    shutil.copy(examples.get_path("mr"), src / "sub" / "mr.dcm")
    shutil.copy(golden_dir / "cases-v2" / "pub_224x224.png", src / "photo.png")
    out = tmp_path / "out"
    assert main(["deid", str(src), str(out)]) == 0
    assert "skipped 1 non-DICOM" in capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["ct.dcm", "sub/mr.dcm"]
    for name in ("ct.dcm", "sub/mr.dcm"):
        before, after = pydicom.dcmread(src / name), pydicom.dcmread(out / name)
        assert after.PatientIdentityRemoved == "YES" and after.PatientName != before.PatientName
        assert after.SOPInstanceUID != before.SOPInstanceUID
    entry = json.loads(paths.audit_path().read_text().splitlines()[-1])
    assert entry["event"] == "deid" and entry["details"]["n_done"] == 2 and len(entry["inputs"]) == 2
    assert main(["deid", str(src), str(src / "sub")]) == 2  # output inside input is refused
    assert "inside the input folder" in capsys.readouterr().err


def test_bad_settings_file_is_one_line(medapp_home: Path, ct_small: Path, capsys) -> None:
    paths.settings_path().parent.mkdir(parents=True, exist_ok=True)
    paths.settings_path().write_text('{"device": "gpu"}')
    assert main(["ask", str(ct_small), "q"]) == 2
    err = capsys.readouterr().err
    assert "settings.json" in err and "'device'" in err and err.count("\n") == 1


def test_user_window_preset_override(medapp_home: Path) -> None:
    import dicom_io
    from medapp.errors import UserError
    from medapp.settings import Settings
    from medapp.view import preset_window

    s = Settings(window_presets={"ct-lung": {"center": -500, "width": 1400}, "My_Liver": {"center": 60, "width": 160}})
    for name in ("ct-lung", "Lung", "CT_LUNG"):  # the user's preset wins under every spelling of the name
        assert (preset_window(name, s).center, preset_window(name, s).width) == (-500.0, 1400.0)
    assert preset_window("My_Liver", s).width == 160.0  # a user-only name, exactly as the user spelt it
    assert preset_window("bone", s) == dicom_io.preset("ct-bone")  # dicom_io's built-in preset otherwise
    with pytest.raises(UserError, match="unknown window preset 'nope'.*ct-lung.*My_Liver"):
        preset_window("nope", s)


def test_core_never_imports_qt_or_the_window() -> None:
    """medapp/ is Qt-free (the window finds `medapp gui` through an entry point), checked on every import statement."""
    import ast

    import medapp

    root = Path(medapp.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in ("PySide6", "ui")]
    assert offenders == []


def test_dtype_auto_overrides_the_settings_file(medapp_home: Path, ct_small: Path) -> None:
    from medapp.cli import build_parser
    from medapp.cli._common import load_settings, model_holder
    from medapp.settings import Settings

    Settings(dtype="bfloat16", device="cpu").save()
    parser = build_parser()

    def holder(*flags: str):
        args = parser.parse_args(["ask", str(ct_small), "q", *flags])
        return model_holder(args, load_settings(args))

    assert holder().dtype == "bfloat16"  # the file's choice without a flag
    assert holder("--dtype", "auto").dtype is None  # "auto" lets the engine choose, whatever the file says
    assert holder("--dtype", "float16").dtype == "float16"
    assert holder("--device", "auto").device == "auto" and holder().device == "cpu"


def test_model_flags_accept_exactly_the_settings_values() -> None:
    from medapp.cli import build_parser
    from medapp.settings import DEVICES, DTYPES, QUANTS

    ask = build_parser()._subparsers._group_actions[0].choices["ask"]  # noqa: SLF001
    choices = {a.dest: tuple(a.choices) for a in ask._actions if a.choices}  # noqa: SLF001
    assert (choices["device"], choices["quant"], choices["dtype"]) == (DEVICES, QUANTS, DTYPES)


def test_a_missing_subcommand_module_is_an_error_not_a_silent_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    import medapp.cli

    monkeypatch.setattr(medapp.cli, "SUBCOMMANDS", (*SUBCOMMANDS, "not_there"))
    with pytest.raises(ModuleNotFoundError, match="medapp.cli.not_there"):
        medapp.cli.build_parser()


def test_render_writes_atomically_and_report_errors_are_one_line(medapp_home: Path, ct_small: Path, tmp_path: Path,
                                                                 capsys) -> None:
    folder = tmp_path / "taken.png"
    folder.mkdir()  # the target is a folder: reports.atomic refuses with a ReportError -> exit 2, one line
    assert main(["render", str(ct_small), "-o", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medapp: ") and "is a folder" in err and err.count("\n") == 1
    good = tmp_path / "ok.png"
    assert main(["render", str(ct_small), "-o", str(good)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["ok.png", "taken.png"]  # no temp file
