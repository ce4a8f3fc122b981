"""The runtime's process settings: freed buffers kept (glibc), the collector's old objects frozen."""

from __future__ import annotations

import gc
import platform
from pathlib import Path

import pytest

from lowlatseg.checkpoint import load_model
from lowlatseg.runtime.build import build_runtime
from lowlatseg.runtime.config import RuntimeConfig
from lowlatseg.runtime.steady import keep_freed_memory, quiet_gc


def test_quiet_gc_freezes_what_is_alive_and_still_collects_new_garbage() -> None:
    gc.unfreeze()
    quiet_gc()
    assert gc.get_freeze_count() > 1000  # the interpreter, PyTorch and our modules at least
    made = []
    a: list[object] = [made]
    made.append(a)  # a reference cycle created after the freeze
    del a, made
    assert gc.collect() >= 2  # new cyclic garbage is still found


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_is_accepted_by_glibc() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent


def test_every_runtime_applies_them(tiny_weights: Path, tiny_prop: Path) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    build_runtime(load_model(tiny_weights), RuntimeConfig(mode="fixed", propagation=tiny_prop, size=(48, 64))).close()
    assert gc.get_freeze_count() > 0


@pytest.mark.skipif(platform.system() != "Linux", reason="libgomp (PyTorch's OpenMP on Linux) only")
def test_release_openmp_threads_frees_the_callers_team() -> None:
    """The caller's OpenMP worker threads end (they would make libgomp stop spin-waiting in
    every team once the stream's compute thread has its own); PyTorch starts them again."""
    import os
    import time

    import torch

    from lowlatseg.runtime.steady import release_openmp_threads

    def tasks() -> int:
        return len(os.listdir("/proc/self/task"))

    def parallel_op() -> None:
        torch.ones(4_000_000).add_(1).sum()  # large enough for a parallel region

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        parallel_op()
        before = tasks()
        assert release_openmp_threads() is True
        deadline = time.monotonic() + 2
        while tasks() != before - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tasks() == before - 1  # the team's one worker thread is gone
        assert release_openmp_threads() is True and tasks() == before - 1  # nothing left to free
        parallel_op()
        assert tasks() == before  # started again by the next parallel operator
    finally:
        torch.set_num_threads(previous)
