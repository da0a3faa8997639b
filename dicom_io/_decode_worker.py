"""The sandboxed decoder process: decodes one compressed frame at a time with GDCM, for `dicom_io.sandbox`.

Run as a script (``python .../dicom_io/_decode_worker.py LIMIT_BYTES``), not as ``-m dicom_io._decode_worker``:
importing the `dicom_io` package would register our plugin order, which removes GDCM from pydicom's decoders.
This process imports numpy and pydicom only, caps its own address space (RLIMIT_AS) before it decodes anything,
and talks over stdin/stdout in length-prefixed messages:

* once at start-up, after its imports: ``ready``;
* request: a JSON header ``{"ts": uid, "attrs": {keyword: value}, "plugins": [names]}``, then the frame's bytes;
  the plugins are tried in that order (pydicom's own order would put GDCM before pyjpegls);
* reply: ``{"ok": true, "dtype", "shape", "photometric"}`` then the array bytes, or ``{"ok": false, "error"}``.

Why a process: GDCM is C++ and, on malformed input, can throw an exception that nobody catches (`terminate`,
SIGABRT) or read out of bounds (SIGSEGV, seen in our fuzz test); CharLS (pyjpegls) can spin for many seconds on a
corrupt 64x64 frame. In-process that kills or stalls the viewer or a whole caption batch. Here it kills only this
worker, which the parent sees as a closed pipe or a timeout and reports as one error for that file.

`DICOM_IO_DECODE_WORKER_FAULT` (``abort`` | ``hang``) makes the worker misbehave on each request: a test hook to
prove the parent survives a decoder that aborts or hangs; nothing in medapp sets it.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from typing import IO, Any

FAULT_ENV = "DICOM_IO_DECODE_WORKER_FAULT"
_LEN = struct.Struct(">Q")
# Pixel-module elements copied into the one-frame dataset; everything else the decoder does not need.
INT_KEYS = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
            "PlanarConfiguration")  # fmt: skip
STR_KEYS = ("PhotometricInterpretation",)


def read_message(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed message, or None at a clean end of stream."""
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        return None
    return data


def write_message(stream: IO[bytes], data: bytes | memoryview) -> None:
    stream.write(_LEN.pack(len(data)))
    stream.write(data)


def _decode(header: dict[str, Any], frame: bytes) -> tuple[Any, str]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = header["ts"]
    for key, value in header["attrs"].items():
        setattr(ds, key, value)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    failures: list[str] = []
    for plugin in header.get("plugins") or ["gdcm"]:
        try:
            arr, meta = decoder.as_array(ds, index=0, as_rgb=True, decoding_plugin=plugin)  # type: ignore[arg-type]  # pydicom's kwargs stub
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - try the next plugin, report all if none works
            failures.append(f"{plugin}: {_short(exc)}")
            continue
        return arr, str(meta.get("photometric_interpretation") or "")
    raise RuntimeError("; ".join(failures) or "no decoder")


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[:2]) or type(exc).__name__
    return text[:200]


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    import numpy as np
    import pydicom.pixels  # noqa: F401 - import the decoders before "ready", so start-up is not billed to a frame

    write_message(stdout, b"ready")
    stdout.flush()
    while True:
        head = read_message(stdin)
        if head is None:
            return 0
        frame = read_message(stdin)
        if frame is None:
            return 0
        fault = os.environ.get(FAULT_ENV, "")
        if fault == "abort":
            os.abort()
        if fault == "hang":
            time.sleep(3600)
        try:
            arr, photometric = _decode(json.loads(head), frame)
            arr = np.ascontiguousarray(arr)
            reply: dict[str, Any] = {"ok": True, "dtype": arr.dtype.str, "shape": list(arr.shape),
                                     "photometric": photometric}  # fmt: skip
            body: bytes | memoryview = memoryview(arr).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
        except MemoryError:
            reply, body = {"ok": False, "error": "out of memory while decoding"}, b""
        except Exception as exc:  # noqa: BLE001 - every decoder failure goes back to the parent as text
            reply, body = {"ok": False, "error": _short(exc)}, b""
        write_message(stdout, json.dumps(reply).encode())
        write_message(stdout, body)
        stdout.flush()


def main(argv: list[str]) -> int:
    limit = int(argv[1]) if len(argv) > 1 else 0
    if limit > 0:
        try:
            import resource
        except ImportError:  # pragma: no cover - not POSIX: no address-space cap, the timeout still applies
            resource = None  # type: ignore[assignment]
        if resource is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Our replies own the real stdout; anything a C library prints to fd 1 goes to stderr (discarded by the parent)
    # instead of corrupting the message stream.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return serve(sys.stdin.buffer, channel)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
