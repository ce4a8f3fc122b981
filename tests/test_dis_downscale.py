"""DIS on shrunk frames (``DISFlow(downscale=s)``): the flow it gives on the feature grid is the
same motion as at full size, in the grid's pixels."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from lowlatseg.propagation.flow import DISFlow, flow_to_grid


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 8, w // 8), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (5, 5), 0)


@pytest.mark.parametrize("downscale", [1, 2, 4])
def test_a_shift_reads_the_same_on_the_feature_grid_at_every_downscale(downscale: int) -> None:
    key = _textured(192, 256)
    shift = 8  # image px: the current frame is the key moved 8 px right, so current(x) = key(x - 8)
    current = np.roll(key, shift, axis=1)
    dis = DISFlow("medium", downscale)
    flow = dis(current, key)
    assert flow.shape == (192 // downscale, 256 // downscale, 2)
    grid = flow_to_grid(flow, (24, 32))  # stride 8: the shift is one grid cell
    inner = grid[0, :, 4:-4, 4:-4]
    assert float(inner[0].median()) == pytest.approx(-1.0, abs=0.15)  # backward flow: dx = -1 cell
    assert float(inner[1].abs().median()) < 0.15


def test_identical_frames_give_zero_flow_and_copies_keep_the_settings() -> None:
    key = _textured(96, 128, seed=1)
    dis = DISFlow("ultrafast", 2)
    assert np.abs(dis(key, key)).max() < 1e-3
    twin = copy.deepcopy(dis)
    assert (twin.preset, twin.downscale) == ("ultrafast", 2)
    assert dis.shrink(key).shape == (48, 64)


def test_bad_downscale_is_refused() -> None:
    with pytest.raises(ValueError, match="downscale"):
        DISFlow("fast", 0)


def test_the_config_reaches_every_flow_method_and_older_files_read_as_full_size() -> None:
    import torch

    from lowlatseg.propagation.flow_guided import FlowGuided
    from lowlatseg.propagation.flow_residual import FlowResidual
    from lowlatseg.propagation.methods import PropagationConfig, all_methods
    from lowlatseg.propagation.weights import DEFAULT_PROPAGATION, saved_config

    cfg = PropagationConfig(flow_downscale=2)
    assert all_methods(cfg, low_ch=8)["flow"].flow.downscale == 2
    assert FlowGuided(cfg, low_ch=8).flow.downscale == 2
    assert FlowResidual(cfg, low_ch=8, learned_ch=8, high_ch=8).flow.downscale == 2
    bundled = torch.load(DEFAULT_PROPAGATION, map_location="cpu", weights_only=False)
    assert "flow_downscale" not in bundled["prop_config"]  # written before the option
    assert saved_config(bundled).flow_downscale == 1
