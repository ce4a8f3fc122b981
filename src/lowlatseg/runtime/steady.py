"""Process settings that keep a stream's per-frame latency steady (applied by every runtime).

Two sources of latency spikes that have nothing to do with the network, both measured with
``lowlatseg bench --fps 0 --repeat 6`` on the 2-core CPU (docs/runtime.md):

* **Page faults.** glibc serves allocations above its mmap threshold with fresh ``mmap`` pages
  and gives them back to the kernel on free, so every frame faulted its large buffers in again:
  3.6 million minor page faults over 1326 frames in ``fixed`` mode, and bursts of them made
  160-300 ms frames in per-frame mode. ``mallopt`` (a fixed 32 MiB mmap threshold, the largest glibc allows, and
  no trimming) keeps freed buffers in the heap for the next frame: a few thousand faults.
* **Full garbage collections.** Python's cyclic collector occasionally scans every tracked
  object (about 180 000 once PyTorch and the networks are loaded): one took 76 ms in our
  process, which in the middle of a stream is one frame's delay. ``gc.freeze()`` after one collection moves the objects alive now out of its reach;
  the stream's own objects are collected as usual.

Both are process-wide; both are idempotent and harmless to call again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform
from typing import Any

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed buffers for reuse (see the module doc). False where there is no
    glibc (other C libraries and systems keep their own policy)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):
        return False
    return bool(ok)


def quiet_gc() -> None:
    """Collect once, then freeze every object alive now out of the cyclic collector's reach."""
    gc.collect()
    gc.freeze()


def steady() -> None:
    """Both settings; called by :class:`~lowlatseg.runtime.stream.StreamRuntime` at construction
    and at every ``reset()``."""
    keep_freed_memory()
    quiet_gc()


_OMP_PAUSE_SOFT = 1  # omp_pause_resource_t of OpenMP 5.0


def release_openmp_threads() -> bool:
    """Frees the OpenMP worker threads of the *calling* thread's team (OpenMP 5.0's
    ``omp_pause_resource_all``, on the libgomp PyTorch has loaded; they are started again by its
    next multi-threaded operator). Why: libgomp spin-waits between parallel regions only while
    the process has no more OpenMP threads than cores; with more, every team sleeps and wakes
    through the kernel at every region. A thread that has run PyTorch on 2 threads keeps its
    team; a second thread running PyTorch on 2 threads then slowed ``low`` + ``head`` on 2 cores
    from 4.9 to 6.4 ms, for as long as both teams lived (docs/runtime.md). False where there is
    no libgomp in the process (other OpenMP runtimes, other systems) or the call fails."""
    global _pause
    if _pause is None:
        path = _loaded_libgomp()
        try:
            # RTLD_NOLOAD: only the copy already loaded (the same instance), never a second one
            _pause = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY).omp_pause_resource_all if path else False
        except (OSError, AttributeError):
            _pause = False
    if not _pause:
        return False
    return int(_pause(ctypes.c_int(_OMP_PAUSE_SOFT))) == 0


_pause: Any = None  # libgomp's omp_pause_resource_all once looked up; False: not available


def _loaded_libgomp() -> str | None:
    """Path of the libgomp PyTorch uses, among those mapped into this process (/proc): the copy
    inside PyTorch's own folder (pip wheels bundle one), else the only one loaded; None when
    there is none, or several and none of them PyTorch's (no guessing)."""
    import torch

    try:
        with open("/proc/self/maps") as f:
            paths = {p for p in (line.rsplit(None, 1)[-1] for line in f)
                     if p.startswith("/") and "libgomp" in os.path.basename(p)}
    except OSError:
        return None
    own = [p for p in paths if p.startswith(os.path.dirname(torch.__file__) + os.sep)]
    return own[0] if own else (next(iter(paths)) if len(paths) == 1 else None)
