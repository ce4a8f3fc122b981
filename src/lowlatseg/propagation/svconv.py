"""The spatially variant convolution: every output location has its own K x K kernel.

    out[b, c, y, x] = sum_{i, j} W[b, i*K + j, y, x] * F[b, c, y + d*(i - r), x + d*(j - r)]

with r = K // 2 and dilation d. Conventions:

* ``features``: B x C x H x W; ``weights``: B x K*K x H x W (or 1 x K*K x 1 x 1 for one kernel
  everywhere, broadcast); the output has the features' shape.
* The kernel is shared over channels (one weight per location and offset, as in the paper).
* Offsets are in feature-grid pixels; offset index k = i*K + j with i the row (y) and j the
  column (x), both from 0 (top-left, offset (-r*d, -r*d)) to K-1.
* Borders replicate the edge feature ("edge" padding): a constant feature map stays constant
  under any normalised kernel, and content entering the view takes the nearest known feature.
* Weights are used as given; callers normalise them (softmax over the K*K axis).

``sv_conv`` is the fast version. Outside autograd (inference: the runtime and the evaluation
commands) on float32 CPU tensors it runs one compiled loop over the output locations
(:mod:`lowlatseg.propagation.svconv_kernel`, ~3.3x faster on one core); where gradients are
needed (training) it is a loop over the K*K shifts with in-place accumulation, never
materialising the K*K x C x H x W unfolded tensor. ``sv_conv_reference`` is the slow,
obviously-correct version the tests check both against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


IMPLEMENTATIONS = ("auto", "compiled", "loop")


def _check(features: torch.Tensor, weights: torch.Tensor, kernel_size: int, dilation: int) -> None:
    if features.dim() != 4 or weights.dim() != 4:
        raise ValueError(f"features and weights must be 4-D (B x C x H x W, B x K*K x H x W), got {tuple(features.shape)} and {tuple(weights.shape)}")
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    if dilation < 1:
        raise ValueError(f"dilation must be at least 1, got {dilation}")
    if weights.shape[1] != kernel_size * kernel_size:
        raise ValueError(f"weights have {weights.shape[1]} channels but kernel_size {kernel_size} needs {kernel_size ** 2}")
    for dim, name in ((0, "batch"), (2, "height"), (3, "width")):
        if weights.shape[dim] not in (1, features.shape[dim]):
            raise ValueError(f"weights {name} {weights.shape[dim]} does not match features {name} {features.shape[dim]}")


def sv_conv(features: torch.Tensor, weights: torch.Tensor, *, kernel_size: int, dilation: int = 1,
            impl: str = "auto") -> torch.Tensor:
    """Fast spatially variant convolution (see the module docstring). Differentiable in both inputs.

    ``impl``: ``auto`` (the compiled loop where it applies: float32 CPU tensors that need no
    gradient; the tensor loop otherwise), ``compiled`` (an error where it does not apply) or
    ``loop`` (the tensor loop, e.g. to time it)."""
    _check(features, weights, kernel_size, dilation)
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {', '.join(IMPLEMENTATIONS)}, got {impl!r}")
    compiled = _compiled_applies(features, weights)
    if impl == "compiled" and not compiled:
        raise ValueError("the compiled sv_conv needs float32 CPU tensors and no gradient; use impl='auto'")
    if compiled and impl != "loop":
        return _sv_conv_compiled(features, weights, kernel_size=kernel_size, dilation=dilation)
    # each tap's weight plane contiguous (a channels-last weight map would make every
    # multiply-add gather it with a stride of K*K): the same numbers, ~6 % faster
    weights = weights.contiguous()
    r = kernel_size // 2 * dilation
    h, w = features.shape[-2:]
    padded = F.pad(features, (r, r, r, r), mode="replicate") if r else features
    out = None
    k = 0
    for i in range(kernel_size):
        for j in range(kernel_size):
            y, x = i * dilation, j * dilation
            term = padded[:, :, y : y + h, x : x + w]
            wk = weights[:, k : k + 1]
            if out is None:
                out = term * wk
            else:
                out = out.addcmul_(term, wk) if not torch.is_grad_enabled() else out + term * wk
            k += 1
    assert out is not None
    return out


def _compiled_applies(features: torch.Tensor, weights: torch.Tensor) -> bool:
    """The compiled loop has no backward: only for float32 CPU tensors that need no gradient."""
    needs_grad = torch.is_grad_enabled() and (features.requires_grad or weights.requires_grad)
    return (not needs_grad and features.device.type == "cpu" and weights.device.type == "cpu"
            and features.dtype == torch.float32 and weights.dtype == torch.float32)


def load_compiled() -> None:
    """Loads the compiled loop now (Numba's import and its cached machine code, ~0.5 s; the first
    time on a machine, compiling it, ~1.3 s) instead of inside the first frame that needs it.
    Every kernel-based propagation method calls it when built."""
    from lowlatseg.propagation import svconv_kernel  # noqa: F401


def _sv_conv_compiled(features: torch.Tensor, weights: torch.Tensor, *, kernel_size: int, dilation: int) -> torch.Tensor:
    """``sv_conv`` by :func:`~lowlatseg.propagation.svconv_kernel.sv_conv_nhwc`; the result is
    channels-last. No copy for channels-last inputs (the runtime's); others are copied once."""
    from lowlatseg.propagation.svconv_kernel import sv_conv_nhwc  # Numba: imported (and compiled) on first use

    b, c, h, w = features.shape
    weights = weights.expand(b, -1, h, w)  # a kernel shared by every location or batch item
    f_nhwc = features.detach().permute(0, 2, 3, 1).contiguous()
    w_nhwc = weights.detach().permute(0, 2, 3, 1).contiguous()
    out = torch.empty(b, h, w, c, dtype=features.dtype)
    sv_conv_nhwc(f_nhwc.numpy(), w_nhwc.numpy(), out.numpy(), kernel_size, dilation)
    return out.permute(0, 3, 1, 2)


def sv_conv_reference(features: torch.Tensor, weights: torch.Tensor, *, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Slow reference: unfold the padded features into B x C x K*K x H x W and contract. Tests only."""
    _check(features, weights, kernel_size, dilation)
    b, c, h, w = features.shape
    r = kernel_size // 2 * dilation
    padded = F.pad(features, (r, r, r, r), mode="replicate")
    cols = F.unfold(padded, kernel_size, dilation=dilation)  # B x C*K*K x H*W
    cols = cols.view(b, c, kernel_size * kernel_size, h, w)
    return (cols * weights.unsqueeze(1)).sum(dim=2)


def delta_weights(kernel_size: int, *, dy: int = 0, dx: int = 0, like: torch.Tensor | None = None) -> torch.Tensor:
    """1 x K*K x 1 x 1 one-hot kernel picking the offset (dy, dx) in kernel taps (0, 0 = centre)."""
    r = kernel_size // 2
    if abs(dy) > r or abs(dx) > r:
        raise ValueError(f"offset ({dy}, {dx}) is outside a {kernel_size}x{kernel_size} kernel")
    w = torch.zeros(1, kernel_size * kernel_size, 1, 1, dtype=like.dtype if like is not None else torch.float32)
    w[0, (dy + r) * kernel_size + (dx + r)] = 1.0
    return w
