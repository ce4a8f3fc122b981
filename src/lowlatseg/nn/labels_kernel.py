"""Full-resolution labels from feature-grid logits as one compiled loop (Numba), for the CPU.

The same function as :func:`lowlatseg.nn.labels.upsampled_labels` (see there for why a pixel
whose four surrounding grid cells agree needs no arithmetic), in one pass over the output
instead of a dozen tensor operations, each with its own pass over memory and its index tensors:

* the argmax of every grid cell, and whether the four corners of each cell agree, on the grid;
* every output pixel of an agreeing cell gets that label; every other one gets the argmax of
  its bilinearly interpolated logits, computed with PyTorch's source indices and weights and
  in the tensor version's order of float32 operations (no fused multiply-add) and with its
  argmax (first maximum on ties, NaN larger than any number), so the labels are bit-identical to
  it, infinities and NaN included (tests/test_labels.py).

Logits are read classes innermost (``B x h x w x C``: the head's channels-last output, so no
copy); labels are written as uint8. Measured on the 2-core machine (11 x 45 x 60 to 360 x 480,
on the host of commit 3bb7c3b, 2026-11-26): see ``docs/runtime.md``. Single-threaded and releases the GIL, like
:mod:`lowlatseg.propagation.svconv_kernel`; compiled on first import and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SIGNATURE = "void(float32[:, :, :, ::1], int64[::1], float32[::1], int64[::1], float32[::1], uint8[:, :, ::1])"


@njit(_SIGNATURE, cache=True, nogil=True, boundscheck=False)
def labels_nhwc(logits: np.ndarray, y0: np.ndarray, ly: np.ndarray, x0: np.ndarray, lx: np.ndarray, out: np.ndarray) -> None:
    """``logits``: B x h x w x C float32; ``y0``/``ly`` (length H) and ``x0``/``lx`` (length W):
    each output row's / column's first source index and the weight of the next one (clamped to
    the last index); ``out``: B x H x W uint8, overwritten. 1 <= C <= 256; first maximum on
    ties; a NaN counts as larger than any number (the first NaN wins), like ``torch.max``."""
    b_n, h, w, c_n = logits.shape
    big_h, big_w = out.shape[1], out.shape[2]
    one = np.float32(1.0)
    grid = np.empty((h, w), dtype=np.int64)
    agree = np.empty((h, w), dtype=np.bool_)
    for b in range(b_n):
        for i in range(h):
            for j in range(w):
                v = logits[b, i, j]
                best, arg = v[0], 0
                for c in range(1, c_n):
                    if v[c] > best or (v[c] != v[c] and best == best):  # NaN is the maximum, as in torch
                        best, arg = v[c], c
                grid[i, j] = arg
        for i in range(h):
            i1 = min(i + 1, h - 1)
            for j in range(w):
                j1 = min(j + 1, w - 1)
                g = grid[i, j]
                agree[i, j] = grid[i1, j] == g and grid[i, j1] == g and grid[i1, j1] == g
        for yy in range(big_h):
            i = y0[yy]
            i1 = min(i + 1, h - 1)
            wy = ly[yy]
            for xx in range(big_w):
                j = x0[xx]
                if agree[i, j]:
                    out[b, yy, xx] = grid[i, j]
                    continue
                j1 = min(j + 1, w - 1)
                wx = lx[xx]
                a, bb, cc, d = logits[b, i, j], logits[b, i, j1], logits[b, i1, j], logits[b, i1, j1]
                best, arg = np.float32(0.0), 0
                for c in range(c_n):
                    top = (one - wx) * a[c] + wx * bb[c]
                    bottom = (one - wx) * cc[c] + wx * d[c]
                    v = (one - wy) * top + wy * bottom
                    if c == 0 or v > best or (v != v and best == best):
                        best, arg = v, c
                out[b, yy, xx] = arg
