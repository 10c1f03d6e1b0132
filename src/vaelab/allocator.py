"""glibc malloc thresholds for CPU training: keep a step's large temporaries in the heap.

PyTorch's CPU tensors come from the C library's malloc. glibc serves a block above its mmap
threshold with a fresh ``mmap`` and unmaps it on free; the threshold starts at 128 KiB and rises
to the size of the largest mmapped block freed so far (at most 32 MiB), so which of a step's
temporaries are mapped anew, page-faulted in and zeroed by the kernel on every step depends on
the order of earlier frees. On the IWAE-paper MLP at K = 50 (decoder temporaries of 15.7 MB) a
hand-written loop and vaelab alike took 0.2-0.6 M minor page faults per 20,000-image epoch,
varying from process to process. Fixed thresholds keep them in the heap between steps: mmap
32 MiB, and trim 256 MiB, since a step's freed temporaries (~100 MB at K = 50) at the heap's top
would otherwise go back to the OS at once (docs/performance.md, "Memory allocator").

The setting is process-wide and glibc offers no way back to its adaptive mode, so it is applied
only through ``train.malloc`` and the ``malloc`` argument of
:func:`vaelab.evaluation.importance_sampled_log_likelihood` (default "auto": on a CPU device under
glibc), and stays for the rest of the process. It retains at most ``TRIM_THRESHOLD`` bytes of freed memory.
"""

from __future__ import annotations

import ctypes
import platform
import warnings

import torch

from .config import MALLOC_MODES

MMAP_THRESHOLD = 32 * 2**20  #: blocks at least this large are still mmapped (e.g. K = 500 decoder outputs)
TRIM_THRESHOLD = 256 * 2**20  #: free memory at the heap's top beyond this goes back to the OS
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h> parameter numbers
_applied = False


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def tune_malloc(mode: str = "auto", device: torch.device | str = "cpu") -> bool:
    """Apply the fixed malloc thresholds for ``mode`` in {"auto", "tuned", "system"}; True if they are in effect.

    "auto" tunes on a CPU device under glibc, "tuned" wherever glibc is, "system" never. Repeated
    calls are free.

    Raises:
        ValueError: an unknown mode.
    Warns:
        "tuned" where the C library is not glibc (macOS, musl): the option cannot take effect.
    """
    global _applied
    if mode not in MALLOC_MODES:
        raise ValueError(f"train.malloc must be one of {MALLOC_MODES}, got {mode!r}")
    if mode == "system" or (mode == "auto" and torch.device(device).type != "cpu"):
        return _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        if mode == "tuned":
            warnings.warn('train.malloc = "tuned" has no effect: the C library is not glibc', stacklevel=2)
        return False
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
