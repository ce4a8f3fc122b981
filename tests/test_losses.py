"""The Lovász-softmax loss is the Jaccard loss at hard predictions, and ignores void."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowlatseg.train.losses import lovasz_softmax, segmentation_loss

VOID = 255


def _hard_logits(pred: torch.Tensor, c: int) -> torch.Tensor:
    return 60.0 * F.one_hot(pred, c).permute(0, 3, 1, 2).float()  # softmax is one-hot to float precision


def test_lovasz_at_hard_predictions_is_one_minus_mean_iou() -> None:
    torch.manual_seed(0)
    c = 5
    target = torch.randint(0, c, (2, 16, 20))
    target[0, :3] = VOID
    pred = torch.where(torch.rand(2, 16, 20) < 0.7, target.clamp(max=c - 1), torch.randint(0, c, (2, 16, 20)))
    valid = target != VOID
    ious = []
    for k in target[valid].unique().tolist():
        t, p = (target == k) & valid, (pred == k) & valid
        ious.append((t & p).sum().item() / (t | p).sum().item())
    expected = 1 - sum(ious) / len(ious)
    got = lovasz_softmax(_hard_logits(pred, c), target, ignore_index=VOID)
    assert got.item() == pytest.approx(expected, abs=1e-5)


def test_lovasz_is_zero_when_right_and_ignores_void() -> None:
    target = torch.randint(0, 4, (1, 8, 8))
    right = _hard_logits(target, 4)
    assert lovasz_softmax(right, target, ignore_index=VOID).item() == pytest.approx(0.0, abs=1e-6)
    wrong_in_void = right.clone()
    target_void = target.clone()
    target_void[0, :4] = VOID
    wrong_in_void[0, :, :4] = _hard_logits((target[:, :4] + 1) % 4, 4)[0]
    assert lovasz_softmax(wrong_in_void, target_void, ignore_index=VOID).item() == pytest.approx(0.0, abs=1e-6)
    assert lovasz_softmax(wrong_in_void, target, ignore_index=VOID).item() > 0.1


def test_segmentation_loss_kinds_and_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 16, 16, requires_grad=True)
    target = torch.randint(0, 3, (2, 16, 16))
    ce = segmentation_loss(logits, target, kind="ce", weight=None, ignore_index=VOID)
    assert ce.item() == pytest.approx(F.cross_entropy(logits, target).item())
    both = segmentation_loss(logits, target, kind="ce+lovasz", weight=None, ignore_index=VOID)
    assert both.item() > ce.item()
    both.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ce\\+lovasz"):
        segmentation_loss(logits, target, kind="dice", weight=None, ignore_index=VOID)
