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


def test_counts_equal_a_reference_count_with_and_without_void_pixels() -> None:
    """The update skips its copies when no pixel is void; both paths count like np.add.at."""
    rng = np.random.default_rng(0)
    p = rng.integers(0, 4, (30, 40))
    for void_share in (0.0, 0.3):
        t = rng.integers(0, 4, (30, 40))
        t[rng.random((30, 40)) < void_share] = IGNORE_INDEX
        ref = np.zeros((4, 4), dtype=np.int64)
        keep = t != IGNORE_INDEX
        np.add.at(ref, (t[keep], p[keep]), 1)
        c = Confusion(4)
        c.update(torch.from_numpy(p), torch.from_numpy(t))
        assert (c.matrix == ref).all() and c.matrix.sum() == keep.sum()
    with pytest.raises(ValueError, match="targets must be 0..3"):
        Confusion(4).update(torch.zeros(3, dtype=torch.long), torch.tensor([0, 7, IGNORE_INDEX]))


def test_predict_labels_like_the_whole_network(tiny_weights) -> None:
    """scoring.predict labels through the runtime's label map: the labels of model(image)."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.nn.splitnet import to_labels
    from lowlatseg.scoring import predict

    model = load_model(tiny_weights).eval()
    image = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = to_labels(model(to_tensor(image).unsqueeze(0)))[0]
    assert torch.equal(predict(model, image), expected)


def test_off_the_cpu_predict_labels_by_the_full_upsampling(tiny_weights) -> None:
    """Off the CPU (training validation on a GPU) the labels come from model(x) itself: the branch
    is taken for a tensor that reports another device, and gives the whole network's labels."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.nn.splitnet import to_labels
    from lowlatseg.scoring import _labels

    class Elsewhere(torch.Tensor):
        @property
        def device(self) -> torch.device:  # type: ignore[override]
            return torch.device("meta")

    model = load_model(tiny_weights).eval()
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = to_labels(model(x))[0]
        assert torch.equal(_labels(model, x.as_subclass(Elsewhere)).as_subclass(torch.Tensor), expected)
