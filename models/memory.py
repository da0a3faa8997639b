"""Memory that matches the weights: after a load, the model owns its tensors and the process holds what they need.

Why this exists: transformers reads safetensors files through one memory mapping per file and hands out tensors
that are *views* into that mapping whenever no conversion is needed (a bf16 file loaded as bf16 on the CPU). The
mapping lives as long as any one such view does. With NF4 the quantised layers are replaced by new 4-bit tensors,
but the unquantised parts (embeddings, ``lm_head``, CLIP, the projector) stay views, so the *whole* bf16 file stays
mapped, and every page the quantiser read stays resident: an 8B checkpoint showed ≈ 20 GB resident where ≈ 6.4 GB
is needed, and a 16 GB laptop pages. `own_weight_storages` ends the load with every tensor owning a contiguous
storage of its own and no mapping of a weight file left, so resident memory is the parameter bytes plus the runtime.

Copying happens once, tensor by tensor; the mapping's pages are clean, file-backed pages (the kernel can drop them
under pressure without swapping), and the whole mapping is released when the last view is gone, so the transient
peak is page cache, not committed memory. The trade-off, for an unquantised bf16 model on the CPU (where nothing was
replaced and the mapping held exactly the weights): the weights become anonymous memory, which the kernel can no
longer drop and re-read from the file under pressure; resident memory is the same. On CUDA the weights are copied
to the GPU while loading, so normally no CPU view remains; the pass then copies nothing.

How views are found: on Linux, from ``/proc/self/maps`` (address ranges mapped from the checkpoint's weight files).
Where the mappings cannot be read (macOS), every CPU tensor is copied once: correct, at the cost of a transient
copy. On Windows transformers reads with ``pread`` into owned buffers, so there is nothing to do.

`memory_report` is what `medapp model check --load` prints: resident memory (RSS), parameter bytes, any weight-file
mapping still present, and on CUDA ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "MemoryReport",
    "format_bytes",
    "mapped_ranges",
    "memory_report",
    "own_weight_storages",
    "parameter_bytes",
    "reset_peak_memory",
    "resident_bytes",
]

_MAPS = Path("/proc/self/maps")


def _file_ids(files: Iterable[str | os.PathLike[str]]) -> set[tuple[int, int]]:
    ids = set()
    for file in files:
        try:
            st = os.stat(file)  # follows the HF cache's symlinks to the blob that is actually mapped
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids


def mapped_ranges(files: Iterable[str | os.PathLike[str]], maps: Path = _MAPS) -> list[tuple[int, int]] | None:
    """`[(start, end), ...]` of this process's mappings of `files` (matched by device and inode, so symlinks and
    renamed paths count), or None where the mappings cannot be read (no ``/proc/self/maps``)."""
    ids = _file_ids(files)
    try:
        text = maps.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    ranges = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[4] == "0":  # anonymous mapping
            continue
        try:
            major, minor = (int(x, 16) for x in parts[3].split(":"))
            ident = (os.makedev(major, minor), int(parts[4]))
            start, end = (int(x, 16) for x in parts[0].split("-"))
        except ValueError:
            continue
        if ident in ids:
            ranges.append((start, end))
    return ranges


def _tensor_slots(model: nn.Module) -> Iterator[tuple[nn.Module, str, str, torch.Tensor]]:
    """(module, "param" | "buffer", name, tensor) for every parameter and buffer, each module visited once."""
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None:
                yield module, "param", name, param
        for name, buf in list(module._buffers.items()):
            if buf is not None:
                yield module, "buffer", name, buf


def own_weight_storages(model: nn.Module, files: Iterable[str | os.PathLike[str]]) -> int:
    """Give every CPU parameter and buffer that views a mapping of `files` an owned, contiguous copy; return the
    bytes copied. Tensors that shared memory (tied weights) share their copy. See the module docstring for why."""
    import torch

    if sys.platform == "win32":
        return 0  # transformers reads with pread there: every tensor already owns its memory
    ranges = mapped_ranges(files)
    if ranges is not None and not ranges:
        return 0

    def views_a_mapping(t: torch.Tensor) -> bool:
        if t.device.type != "cpu" or t.numel() == 0:
            return False
        if ranges is None:
            return True  # cannot tell here: copy (correct, one transient copy)
        ptr = t.untyped_storage().data_ptr()
        return any(lo <= ptr < hi for lo, hi in ranges)

    copies: dict[tuple[Any, ...], torch.Tensor] = {}
    copied = 0

    def owned_copy(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal copied
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tuple(tensor.stride()))
        owned = copies.get(key)
        if owned is None:
            owned = tensor.detach().clone(memory_format=torch.contiguous_format)
            copies[key] = owned
            copied += owned.numel() * owned.element_size()
        return owned

    def own_quant_state(state: Any) -> None:
        """A pre-quantised checkpoint's 4-bit scales (absmax, codes) are read from the file too."""
        if state is None:
            return
        for attr in ("absmax", "code", "offset"):
            value = getattr(state, attr, None)
            if isinstance(value, torch.Tensor) and views_a_mapping(value):
                setattr(state, attr, owned_copy(value))
        own_quant_state(getattr(state, "state2", None))

    with torch.no_grad():
        for module, kind, name, tensor in _tensor_slots(model):
            own_quant_state(getattr(tensor, "quant_state", None))
            if not views_a_mapping(tensor):
                continue
            owned = owned_copy(tensor)
            if kind == "param":
                tensor.data = owned  # the same Parameter object (optimisers, hooks, tied modules keep it)
            else:
                module._buffers[name] = owned
    copies.clear()
    gc.collect()  # a view caught in a reference cycle would keep the whole mapping alive
    _return_free_heap()
    return copied


def _return_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``). Loading frees many large
    temporaries (the quantiser's float copies of each layer); glibc keeps such freed memory in its arenas, where it
    counts as resident although nothing uses it. No-op where glibc is not the allocator."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def _quant_state_tensors(state: Any) -> Iterator[torch.Tensor]:
    import torch

    if state is None:
        return
    for name in ("absmax", "code", "offset"):
        value = getattr(state, name, None)
        if isinstance(value, torch.Tensor):
            yield value
    yield from _quant_state_tensors(getattr(state, "state2", None))


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer, plus bitsandbytes' 4-bit quantisation states (absmax, codes)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for _module, _kind, _name, tensor in _tensor_slots(model):
        tensors = [tensor, *_quant_state_tensors(getattr(tensor, "quant_state", None))]
        for t in tensors:
            key = (t.data_ptr(), t.numel() * t.element_size())
            if key in seen or t.device.type == "meta":
                continue
            seen.add(key)
            total += key[1]
    return total


def resident_bytes() -> int | None:
    """This process's resident set size (RSS), or None where it cannot be read."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except (ImportError, OSError):
        pass
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cuda_index(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    text = device.partition(":")[2] or "0"
    return int(text) if text.isdigit() else 0


def reset_peak_memory(device: str) -> None:
    """Start `torch.cuda.max_memory_allocated` afresh before a load on `device` (nothing to do elsewhere)."""
    index = _cuda_index(device)
    if index is None:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(index)


@dataclass(frozen=True)
class MemoryReport:
    """What a loaded model costs. Bytes are exact integers; `lines()` is the readable form."""

    device: str
    parameter_bytes: int
    resident_bytes: int | None  # the whole process: runtime + weights on the CPU
    mapped_weight_bytes: int | None  # weight-file mappings still present (0 after a good load; None: unknown)
    cuda_max_allocated: int | None  # torch.cuda.max_memory_allocated on `device` (None: not a CUDA device)
    cuda_allocated: int | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"parameters   {format_bytes(self.parameter_bytes)} on {self.device}"]
        out.append("resident     " + (format_bytes(self.resident_bytes) + " (process RSS)"
                                      if self.resident_bytes is not None else "unknown on this system"))
        if self.mapped_weight_bytes:
            out.append(f"mapped       {format_bytes(self.mapped_weight_bytes)} of weight files still mapped")
        if self.cuda_max_allocated is not None:
            out.append(f"cuda peak    {format_bytes(self.cuda_max_allocated)} (torch.cuda.max_memory_allocated), "
                       f"now {format_bytes(self.cuda_allocated or 0)}")
        if self.note:
            out.append(f"note         {self.note}")
        return out


def format_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def memory_report(model: nn.Module, device: str, files: Iterable[str | os.PathLike[str]] = ()) -> MemoryReport:
    """Measure `model` now: RSS, parameter bytes, weight-file mappings left, and the CUDA peak when on CUDA."""
    ranges = mapped_ranges(files)
    mapped = None if ranges is None else sum(end - start for start, end in ranges)
    peak = now = None
    note = ""
    index = _cuda_index(device)
    if index is not None:
        import torch

        if torch.cuda.is_available():
            peak = int(torch.cuda.max_memory_allocated(index))
            now = int(torch.cuda.memory_allocated(index))
        else:
            note = f"{device} is not available here, so there is no CUDA peak to report"
    return MemoryReport(device, parameter_bytes(model), resident_bytes(), mapped, peak, now, note)
