"""Offline by construction: the jobs, and a whole CLI process including the model load, with sockets blocked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medapp.audit import AuditLog
from medapp.inputs import load_image
from medapp.jobs import ask, caption_batch, draft_report, list_items
from medapp.settings import GenerationLimits
from reports.captions import CaptionWriter, read_caption_rows


@pytest.mark.parametrize("package", ["medapp", "models"])
def test_offline_variables_are_set_on_import(package: str) -> None:
    from models.offline import OFFLINE_VARIABLES

    names = sorted(OFFLINE_VARIABLES)
    code = f"import os, {package}; print(*[os.environ.get(k) for k in {names!r}])"
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    env["HF_HUB_OFFLINE"] = "0"  # a user's setting must not switch downloads back on
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["1"] * len(names) and "HF_HUB_OFFLINE" in names


def test_jobs_with_sockets_blocked(no_network, tiny_engine, ct_small: Path, mixed_folder: Path, tmp_path: Path) -> None:
    import socket

    import pytest

    with pytest.raises(OSError, match="offline"):
        socket.create_connection(("huggingface.co", 443))  # the guard is really in place
    limits = GenerationLimits(max_new_tokens=4)
    log = AuditLog(tmp_path / "audit.jsonl")
    image = load_image(ct_small)
    assert ask(tiny_engine, image.image, "What organ?", limits=limits, audit=log).text
    report = draft_report(tiny_engine, image.image, dataset=image.dataset, limits=limits, audit=log)
    assert report.state == "draft"
    items = list_items(mixed_folder, tissue_tiles=1)
    with CaptionWriter(tmp_path / "c.csv") as writer:
        summary = caption_batch(tiny_engine, items, writer, batch_size=4, max_new_tokens=3, audit=log)
    assert (summary.done, summary.failed) == (6, 1)
    assert len(read_caption_rows(tmp_path / "c.csv")) == 7


def test_cli_process_with_sockets_blocked(block_network_prelude: str, v2_checkpoint: Path, ct_small: Path,
                                          tmp_path: Path) -> None:
    """A fresh process: imports, checkpoint discovery and load, and the answer all happen with no network."""
    code = block_network_prelude + (
        "import sys\nfrom medapp.cli import main\n"
        f"sys.exit(main(['ask', {str(ct_small)!r}, 'Any fracture?', '--model', {str(v2_checkpoint)!r}, "
        "'--device', 'cpu', '--max-new-tokens', '4']))\n"
    )
    env = {**os.environ, "MEDAPP_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()
    assert "network access attempted" not in out.stderr
