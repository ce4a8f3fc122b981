"""All per-stream state of a runtime, in one typed place."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import torch

from lowlatseg.propagation.methods import KeyState
from lowlatseg.scheduling.scene_cut import Signature


@dataclass
class PendingKey:
    """A frame chosen as a keyframe whose ``high`` is still running (low-latency mode)."""

    index: int  # the chosen frame
    image: torch.Tensor  # 1 x 3 x H x W
    f_low: torch.Tensor  # 1 x low_ch x h x w
    future: Future  # resolves to f_high (1 x high_ch x h x w)
    ready_at: int | None  # swap in at this frame (deterministic evaluation); None: as soon as done (live)


@dataclass
class StreamState:
    index: int = 0  # number of the next frame
    key: KeyState | None = None  # the keyframe that frames propagate from now
    last_choice: int = -1  # index of the last frame chosen as a keyframe
    deviation_sum: float = 0.0  # the policy's deviations summed over the frames asked since then
    pending: PendingKey | None = None  # a keyframe being computed in the background
    hw: tuple[int, int] | None = None  # network input size, fixed by the stream's first frame
    previous: Signature | None = None  # the last frame's thumbnail signature, for scene-cut detection
    spare: bool = False  # the keyframe in use was ready at the first frame after it was chosen (low-latency)
    cut_waiting: bool = False  # a scene cut came while a keyframe was in flight: the next chance makes one
