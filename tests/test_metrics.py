from __future__ import annotations

import numpy as np
import pytest
import torch

from lowlatseg.classes import IGNORE_INDEX
from lowlatseg.metrics import Confusion


def test_perfect_prediction_is_100() -> None:
    t = torch.randint(0, 5, (10, 10))
    c = Confusion(5)
    c.update(t, t)
    assert c.miou() == pytest.approx(100.0)


def test_ignore_pixels_never_count() -> None:
    t = torch.full((4, 4), IGNORE_INDEX)
    t[0, 0] = 1
    p = torch.zeros(4, 4, dtype=torch.long)
    p[0, 0] = 1
    c = Confusion(3)
    c.update(p, t)
    assert c.matrix.sum() == 1
    assert c.miou() == pytest.approx(100.0)


def test_hand_computed_iou() -> None:
    t = torch.tensor([0, 0, 1, 1])
    p = torch.tensor([0, 1, 1, 1])
    c = Confusion(2)
    c.update(p, t)
    # class 0: TP 1, FN 1, FP 0 -> 1/2 ; class 1: TP 2, FP 1 -> 2/3
    np.testing.assert_allclose(c.iou(), [0.5, 2 / 3])
    assert c.miou() == pytest.approx((0.5 + 2 / 3) / 2 * 100)


def test_one_matrix_over_split_differs_from_mean_of_images() -> None:
    """Accumulating is not the same as averaging per-image mIoU (the protocol wants the former)."""
    c = Confusion(2)
    c.update(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 0, 1]))
    c.update(torch.tensor([1]), torch.tensor([1]))
    assert c.matrix.tolist() == [[3, 0], [1, 1]]
