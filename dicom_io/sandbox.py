"""Decoders that can crash or stall the process run in a separate worker process, with a memory cap and a timeout.

Which, and why (found by fuzzing, see tests/dicom_io/test_fuzz_inputs.py):

* GDCM (python-gdcm), the only decoder installed for JPEG Lossless (Process 14) and the fallback for JPEG
  baseline/extended and JPEG-LS. It is C++; on a malformed frame it can throw an exception nothing catches
  (`terminate called after throwing an instance of 'gdcm::Exception'`, SIGABRT) or read out of bounds (SIGSEGV).
  In-process, one bad file in a folder killed the viewer or the whole caption batch.
* pyjpegls (CharLS) for JPEG-LS: it raises Python exceptions, but on some corrupt 64 x 64 frames it spins for ten
  seconds before doing so, which in-process is a hang only a timeout can end.

The other decoders (Pillow, imagecodecs, pylibjpeg-openjpeg, pylibjpeg-rle, pydicom's own) stay in-process, where
they are fast, and raise Python exceptions on bad data.

How: one long-lived worker (`dicom_io/_decode_worker.py`, started on first use, restarted after a crash) receives
one frame's compressed bytes plus the pixel-module elements and returns the decoded array. A worker is reused
because starting Python + numpy + pydicom + GDCM costs a few hundred milliseconds (that start-up is awaited
separately, not billed to a frame), which per slice would make scrolling a series crawl; a frame then costs a few
milliseconds of copying. Requests are serialised by a lock (the GUI decodes from several threads). A crash
(signal, non-zero exit), a timeout or an error reply is one `PixelDecodeError` naming the file, the frame and the
cause; the next request starts a fresh worker.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset

from dicom_io._decode_worker import _LEN, INT_KEYS, STR_KEYS
from dicom_io.errors import PixelDecodeError

__all__ = ["plugins_for", "in_worker_only", "decode", "shutdown", "MEMORY_LIMIT", "TIMEOUT_BASE_S"]

# Address-space cap of the worker: Python + numpy + pydicom + GDCM map about 0.5 GB; the largest frame the pixel
# budget allows (8192^2, 4 samples, 16 bits = 512 MB) needs that again two or three times while GDCM decodes it.
MEMORY_LIMIT = 3 << 30
# Longest one frame may take: a base plus a per-megapixel allowance. Valid frames decode in milliseconds (a frame
# at the pixel budget in a few seconds); a 64 x 64 frame that is still running after 5 s is stuck.
TIMEOUT_BASE_S = 5.0
TIMEOUT_PER_MEGAPIXEL_S = 1.0
STARTUP_TIMEOUT_S = 120.0  # imports on a loaded machine; not a decoder problem
_WORKER = Path(__file__).with_name("_decode_worker.py")

# Worker plugins per transfer syntax, in the order they are tried. JPEG-LS and JPEG Lossless decode *only* in the
# worker; for JPEG baseline / extended, GDCM in the worker is the fallback after the in-process decoders refused.
_PLUGINS: dict[str, tuple[str, ...]] = {
    uid.JPEGLSLossless: ("pyjpegls", "gdcm"),
    uid.JPEGLSNearLossless: ("pyjpegls", "gdcm"),
    uid.JPEGLossless: ("gdcm",),
    uid.JPEGLosslessSV1: ("gdcm",),
    uid.JPEGBaseline8Bit: ("gdcm",),
    uid.JPEGExtended12Bit: ("gdcm",),
}
IN_WORKER_ONLY = frozenset({uid.JPEGLSLossless, uid.JPEGLSNearLossless, uid.JPEGLossless, uid.JPEGLosslessSV1})
# pydicom's plugin modules, to ask whether a plugin's library is installed (without decoding anything here).
_PLUGIN_MODULES = {"gdcm": "pydicom.pixels.decoders.gdcm", "pyjpegls": "pydicom.pixels.decoders.pyjpegls"}


def in_worker_only(transfer_syntax: str) -> bool:
    """Is `transfer_syntax` decoded only in the worker (never by an in-process plugin)?"""
    return transfer_syntax in IN_WORKER_ONLY


@cache
def plugins_for(transfer_syntax: str) -> tuple[str, ...]:
    """The installed worker plugins for `transfer_syntax`, in order ((): the worker cannot decode it)."""
    out = []
    for name in _PLUGINS.get(transfer_syntax, ()):
        try:
            module = importlib.import_module(_PLUGIN_MODULES[name])
            if transfer_syntax in module.DECODER_DEPENDENCIES and module.is_available(transfer_syntax):
                out.append(name)
        except Exception:  # noqa: BLE001 - a missing or broken library means "not available"
            continue
    return tuple(out)


class _Worker:
    """One worker process and the pipe protocol to it. Not thread-safe: `decode` holds the module lock."""

    def __init__(self) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # small, predictable footprint
        self.proc = subprocess.Popen(
            [sys.executable, str(_WORKER), str(MEMORY_LIMIT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # GDCM's own chatter must not reach the user's terminal
            env=env,
            close_fds=True,
        )
        try:
            ready = self._receive(time.monotonic() + STARTUP_TIMEOUT_S)
        except (EOFError, TimeoutError):
            ready = b""
        if ready != b"ready":
            cause = self.exit_cause() if self.proc.poll() is not None else "no answer"
            self.kill()
            raise RuntimeError(f"the decoder process did not start ({cause})")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not time out in practice
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def _send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(_LEN.pack(len(data)))
        self.proc.stdin.write(data)

    def _read_exactly(self, n: int, deadline: float) -> bytes:
        """`n` bytes from the worker, or EOFError (it died) / TimeoutError (deadline passed)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks: list[bytes] = []
        got = 0
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while got < n:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError
                chunk = os.read(fd, min(n - got, 1 << 20))
                if not chunk:
                    raise EOFError
                chunks.append(chunk)
                got += len(chunk)
        return b"".join(chunks)

    def _receive(self, deadline: float) -> bytes:
        (n,) = _LEN.unpack(self._read_exactly(_LEN.size, deadline))
        return self._read_exactly(n, deadline) if n else b""

    def request(self, header: dict[str, Any], frame: bytes, timeout: float) -> tuple[dict[str, Any], bytes]:
        try:
            self._send(json.dumps(header).encode())
            self._send(frame)
            assert self.proc.stdin is not None
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise EOFError from None
        deadline = time.monotonic() + timeout
        reply = json.loads(self._receive(deadline))
        body = self._receive(deadline)
        return reply, body

    def exit_cause(self) -> str:
        """How the worker ended: "SIGABRT", "exit status 3" ..."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "no reply"
        if code < 0:
            try:
                return signal.Signals(-code).name
            except ValueError:
                return f"signal {-code}"
        return f"exit status {code}"


_LOCK = threading.Lock()
_STATE: dict[str, _Worker | None] = {"worker": None}


def shutdown() -> None:
    """Stop the worker (the next decode starts a new one). Called at exit; tests call it to apply a new env."""
    with _LOCK:
        worker = _STATE["worker"]
        _STATE["worker"] = None
    if worker is not None:
        worker.kill()


atexit.register(shutdown)


def _attrs(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in INT_KEYS:
        try:
            if key in ds and ds[key].value not in (None, ""):
                out[key] = int(ds[key].value)
        except (TypeError, ValueError):
            continue
    for key in STR_KEYS:
        if key in ds and ds[key].value:
            out[key] = str(ds[key].value).strip()
    return out


def _frame_bytes(ds: Dataset, index: int, n_frames: int) -> bytes:
    from pydicom.encaps import get_frame

    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    return get_frame(ds.PixelData, index, extended_offsets=offsets, number_of_frames=n_frames)


def _timeout(ds: Dataset) -> float:
    try:
        pixels = int(ds.Rows) * int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        pixels = 0
    return TIMEOUT_BASE_S + TIMEOUT_PER_MEGAPIXEL_S * pixels / 1e6


def decode(ds: Dataset, index: int, n_frames: int, path: str | Path | None,
           plugins: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Decode frame `index` of encapsulated `ds` in the worker with `plugins` (tried in order).

    Returns (array, photometric of the array). Every failure is a `PixelDecodeError` naming `path`, the frame and
    what happened to the decoder.
    """
    ts = str(ds.file_meta.TransferSyntaxUID)
    frame = _frame_bytes(ds, index, n_frames)
    header = {"ts": ts, "attrs": _attrs(ds), "plugins": list(plugins)}
    where = f"decoding frame {index} with {'/'.join(plugins)} (in a separate process)"
    timeout = _timeout(ds)
    with _LOCK:
        worker = _STATE["worker"]
        if worker is None or not worker.alive():
            try:
                worker = _STATE["worker"] = _Worker()
            except (OSError, RuntimeError) as exc:
                raise PixelDecodeError(path, f"{where}: {exc}") from None
        try:
            reply, body = worker.request(header, frame, timeout)
        except EOFError:
            cause = worker.exit_cause()
            _STATE["worker"] = None
            worker.kill()
            raise PixelDecodeError(path, f"{where}: the decoder crashed ({cause}); the compressed pixel data is "
                                         "probably malformed") from None
        except TimeoutError:
            _STATE["worker"] = None
            worker.kill()
            raise PixelDecodeError(path, f"{where}: the decoder did not finish within {timeout:.0f} s") from None
        except ValueError:  # the reply was not our JSON: something else wrote to the worker's stdout
            _STATE["worker"] = None
            worker.kill()
            raise PixelDecodeError(path, f"{where}: garbled reply from the decoder process") from None
    if not reply.get("ok"):
        raise PixelDecodeError(path, f"{where}: {reply.get('error') or 'failed'}")
    try:
        # bytearray: a writable array, like the in-process decoders return (downstream code may convert in place)
        arr = np.frombuffer(bytearray(body), dtype=np.dtype(reply["dtype"])).reshape(reply["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PixelDecodeError(path, f"{where}: malformed reply from the decoder process ({exc})") from None
    photometric = reply.get("photometric") or str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    return arr, str(photometric).strip().upper()
