"""Micro-benchmark of the spatially variant convolution (the compiled loop inference uses, and the
tensor loop training uses) against a 3x3 convolution of the same size."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

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


def bench_svconv(*, channels: int, height: int, width: int, kernel_size: int, dilation: int, repeats: int,
                 json_path: Path | None = None) -> dict[str, Any]:
    from lowlatseg.outputs import write_json

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
    res: dict[str, Any] = {
        "shape": f"1x{channels}x{height}x{width}", "kernel_size": kernel_size, "dilation": dilation,
        "threads": torch.get_num_threads(), "svconv_ms": sv, "svconv_loop_ms": loop, "conv3x3_ms": cv,
        "ratio": round(sv / cv, 3),
    }
    print(f"sv_conv {kernel_size}x{kernel_size} (dilation {dilation}) on {res['shape']}: {sv:.2f} ms compiled "
          f"(the tensor loop used for training: {loop:.2f} ms); 3x3 conv {channels}->{channels}: {cv:.2f} ms; "
          f"ratio {res['ratio']:.2f} ({res['threads']} threads)")
    if json_path is not None:
        write_json(res, json_path)
    return res
