"""Kernels built from optical flow (propagation/flow_kernels.py): the target of the kernel
predictor's flow-kernel loss and the oracle of docs/figures/kernel_oracle.py."""

from __future__ import annotations

import pytest
import torch

from lowlatseg.propagation.flow import warp
from lowlatseg.propagation.flow_kernels import flow_kernels, kernel_cross_entropy
from lowlatseg.propagation.svconv import sv_conv


@pytest.mark.parametrize("kernel_size,dilation", [(7, 2), (5, 1), (3, 3)])
def test_flow_kernels_are_distributions_on_at_most_four_taps(kernel_size: int, dilation: int) -> None:
    torch.manual_seed(0)
    flow = torch.randn(2, 2, 9, 11) * 8  # partly beyond the reach: clipped, still a distribution
    k = flow_kernels(flow, kernel_size, dilation)
    assert k.shape == (2, kernel_size**2, 9, 11)
    assert (k >= 0).all()
    torch.testing.assert_close(k.sum(1), torch.ones(2, 9, 11))
    assert ((k > 1e-6).sum(1) <= 4).all()


def test_zero_flow_is_the_centre_tap() -> None:
    k = flow_kernels(torch.zeros(1, 2, 4, 5), 7, 2)
    assert (k[:, 24] == 1).all() and k.sum() == 20


def test_with_taps_one_cell_apart_the_kernels_are_the_bilinear_warp() -> None:
    """Inside the reach, sv_conv with the flow's kernels is exactly ``warp`` by that flow."""
    torch.manual_seed(0)
    f = torch.randn(1, 4, 12, 16)
    flow = torch.rand(1, 2, 12, 16) * 6 - 3  # |d| <= 3 = the reach of K=7, d=1
    moved = sv_conv(f, flow_kernels(flow, 7, 1), kernel_size=7, dilation=1)
    inner = (..., slice(4, -4), slice(4, -4))  # away from the borders, where padding rules differ
    torch.testing.assert_close(moved[inner], warp(f, flow)[inner], rtol=0, atol=1e-5)


def test_displacements_on_the_dilated_grid_land_on_one_tap() -> None:
    """A displacement of whole tap spacings (2 cells at dilation 2) is one tap of weight 1, in
    sv_conv's order: row offset first. Content 2 cells to the right is tap (r, r + 1)."""
    flow = torch.zeros(1, 2, 3, 3)
    flow[:, 0] = 2.0  # x: 2 cells = one tap to the right
    k = flow_kernels(flow, 7, 2)
    assert (k[:, 3 * 7 + 4] == 1).all()


def test_kernel_cross_entropy_is_smallest_at_the_target() -> None:
    torch.manual_seed(0)
    target = flow_kernels(torch.randn(1, 2, 5, 6), 5, 1)
    near = torch.log(target * 0.98 + 0.02 / 25)
    far = torch.log_softmax(torch.randn(1, 25, 5, 6), dim=1)
    assert kernel_cross_entropy(near, target) < kernel_cross_entropy(far, target)
