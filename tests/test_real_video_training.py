"""Training pairs streamed from many real videos, and the flow-guided propagation method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lowlatseg.cli import main
from lowlatseg.data.video_pairs import VideoPairStream, check_videos, default_videos, scaled_gap
from lowlatseg.errors import UserError
from lowlatseg.propagation.flow_guided import FlowGuided
from lowlatseg.propagation.methods import Clockwork, Current, KeyState, PropagationConfig
from lowlatseg.train.propagation import video_stream


def test_gaps_are_scaled_to_each_clips_rate() -> None:
    assert scaled_gap(10, 30.0) == 10
    assert scaled_gap(10, 25.0) == 8
    assert scaled_gap(10, 10.0) == 3
    assert scaled_gap(1, 10.0) == 1  # never 0


def test_stream_pairs_are_frames_gap_apart_and_memory_is_bounded(small_video: Path) -> None:
    infos = check_videos([str(small_video)], max_gap_30=6)  # 10 fps: gaps of 1-2 frames
    assert infos[0].fps == pytest.approx(10.0)
    stream = VideoPairStream(infos, height=48, min_width=64, max_gap_30=6)
    rng = np.random.default_rng(0)
    gaps = set()
    for _ in range(40):  # several passes over the 12-frame clip
        key, cur, gap = stream.pair(rng)
        gaps.add(gap)
        assert key.shape == cur.shape == (48, 64, 3)
        # the clip's red channel grows by 8 per frame (conftest): the gap is visible in the pixels
        shift = (int(cur[24, 10, 0]) - int(key[24, 10, 0])) % 256
        assert shift in range(4 * gap, 12 * gap + 1)
        assert len(stream.readers[0].frames) <= scaled_gap(6, 10.0) + 1
    assert gaps == {1, 2}
    assert stream.readers[0].passes > 1  # it started over at the end
    stream.close()


def test_unreadable_video_in_the_list_is_named(tmp_path: Path, small_video: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(UserError, match="broken.mp4 in the training list cannot be read"):
        check_videos([str(small_video), str(bad)], max_gap_30=5)


def test_clip_shorter_than_the_longest_gap_is_refused(small_video: Path) -> None:
    with pytest.raises(UserError, match="fewer than the"):
        check_videos([str(small_video)], max_gap_30=60)  # 20 frames at 10 fps > 12


def test_flags_that_do_not_go_together(small_video: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="video pairs only"):
        video_stream((), crop=(48, 64), max_gap_30=5, fraction=1.0)
    with pytest.raises(UserError, match="synthetic pairs only"):
        video_stream((str(small_video),), crop=(48, 64), max_gap_30=5, fraction=0.0)
    with pytest.raises(UserError, match="no .mp4"):
        default_videos(tmp_path)
    rc = main(["train", "propagation", "--video", str(small_video), "--video-dir", str(tmp_path), "--out", str(tmp_path / "r")])
    assert rc == 2


def _state(image: torch.Tensor, f_low: torch.Tensor, f_high: torch.Tensor) -> KeyState:
    return KeyState(index=0, image=image, f_low=f_low, f_high=f_high)


def _texture(h: int, w: int, dx: int = 0) -> torch.Tensor:
    """1 x 3 x h x w grey texture (two scales of smooth noise); ``dx`` moves its content right."""
    import cv2

    rng = np.random.default_rng(1)
    big_w = w + 64
    coarse = cv2.resize(rng.random((h // 16, big_w // 16)).astype(np.float32), (big_w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(rng.random((h // 4, big_w // 4)).astype(np.float32), (big_w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(0.6 * coarse + 0.4 * fine, 0, 1)[:, 32 - dx : 32 - dx + w]
    return torch.from_numpy(np.ascontiguousarray(img))[None, None].repeat(1, 3, 1, 1)


def _sharpen_predictor(method: FlowGuided) -> None:
    """Make the predictor output (almost) a delta at the kernel centre."""
    out = method.predictor.net[-1]
    with torch.no_grad():
        out.bias.zero_()
        out.bias[method.kernel_size**2 // 2] = 40.0


def test_flow_guided_is_the_identity_without_motion() -> None:
    torch.manual_seed(0)
    method = FlowGuided(PropagationConfig(), low_ch=8).eval()
    _sharpen_predictor(method)
    img = _texture(64, 96)
    f_low, f_high = torch.rand(1, 8, 8, 12), torch.rand(1, 16, 8, 12)
    with torch.inference_mode():
        out = method.propagate(_state(img, f_low, f_high), Current(index=1, image=img, f_low=f_low))
    torch.testing.assert_close(out, f_high, rtol=0, atol=1e-3)


def test_flow_guided_follows_motion_beyond_the_kernels_reach() -> None:
    """Content moved right by 24 image px (3 feature px at stride 8: beyond the 5x5 kernel's
    reach of 2) is brought back by the flow; copying the keyframe's features is not."""
    torch.manual_seed(0)
    method = FlowGuided(PropagationConfig(flow_preset="medium"), low_ch=8).eval()
    _sharpen_predictor(method)
    key_img, cur_img = _texture(128, 256), _texture(128, 256, dx=24)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(35.0), indexing="ij")
    field = torch.stack([torch.sin(xx / 2), torch.cos(yy / 2 + xx / 3)])[None]  # 1 x 2 x 16 x 35
    f_key = field[..., 3:35]  # key(j) = field(j + 3)
    f_cur = field[..., 0:32]  # cur(j) = field(j) = key(j - 3): moved right by 3
    low = torch.zeros(1, 8, 16, 32)
    with torch.inference_mode():
        key = _state(key_img, low, f_key)
        cur = Current(index=1, image=cur_img, f_low=low)
        guided = method.propagate(key, cur)
        copied = Clockwork().propagate(key, cur)
    inner = (..., slice(4, -4), slice(8, -4))  # away from the borders the flow cannot fill
    err_guided = (guided - f_cur)[inner].abs().mean()
    err_copy = (copied - f_cur)[inner].abs().mean()
    assert err_guided < 0.3 * err_copy
