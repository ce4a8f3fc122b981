"""The runtime's process settings: freed buffers kept (glibc), the collector's old objects frozen."""

from __future__ import annotations

import gc
import platform
from pathlib import Path

import pytest

from lowlatseg.checkpoint import load_model
from lowlatseg.runtime.build import build_runtime
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
    build_runtime("fixed", load_model(tiny_weights), propagation=tiny_prop, size=(48, 64)).close()
    assert gc.get_freeze_count() > 0
