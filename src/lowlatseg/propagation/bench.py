"""Micro-benchmark of the spatially variant convolution (the compiled loop inference uses, and the
tensor loop training uses) against a 3x3 convolution of the same size."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lowlatseg.propagation.svconv import sv_conv


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            fn()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1000


@dataclass(frozen=True)
class SvconvBench:
    """Median ms of the compiled sv_conv, its tensor loop and a 3x3 conv of the same size."""

    shape: str  # 1 x C x H x W
    kernel_size: int
    dilation: int
    threads: int
    svconv_ms: float
    svconv_loop_ms: float
    conv3x3_ms: float

    @property
    def ratio(self) -> float:
        return round(self.svconv_ms / self.conv3x3_ms, 3)

    def to_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "kernel_size": self.kernel_size, "dilation": self.dilation, "threads": self.threads,
                "svconv_ms": self.svconv_ms, "svconv_loop_ms": self.svconv_loop_ms, "conv3x3_ms": self.conv3x3_ms,
                "ratio": self.ratio}


def bench_svconv(*, channels: int, height: int, width: int, kernel_size: int, dilation: int, repeats: int) -> SvconvBench:
    """``lowlatseg bench svconv`` (printed and saved by evaluation/reporting.py)."""
    torch.manual_seed(0)
    f = torch.randn(1, channels, height, width)
    w = torch.softmax(torch.randn(1, kernel_size**2, height, width), 1)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
    # interleave the measurements so machine noise hits all alike
    sv_ms: list[float] = []
    loop_ms: list[float] = []
    conv_ms: list[float] = []
    for _ in range(3):
        sv_ms.append(_median_ms(lambda: sv_conv(f, w, kernel_size=kernel_size, dilation=dilation), repeats))
        loop_ms.append(_median_ms(lambda: sv_conv(f, w, kernel_size=kernel_size, dilation=dilation, impl="loop"), repeats))
        conv_ms.append(_median_ms(lambda: conv(f), repeats))
    sv, loop, cv = (round(sorted(m)[1], 3) for m in (sv_ms, loop_ms, conv_ms))
    return SvconvBench(f"1x{channels}x{height}x{width}", kernel_size, dilation, torch.get_num_threads(), sv, loop, cv)
