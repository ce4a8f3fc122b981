"""Frame pairs from many real videos, streamed: no video is ever held in memory whole.

Every video gets its own reader that decodes front to back and keeps only a short window of
recent frames (resized to the training height). A pair is drawn by picking a video at random,
advancing its reader by a random 1-3 frames, and pairing the newest frame (the current frame)
with one ``gap`` frames before it (the keyframe). At the end of a video its reader starts over
(another pass, with other random steps, so other pairs).

Gaps are drawn in units of 30 fps frames, 1..``max_gap_30``, and scaled by each clip's own rate:
``gap = max(1, round(g * fps / 30))`` frames, so a gap means the same time span on a 25 fps
highway clip as on a 10 fps street camera. Memory: one window per video, at most
``window(fps)`` = the largest scaled gap + 1 frames each (about 11 frames of 360 x 640 x 3 for a
30 fps clip: 7.6 MB).

:func:`check_videos` opens every file first, so that an unreadable file or a clip shorter than
the longest gap is named before any training starts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lowlatseg.errors import ParameterError, UserError
from lowlatseg.io.video import VideoReader

DEFAULT_VIDEO_DIR = "../shared/data/video"
REFERENCE_FPS = 30.0  # gaps are given in frames at this rate


@dataclass(frozen=True)
class ClipInfo:
    path: str
    fps: float  # the clip's own rate (25 when the container does not say)
    frames: int  # from the header (0 if unknown)


def scaled_gap(gap_30: int, fps: float) -> int:
    """A gap in 30 fps frames -> the same time span in frames of a clip at ``fps`` (at least 1)."""
    return max(1, round(gap_30 * fps / REFERENCE_FPS))


def default_videos(folder: str | Path = DEFAULT_VIDEO_DIR) -> list[str]:
    """Every ``.mp4`` / ``.avi`` / ``.mkv`` / ``.mov`` file of a folder, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ParameterError(f"video folder {root} does not exist; pass {{video}} FILE (repeatable) or {{video_dir}} DIR", "video", "video_dir")
    found = sorted(str(p) for p in root.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"))
    if not found:
        raise ParameterError(f"video folder {root} holds no .mp4/.avi/.mkv/.mov file; pass {{video}} FILE", "video")
    return found


def check_videos(paths: Sequence[str], *, max_gap_30: int | None) -> list[ClipInfo]:
    """Opens each video; an unreadable one, or one shorter than the longest gap (``max_gap_30``;
    None: no gap, any length), is refused by name."""
    infos = []
    for p in paths:
        try:
            with VideoReader(p) as r:
                fps = r.info.fps or 25.0
                frames = r.info.frames
        except UserError as e:
            raise UserError(f"video {p} in the training list cannot be read ({e}); remove it from the list") from None
        need = 0 if max_gap_30 is None else scaled_gap(max_gap_30, fps) + 1
        if 0 < frames < need:
            raise ParameterError(f"video {p} has {frames} frames, fewer than the {need} that the longest gap "
                                 f"({max_gap_30} frames at 30 fps) needs; lower {{max_gap}} or remove the clip", "max_gap")
        infos.append(ClipInfo(path=str(p), fps=fps, frames=frames))
    return infos


class _Reader:
    """One video's decoder and its window of recent frames (H x W x 3 uint8, height ``height``)."""

    def __init__(self, info: ClipInfo, *, height: int, min_width: int, window: int) -> None:
        self.info, self.height, self.min_width = info, height, min_width
        self.frames: deque[np.ndarray] = deque(maxlen=window)
        self._iter: Iterator[np.ndarray] | None = None
        self._reader: VideoReader | None = None
        self.passes = 0

    def _next_raw(self) -> np.ndarray:
        for _ in range(2):
            if self._iter is None:
                self._reader = VideoReader(self.info.path)
                self._iter = iter(self._reader)
                self.frames.clear()  # a new pass: no pair spans the end and the start
                self.passes += 1
            try:
                return next(self._iter)
            except StopIteration:
                self.close()
        raise UserError(f"video {self.info.path} yields no frames; remove it from the list")

    def advance(self) -> None:
        f = self._next_raw()
        h, w = f.shape[:2]
        new_w = max(self.min_width, int(round(w * self.height / h)))
        self.frames.append(cv2.resize(f, (new_w, self.height), interpolation=cv2.INTER_AREA))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader, self._iter = None, None


class VideoPairStream:
    """(key, current) frame pairs from many videos; see the module doc.

    ``pair(rng)`` -> (key H x W x 3, current H x W x 3, gap in the clip's frames). Frames are
    ``height`` tall with the aspect ratio kept, and at least ``min_width`` wide (narrower ones
    are stretched). Every random choice comes from ``rng``.
    """

    def __init__(self, infos: Sequence[ClipInfo], *, height: int, min_width: int, max_gap_30: int = 10,
                 min_gap_30: int = 1) -> None:
        if not infos:
            raise ParameterError("no videos to draw training pairs from; pass {video} FILE or {video_dir} DIR", "video", "video_dir")
        if not 1 <= min_gap_30 <= max_gap_30:
            raise UserError(f"the gaps must satisfy 1 <= min gap ({min_gap_30}) <= max gap ({max_gap_30})")
        self.min_gap_30, self.max_gap_30 = min_gap_30, max_gap_30
        self.readers = [_Reader(i, height=height, min_width=min_width, window=scaled_gap(max_gap_30, i.fps) + 1)
                        for i in infos]

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        r = self.readers[int(rng.integers(len(self.readers)))]
        g30 = int(rng.integers(self.min_gap_30, self.max_gap_30 + 1))
        gap = scaled_gap(g30, r.info.fps)
        for _ in range(int(rng.integers(1, 4))):
            r.advance()
        for _ in range(100_000):
            if len(r.frames) >= gap + 1:
                break
            r.advance()  # the start of a pass: fill the window
        else:
            raise ParameterError(f"video {r.info.path} is shorter than a gap of {gap} frames; lower {{max_gap}} or remove the clip", "max_gap")
        return r.frames[-1 - gap], r.frames[-1], gap

    def close(self) -> None:
        for r in self.readers:
            r.close()
