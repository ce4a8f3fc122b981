"""What a runtime is built from: one frozen :class:`RuntimeConfig`, with its executor spec.

The executor spec says where low-latency mode runs a keyframe's ``high`` (the other modes run it
inline, before the keyframe is answered):

* :class:`Inline`: on the caller's thread, its features swapped in exactly ``delay_frames``
  frames after the keyframe was chosen: deterministic, the sequential twin the evaluation
  commands score (``DEFAULT_DELAY_FRAMES``: the delay measured live on a 15 Hz stream);
* :class:`Sliced` (default, live): on the stream's compute thread, in slices between frames with
  every core, ready at most ``max_delay`` frames after the keyframe when frames leave a little
  time between them (runtime/sliced.py);
* :class:`Parallel` (live): on a worker thread with one core, at the same time as the frames
  (runtime/executors.py).

The live specs take an optional ``delay_frames`` too: the features are then swapped in exactly
that many frames after the keyframe (the high waited for if late), which lets a test show that
the live and the sequential runtimes give the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lowlatseg.defaults import DEFAULT_DELAY_FRAMES, DEFAULT_PROPAGATION_METHOD, MAX_DELAY_FRAMES, WORKERS
from lowlatseg.errors import ParameterError, UserError


@dataclass(frozen=True)
class Inline:
    delay_frames: int = DEFAULT_DELAY_FRAMES  # frames from choosing a keyframe to answering from it (>= 1)

    def __post_init__(self) -> None:
        check_delay(self.delay_frames)


@dataclass(frozen=True)
class Sliced:
    max_delay: int | None = MAX_DELAY_FRAMES  # None: one slice after each frame, however late the features come
    delay_frames: int | None = None  # None: swapped in at the first frame after high is done (live)

    def __post_init__(self) -> None:
        if self.max_delay is not None and self.max_delay < 1:
            raise ParameterError(f"{{max_delay}} {self.max_delay} is not valid; it must be at least 1", "max_delay")
        if self.delay_frames is not None:
            check_delay(self.delay_frames)


@dataclass(frozen=True)
class Parallel:
    delay_frames: int | None = None  # as for Sliced

    def __post_init__(self) -> None:
        if self.delay_frames is not None:
            check_delay(self.delay_frames)


ExecutorSpec = Inline | Sliced | Parallel


def check_delay(delay_frames: int) -> int:
    if delay_frames < 1:
        raise ParameterError(f"{{delay_frames}} {delay_frames} is not valid; a keyframe is usable one frame after it is "
                             "chosen at the earliest", "delay_frames")
    return delay_frames


def executor_spec(worker: str, max_delay: int | None = MAX_DELAY_FRAMES) -> ExecutorSpec:
    """The live spec a worker name stands for (``sliced`` | ``parallel``, as the CLI spells them)."""
    if worker not in WORKERS:
        raise UserError(f"unknown worker {worker!r}; choose one of: {', '.join(WORKERS)}")
    return Sliced(max_delay) if worker == "sliced" else Parallel()


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything :func:`~lowlatseg.runtime.build.build_runtime` needs besides the network."""

    mode: str = "low-latency"  # per-frame | fixed | adaptive | low-latency (defaults.MODES)
    size: tuple[int, int] | int | None = 360  # network input: (H, W), a height keeping the aspect ratio (default, as the CLI), None: native
    # the keyframe policy: fixed uses interval (default 5); adaptive the deviation predictor with the
    # instant rule and threshold, or the accumulated rule and budget (neither: the rule and number
    # stored with the scheduler); low-latency uses interval when given, else the adaptive policy
    interval: int | None = None
    threshold: float | None = None
    budget: float | None = None
    propagation: str | Path | None = None  # propagation file (None: bundled for the model)
    scheduler: str | Path | None = None  # scheduler file (None: bundled)
    propagation_method: str = DEFAULT_PROPAGATION_METHOD  # adaptive | flow-guided | flow-residual (from the propagation file) | flow
    executor: ExecutorSpec = field(default_factory=Sliced)  # low-latency: where a keyframe's high runs
    threads: int | None = None  # the stream's torch threads (None: the caller's count when built)
    # low-latency: a keyframe whose features were ready at the very next frame shows that the
    # stream leaves time for a whole high between frames; the next frame is then a keyframe
    # too, without asking the policy (runtime/stream.py, "spare keyframes")
    spare_keyframes: bool = True
