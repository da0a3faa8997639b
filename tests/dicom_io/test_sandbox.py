"""GDCM runs in a worker process (issue #10 item 6): a decoder that aborts, crashes or hangs there is one
PixelDecodeError for that file, and the application process goes on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom import examples
from pydicom.pixels import get_decoder

import dicom_io
from dicom_io import sandbox
from dicom_io._decode_worker import FAULT_ENV


def write_jpeg_lossless(dst: Path) -> Path:
    """pydicom's CT_small re-encoded as JPEG Lossless SV1 by GDCM's own converter (pydicom has no such encoder)."""
    tool = shutil.which("gdcmconv") or str(Path(sys.executable).with_name("gdcmconv"))
    subprocess.run([tool, "--jpeg", examples.get_path("ct"), str(dst)], check=True, capture_output=True, timeout=120)
    return dst


@pytest.fixture
def jpeg_lossless(tmp_path: Path) -> Path:
    return write_jpeg_lossless(tmp_path / "ct_jpeg_lossless.dcm")


@pytest.fixture
def fresh_worker(monkeypatch: pytest.MonkeyPatch):
    """A worker started inside the test, so environment changes reach it; stopped again afterwards."""
    sandbox.shutdown()
    yield monkeypatch
    monkeypatch.delenv(FAULT_ENV, raising=False)
    sandbox.shutdown()


def test_gdcm_and_charls_never_decode_in_this_process() -> None:
    from pydicom import uid

    for ts in uid.AllTransferSyntaxes:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            continue
        assert "gdcm" not in decoder._available  # noqa: SLF001
    for ts in (uid.JPEGLSLossless, uid.JPEGLSNearLossless):
        assert not get_decoder(ts)._available  # noqa: SLF001 - pyjpegls runs in the worker
        assert sandbox.plugins_for(ts) == ("pyjpegls", "gdcm")


def test_jpeg_ls_decodes_in_the_worker(pydicom_test_files: Path, fresh_worker) -> None:
    import pydicom

    path = pydicom_test_files / "MR_small_jpeg_ls_lossless.dcm"
    reference = pydicom.dcmread(pydicom_test_files / "MR_small.dcm").pixel_array
    stack = dicom_io.open_path(path)
    assert np.array_equal(stack.modality_values(0), reference.astype(np.float32))


def test_jpeg_lossless_decodes_in_the_worker_like_the_original(jpeg_lossless: Path, fresh_worker) -> None:
    stack = dicom_io.open_path(jpeg_lossless)
    assert stack.metadata["transfer_syntax"] == "1.2.840.10008.1.2.4.70"
    original = dicom_io.open_path(examples.get_path("ct"))
    assert np.array_equal(stack.modality_values(0), original.modality_values(0))
    assert np.array_equal(stack.render(0), original.render(0))


def test_aborting_decoder_is_one_error_and_the_next_file_decodes(jpeg_lossless: Path, fresh_worker) -> None:
    fresh_worker.setenv(FAULT_ENV, "abort")
    with pytest.raises(dicom_io.PixelDecodeError) as err:
        dicom_io.open_path(jpeg_lossless).render(0)
    text = str(err.value)
    assert text.startswith(f"{jpeg_lossless}: ") and "crashed (SIGABRT)" in text and "\n" not in text
    calls: list[int] = []
    real_decode = sandbox.decode
    fresh_worker.setattr(sandbox, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    stack = dicom_io.open_path(jpeg_lossless)
    for _ in range(3):  # render, render again, info's auto window: the failure is remembered, no second crash
        with pytest.raises(dicom_io.PixelDecodeError):
            stack.render(0)
    assert len(calls) == 1
    fresh_worker.setattr(sandbox, "decode", real_decode)
    fresh_worker.delenv(FAULT_ENV)
    assert dicom_io.open_path(jpeg_lossless).render(0).shape == (128, 128)  # a new worker took over


def test_hanging_decoder_times_out(jpeg_lossless: Path, fresh_worker) -> None:
    fresh_worker.setenv(FAULT_ENV, "hang")
    fresh_worker.setattr(sandbox, "TIMEOUT_BASE_S", 2.0)
    with pytest.raises(dicom_io.PixelDecodeError, match="did not finish within 2 s"):
        dicom_io.open_path(jpeg_lossless).render(0)


def test_malformed_frame_is_an_error_reply(jpeg_lossless: Path, tmp_path: Path, fresh_worker) -> None:
    import pydicom

    ds = pydicom.dcmread(jpeg_lossless)
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + b"\x00" * 64])  # SOF3 marker, then nothing sensible
    bad = tmp_path / "bad_jll.dcm"
    ds.save_as(bad)
    with pytest.raises(dicom_io.PixelDecodeError) as err:
        dicom_io.open_path(bad).render(0)
    assert str(err.value).startswith(f"{bad}: decoding frame 0 with gdcm (in a separate process)")
