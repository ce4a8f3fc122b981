"""The spatially variant convolution as one compiled loop (Numba), for inference on the CPU.

Same function as :func:`lowlatseg.propagation.svconv.sv_conv` (see there for the conventions),
computed in one pass: for every output location the K*K taps are summed into that location's
C channels while they are in the L1 cache, instead of K*K tensor-wide multiply-adds, each a
full pass over B x C x H x W in memory. Channels are innermost (``B x H x W x C``, the runtime's
channels-last layout, so no copy), which the compiler turns into SIMD multiply-adds over C.

Measured on the 2-core machine (1 x 128 x 45 x 60 features, K = 7, dilation 2, median of 30):
2.2 ms on one thread against 7.2 ms for the tensor loop on one thread and 3.5 ms on two (commit bed461f, 2026-11-26).
The loop itself is single-threaded (no second thread pool beside PyTorch's OpenMP team: see
docs/runtime.md for why a second team slows every frame); it releases the GIL.

Compiled for the signature below on first import and cached on disk by Numba (``cache=True``:
next to this file, or in the user's cache folder when that is read-only), so only the first
run on a machine pays the ~1.3 s of compilation. Taps are summed in the tensor loop's order,
with multiply and add fused where the CPU can (``contract``); the two agree to float rounding
(tests/test_propagation_ops.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SIGNATURE = "void(float32[:, :, :, ::1], float32[:, :, :, ::1], float32[:, :, :, ::1], int64, int64)"


@njit(_SIGNATURE, cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
def sv_conv_nhwc(features: np.ndarray, weights: np.ndarray, out: np.ndarray, kernel_size: int, dilation: int) -> None:
    """``features``: B x H x W x C; ``weights``: B x H x W x K*K (tap k = i*K + j, i the row);
    ``out``: B x H x W x C, overwritten. All float32, C-contiguous. Borders replicate the edge."""
    b_n, h, w, c_n = features.shape
    r = kernel_size // 2 * dilation
    for b in range(b_n):
        for y in range(h):
            for x in range(w):
                acc = out[b, y, x]
                for c in range(c_n):
                    acc[c] = 0.0
                k = 0
                for i in range(kernel_size):
                    yy = min(max(y + i * dilation - r, 0), h - 1)
                    for j in range(kernel_size):
                        xx = min(max(x + j * dilation - r, 0), w - 1)
                        wk = weights[b, y, x, k]
                        src = features[b, yy, xx]
                        for c in range(c_n):
                            acc[c] += wk * src[c]
                        k += 1
