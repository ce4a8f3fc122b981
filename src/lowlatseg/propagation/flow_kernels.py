"""Kernels built from optical flow: what an ideal kernel predictor would output.

If the adaptive method knew the motion exactly, the best it could do on its K x K tap grid (taps
``dilation`` feature cells apart) is to put the bilinear weights of the displacement on the four
taps around it. :func:`flow_kernels` builds exactly those kernels from a backward flow on the
feature grid. They serve two ends:

* analysis (``docs/figures/kernel_oracle.py``): how well the method's tap grid could do at all;
* training (``train propagation --kernel-weight``): a dense target that teaches the kernel
  predictor where content moved, beside the label loss that lets it depart from the flow where
  the flow is wrong. At run time no flow is computed: the kernels still come from the low-level
  features of the two frames only.
"""

from __future__ import annotations

import torch


def flow_kernels(flow: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """B x 2 x h x w backward grid flow (current -> key, in feature cells; channel 0 is x) ->
    B x K*K x h x w kernels: the bilinear weights of the displacement on the taps (offsets
    ``dilation * (i - K//2)``), the displacement clipped to the reach ``K//2 * dilation``. Taps
    follow :func:`~lowlatseg.propagation.svconv.sv_conv`'s order (index i*K + j, i the row).
    Every kernel is non-negative and sums to 1."""
    r = kernel_size // 2
    u = (flow[:, 0] / dilation + r).clamp(0, kernel_size - 1)  # continuous column tap index
    v = (flow[:, 1] / dilation + r).clamp(0, kernel_size - 1)  # continuous row tap index
    j0 = u.floor().clamp(max=kernel_size - 2)
    i0 = v.floor().clamp(max=kernel_size - 2)
    fu, fv = u - j0, v - i0
    w = torch.zeros(flow.shape[0], kernel_size * kernel_size, *flow.shape[-2:], dtype=flow.dtype, device=flow.device)
    for di, dj, wt in ((0, 0, (1 - fv) * (1 - fu)), (0, 1, (1 - fv) * fu), (1, 0, fv * (1 - fu)), (1, 1, fv * fu)):
        idx = ((i0 + di) * kernel_size + (j0 + dj)).long().unsqueeze(1)
        w.scatter_add_(1, idx, wt.unsqueeze(1))
    return w


def kernel_cross_entropy(log_weights: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over locations of -sum_q target_q log w_q (B x K*K x h x w each): the KL divergence
    from the target kernels to the predicted ones, up to the target's entropy."""
    return -(target * log_weights).sum(1).mean()
