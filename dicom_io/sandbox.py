"""Decoders that can abort the process run in a separate worker process, with a memory cap and a time limit.

Which: GDCM (python-gdcm), the only decoder installed for JPEG Lossless (Process 14) and the fallback for JPEG
baseline/extended and JPEG-LS. It is C++; on a malformed frame it can throw an exception nothing catches
(`terminate called after throwing an instance of 'gdcm::Exception'`, SIGABRT). In-process, one bad file in a
folder killed the viewer or the whole caption batch. The safe decoders (Pillow, pylibjpeg-openjpeg, pylibjpeg-rle,
pyjpegls, imagecodecs, pydicom's own) raise Python exceptions on bad data and stay in-process, where they are fast.

How: one long-lived worker (`dicom_io/_decode_worker.py`, started on first use, restarted after a crash) receives
one frame's compressed bytes plus the pixel-module elements and returns the decoded array. A worker is reused
because starting Python + numpy + pydicom + GDCM costs a few hundred milliseconds, which per slice would make
scrolling a JPEG Lossless series crawl. Requests are serialised by a lock (the GUI decodes from several threads).
A crash (signal, non-zero exit), a timeout or an error reply is one `PixelDecodeError` naming the file, the frame
and the cause; the next request starts a fresh worker.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000, JPEG2000Lossless

from dicom_io._decode_worker import INT_KEYS, STR_KEYS, _LEN
from dicom_io.errors import PixelDecodeError

__all__ = ["handles", "decode", "shutdown", "MEMORY_LIMIT", "TIMEOUT_S"]

# Address-space cap of the worker: Python + numpy + pydicom + GDCM map about 0.5 GB; the largest frame the pixel
# budget allows (8192^2, 4 samples, 16 bits = 512 MB) needs that again two or three times while GDCM decodes it.
MEMORY_LIMIT = 3 << 30
# Longest one frame may take. A JPEG Lossless frame at the pixel budget decodes in a few seconds; a minute means
# the decoder is stuck (or the machine is swapping), and the viewer must not wait for it forever.
TIMEOUT_S = 60.0
_WORKER = Path(__file__).with_name("_decode_worker.py")


# GDCM's bundled openjpeg adds no JPEG 2000 coverage over pylibjpeg-openjpeg and Pillow, only stderr noise.
_NOT_HERE = frozenset({JPEG2000, JPEG2000Lossless})


@lru_cache(maxsize=None)
def handles(transfer_syntax: str) -> bool:
    """Is GDCM installed and able to decode `transfer_syntax` (checked in this process without decoding)?"""
    if transfer_syntax in _NOT_HERE:
        return False
    try:
        from pydicom.pixels.decoders import gdcm as gdcm_plugin
    except ImportError:
        return False
    try:
        return transfer_syntax in gdcm_plugin.DECODER_DEPENDENCIES and bool(gdcm_plugin.is_available(transfer_syntax))
    except Exception:  # noqa: BLE001 - a broken GDCM install means "not available"
        return False


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


def decode(ds: Dataset, index: int, n_frames: int, path: str | Path | None) -> tuple[np.ndarray, str]:
    """Decode frame `index` of encapsulated `ds` with GDCM in the worker: (array, photometric of the array).

    Every failure is a `PixelDecodeError` naming `path`, the frame and what happened to the decoder.
    """
    ts = str(ds.file_meta.TransferSyntaxUID)
    frame = _frame_bytes(ds, index, n_frames)
    header = {"ts": ts, "attrs": _attrs(ds), "plugin": "gdcm"}
    where = f"decoding frame {index} with GDCM (in a separate process)"
    with _LOCK:
        worker = _STATE["worker"]
        if worker is None or not worker.alive():
            worker = _STATE["worker"] = _Worker()
        try:
            reply, body = worker.request(header, frame, TIMEOUT_S)
        except EOFError:
            cause = worker.exit_cause()
            _STATE["worker"] = None
            worker.kill()
            raise PixelDecodeError(path, f"{where}: the decoder crashed ({cause}); the compressed pixel data is "
                                         "probably malformed") from None
        except TimeoutError:
            _STATE["worker"] = None
            worker.kill()
            raise PixelDecodeError(path, f"{where}: the decoder did not finish within {TIMEOUT_S:g} s") from None
    if not reply.get("ok"):
        raise PixelDecodeError(path, f"{where}: {reply.get('error') or 'failed'}")
    try:
        # bytearray: a writable array, like the in-process decoders return (downstream code may convert in place)
        arr = np.frombuffer(bytearray(body), dtype=np.dtype(reply["dtype"])).reshape(reply["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PixelDecodeError(path, f"{where}: malformed reply from the decoder process ({exc})") from None
    photometric = reply.get("photometric") or str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    return arr, str(photometric).strip().upper()
