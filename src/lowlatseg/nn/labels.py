"""Full-resolution labels from feature-grid logits, without upsampling every logit.

``upsampled_labels(logits, size)`` equals ``to_labels(F.interpolate(logits, size, mode="bilinear",
align_corners=False))`` (the head's own upsampling followed by the argmax) but does most of the
work on the feature grid:

* Every output pixel's bilinear value is a convex combination of the four grid logit vectors
  around it. If those four vectors have the same argmax class ``c``, so does any convex
  combination of them (``v_i[c] >= v_i[j]`` for every corner ``i`` sums to the same inequality,
  and first-maximum tie-breaking carries over), so the pixel's label is ``c`` with no
  arithmetic at all.
* Only the pixels of cells whose four corners disagree (class boundaries: about 18 % of the
  cells on our frames) get their C interpolated logits computed, with PyTorch's own source
  indices and weights.

For llnet-m's 11 x 45 x 60 logits to 360 x 480 this took 3.7 ms against 4.5 ms for
upsampling and argmax on one core (2.2 against 2.4 ms on two), on the path of every frame;
with the classes innermost (commit 0cea4b5, 2026-11-25) 2.1 ms against 3.3 for the reference on one core. Results can differ from the reference
only where two classes' interpolated logits tie to within float rounding.

Outside autograd, on float32 CPU logits, the same arithmetic runs as one compiled loop
(:mod:`lowlatseg.nn.labels_kernel`, commit 3bb7c3b, 2026-11-26), bit-identical to the tensor version above and
several times faster (docs/runtime.md); ``impl`` selects one explicitly.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from lowlatseg.nn.splitnet import to_labels

IMPLEMENTATIONS = ("auto", "compiled", "tensor")


def _source_axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per output index along one axis: the first source index and the weight of the next one
    (index clamped to n_in - 1), computed like PyTorch's CPU bilinear kernel (align_corners=False,
    float32)."""
    scale = torch.tensor(n_in, dtype=torch.float32) / n_out
    src = (scale * (torch.arange(n_out, dtype=torch.float32) + 0.5) - 0.5).clamp(min=0)
    i0 = src.long()
    return i0, (src - i0).clamp(0, 1)


def _shift(g: torch.Tensor, dim: int) -> torch.Tensor:
    """The next row (dim 1) or column (dim 2) of ``g``, the last one repeated (clamped index)."""
    n = g.shape[dim]
    return torch.cat([g.narrow(dim, 1, n - 1), g.narrow(dim, n - 1, 1)], dim)


def _runs(i0: torch.Tensor, n_in: int) -> torch.Tensor:
    """n_in x R table of the output indices whose first source index is each input index (the
    output pixels of one grid cell along this axis), each run padded by repeating its last index.
    Upsampling only: every input index starts at least one output index."""
    counts = torch.bincount(i0, minlength=n_in)
    starts = torch.cumsum(counts, 0) - counts
    r = torch.arange(int(counts.max()))
    return starts[:, None] + torch.minimum(r[None, :], counts[:, None] - 1)


@lru_cache(maxsize=16)
def _cached_axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _source_axis(n_in, n_out)


def load_compiled() -> None:
    """Loads the compiled loop now (Numba's import and its cached machine code; compiled the
    first time on a machine) instead of inside the first frame. The runtime calls it when built."""
    from lowlatseg.nn import labels_kernel  # noqa: F401


def _compiled_applies(logits: torch.Tensor, size: tuple[int, int]) -> bool:
    """Float32 CPU logits that need no gradient, 1 to 256 classes, and an upsampling."""
    b, c, h, w = logits.shape
    return (logits.dtype == torch.float32 and logits.device.type == "cpu" and 1 <= c <= 256
            and not (torch.is_grad_enabled() and logits.requires_grad) and size[0] >= h and size[1] >= w)


def upsampled_labels(logits: torch.Tensor, size: tuple[int, int], *, dtype: torch.dtype = torch.int64,
                     impl: str = "auto") -> torch.Tensor:
    """logits: B x C x h x w (feature grid) -> B x H x W labels at ``size`` = (H, W), as ``dtype``
    (int64, or uint8 for up to 256 classes: what the runtime returns).

    ``impl``: ``auto`` (the compiled loop where it applies: float32 CPU logits without gradient,
    at most 256 classes, an upsampling; the tensor version otherwise), ``compiled`` (an error
    where it does not apply) or ``tensor``. Both give the same labels, bit for bit (infinities
    and NaN included: a NaN logit wins, as in ``torch.max``)."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {', '.join(IMPLEMENTATIONS)}, got {impl!r}")
    if dtype == torch.uint8 and logits.shape[1] > 256:
        raise ValueError(f"uint8 labels hold at most 256 classes, got {logits.shape[1]}; use dtype=torch.int64")
    compiled = _compiled_applies(logits, size)
    if impl == "compiled" and not compiled:
        raise ValueError("the compiled label map needs float32 CPU logits without gradient, 1 to 256 classes "
                         "and an output at least as large as the grid; use impl='auto'")
    if compiled and impl != "tensor":
        return _labels_compiled(logits, size).to(dtype)
    return _labels_tensor(logits, size).to(dtype)


def _labels_compiled(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B x H x W uint8 by :func:`~lowlatseg.nn.labels_kernel.labels_nhwc`; no copy of
    channels-last logits (the runtime's)."""
    from lowlatseg.nn.labels_kernel import labels_nhwc  # Numba: imported (and compiled) on first use

    b, c, h, w = logits.shape
    y0, ly = _cached_axis(h, size[0])
    x0, lx = _cached_axis(w, size[1])
    out = torch.empty(b, *size, dtype=torch.uint8)
    nhwc = logits.detach().permute(0, 2, 3, 1).contiguous()
    labels_nhwc(nhwc.numpy(), y0.numpy(), ly.numpy(), x0.numpy(), lx.numpy(), out.numpy())
    return out


def _labels_tensor(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The tensor version: B x H x W int64."""
    b, c, h, w = logits.shape
    big_h, big_w = size
    if big_h < h or big_w < w:  # downsampling: no cell structure to exploit
        return to_labels(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))
    y0, ly = _cached_axis(h, big_h)
    x0, lx = _cached_axis(w, big_w)
    grid = to_labels(logits)  # B x h x w
    down = _shift(grid, 1)
    agree = (grid == down) & (grid == _shift(grid, 2)) & (grid == _shift(down, 2))  # a cell's 4 corners
    out = grid.index_select(1, y0).index_select(2, x0)  # B x H x W: each pixel's top-left corner
    bi, ci, cj = torch.nonzero(~agree, as_tuple=True)  # cells whose corners disagree: interpolate
    if bi.numel():
        ys, xs = _runs(y0, h)[ci], _runs(x0, w)[cj]  # n x R, n x S output pixels of each cell
        ci1, cj1 = (ci + 1).clamp(max=h - 1), (cj + 1).clamp(max=w - 1)
        # classes innermost (n x R x S x C): the same arithmetic per element as classes second,
        # but the argmax reads contiguous memory (2.1 against 2.8 ms for the whole function on
        # one core)
        lt = logits.permute(0, 2, 3, 1)  # B x h x w x C
        wy, wx = ly[ys][:, :, None, None], lx[xs][:, None, :, None]  # n x R x 1 x 1, n x 1 x S x 1
        top = (1 - wx) * lt[bi, ci, cj][:, None, None, :] + wx * lt[bi, ci, cj1][:, None, None, :]  # n x 1 x S x C
        bottom = (1 - wx) * lt[bi, ci1, cj][:, None, None, :] + wx * lt[bi, ci1, cj1][:, None, None, :]
        value = (1 - wy) * top + wy * bottom  # n x R x S x C
        out[bi[:, None, None], ys[:, :, None], xs[:, None, :]] = to_labels(value.permute(0, 3, 1, 2))
    return out
