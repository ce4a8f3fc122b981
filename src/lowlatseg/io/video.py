"""Video decoding and encoding with PyAV (FFmpeg), with one-sentence errors.

Frames are H x W x 3 uint8 RGB numpy arrays everywhere in lowlatseg.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from lowlatseg.errors import UserError


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float  # average frame rate (0 if the container does not say)
    frames: int  # frame count from the container header, else its video track's duration x fps (0 if unknown)


class VideoReader:
    """Decodes a video file (or any FFmpeg URL) frame by frame.

    ``for frame in reader`` yields H x W x 3 uint8 RGB. A file that is missing, is not a
    video, or has no decodable frames raises :class:`UserError`; a stream that breaks off or
    stalls mid-way ends the iteration after the last good frame (``reader.error`` says why); a
    file that ends cleanly well before its header's duration sets ``reader.warning``.
    """

    def __init__(self, source: str | os.PathLike[str], *, timeout_s: float = 10.0) -> None:
        self.source = str(source)
        self.error: str | None = None  # why decoding stopped before the end (an input error)
        self.warning: str | None = None  # the file ended cleanly, but earlier than its header says
        self.timeout_s = timeout_s
        is_url = self.is_live = "://" in self.source
        if self.source.isdigit():  # a camera index: V4L2 device /dev/videoN
            self._open_camera(int(self.source), timeout_s)
            return
        if not is_url:
            p = Path(self.source)
            if not p.exists():
                raise UserError(f"input {p} does not exist; check the path")
            if p.is_dir():
                raise UserError(f"input {p} is a folder; pass a video file")
            if p.is_file() and p.stat().st_size == 0:  # (a pipe or FIFO reports 0 bytes too)
                raise UserError(f"input {p} is an empty file (0 bytes); pass a video file")
        try:
            # open and read timeouts: a stalled stream ends with an error instead of hanging
            self._container = av.open(self.source, mode="r", timeout=(timeout_s, timeout_s) if is_url else None)
        except av.error.EOFError:
            raise UserError(f"{self.source} contains no video frames; pass a video with at least one frame") from None
        except (av.error.FFmpegError, OSError) as e:
            if is_url:
                why = f"no answer within {timeout_s:g} s" if isinstance(e, av.error.ExitError) else _reason(e)
                raise UserError(f"stream {self.source} cannot be opened ({why}); check the URL and that the "
                                "server is up and sending video") from None
            raise UserError(f"{self.source} cannot be opened as a video ({_reason(e)}); pass an .mp4/.avi/.mkv file") from None
        self._init_stream()

    def _open_camera(self, index: int, timeout_s: float) -> None:
        self.is_live = True
        device = f"/dev/video{index}"
        try:
            self._container = av.open(device, mode="r", format="v4l2", timeout=(timeout_s, timeout_s))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise UserError(f"camera {index} ({device}) cannot be opened ({_reason(e)}); check that it is connected and not in use") from None
        self._init_stream()

    def _init_stream(self) -> None:
        if not self._container.streams.video:
            self._container.close()
            raise UserError(f"{self.source} has no video stream; pass a video file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.info = VideoInfo(
            width=self._stream.codec_context.width,
            height=self._stream.codec_context.height,
            fps=float(rate) if rate else 0.0,
            frames=self._count_frames(float(rate) if rate else 0.0),
        )

    def _count_frames(self, fps: float) -> int:
        if self._stream.frames:  # MP4, MOV, AVI: counted in the header
            return int(self._stream.frames)
        span = self._video_span()
        return int(round((span[1] - span[0]) * fps)) if span and fps else 0

    def _video_span(self) -> tuple[float, float] | None:
        """(start, end) in seconds of the video track as its header states it, or None. The
        container's duration only stands for it when the video is the file's only stream (an
        audio track may run longer)."""
        s = self._stream
        start = float(s.start_time * s.time_base) if s.start_time is not None and s.time_base else 0.0
        if s.duration and s.time_base:  # MP4, MOV
            return start, start + float(s.duration * s.time_base)
        tag = s.metadata.get("DURATION")  # Matroska's per-track tag, "HH:MM:SS.nnnnnnnnn"
        if tag:
            try:
                h, m, sec = tag.split(":")
                return start, start + int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                return None
        if len(self._container.streams) == 1 and self._container.duration:
            return start, start + self._container.duration / 1e6
        return None

    def __iter__(self) -> Iterator[np.ndarray]:
        n, last_time = 0, None
        try:
            for frame in self._container.decode(self._stream):
                n += 1
                last_time = frame.time
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            why = f"no data for {self.timeout_s:g} s, the stream stalled" if isinstance(e, av.error.ExitError) else _reason(e)
            if n == 0:
                raise UserError(f"{self.source} cannot be decoded ({why}); it is corrupt or not a video") from None
            self.error = f"decoding stopped after {n} frames ({why})"
        if n == 0:
            raise UserError(f"{self.source} contains no video frames; pass a video with at least one frame")
        # a file cut off mid-way often ends without any decoding error: compare where the last
        # frame is with where the header says the video track ends (times, not frame counts,
        # which variable frame rates and cuts that start between keyframes make unreliable)
        span = None if self.error or self.is_live else self._video_span()
        if span is not None and last_time is not None:
            slack = max(3 / self.info.fps if self.info.fps else 0.1, 0.02 * (span[1] - span[0]))
            if span[1] - last_time > slack:
                self.warning = (f"the video ends at {last_time - span[0]:.1f} s of the {span[1] - span[0]:.1f} s its header "
                                f"states (probably truncated)")

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v")  # containers that hold H.264


def check_video_out(path: Path, flag: str = "--out") -> None:
    """Raises a one-sentence :class:`UserError` unless ``path`` names a container H.264 fits in."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"{flag} {path}: cannot write H.264 video to a '{path.suffix or 'no'}' file; "
                        f"use a name ending in {', '.join(OUTPUT_SUFFIXES)}")


# libx264's speed presets, fastest first: each is about the same quality at a given crf, the
# slower ones in a smaller file for more CPU time
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def check_preset(preset: str, flag: str = "--preset") -> None:
    """Raises a one-sentence :class:`UserError` unless ``preset`` is a libx264 preset."""
    if preset not in X264_PRESETS:
        raise UserError(f"{flag} {preset!r} is not a libx264 preset; use one of {', '.join(X264_PRESETS)}")


class VideoWriter:
    """Encodes RGB frames to H.264 (libx264, yuv420p) in an .mp4/.mkv/.mov container.

    Odd sizes are padded by one pixel (yuv420p needs even sizes); a frame of another size than
    the first (a stream that changes resolution) is resized to it. ``close()`` flushes the
    encoder so that every frame written so far is in a valid file, also after an error.
    ``preset``: libx264's speed preset (:data:`X264_PRESETS`).
    """

    def __init__(self, path: str | os.PathLike[str], *, fps: float, width: int, height: int, crf: int = 23,
                 preset: str = "veryfast") -> None:
        check_preset(preset)
        self.path = Path(path)
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise UserError(f"cannot write {self.path}: folder {parent} does not exist; create it or choose another --out")
        if self.path.is_dir():
            raise UserError(f"cannot write {self.path}: it is a folder; pass a file name such as out.mp4")
        check_video_out(self.path)
        try:
            self._container = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise UserError(f"cannot write {self.path} ({_reason(e)}); choose a writable path ending in .mp4 or .mkv") from None
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        try:
            self._stream = self._container.add_stream("libx264", rate=rate)
        except (av.error.FFmpegError, ValueError) as e:
            self._container.close()
            raise UserError(f"cannot write H.264 video to {self.path} ({_reason(e)}); use a name ending in .mp4 or .mkv") from None
        self._size = (height, width)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        self.frames = 0
        self._closed = False

    def write(self, frame: np.ndarray) -> None:
        """frame: H x W x 3 uint8 RGB, normally of the size given at construction (else resized to it)."""
        if frame.shape[:2] != self._size:
            frame = cv2.resize(frame, (self._size[1], self._size[0]), interpolation=cv2.INTER_AREA)
        h, w = self._stream.height, self._stream.width
        if frame.shape[0] != h or frame.shape[1] != w:
            frame = np.pad(frame, ((0, h - frame.shape[0]), (0, w - frame.shape[1]), (0, 0)), mode="edge")
        # RGB -> YUV 4:2:0 by OpenCV (BT.601, limited range, as FFmpeg's swscale does: within one
        # level of it on Y), which releases the GIL: far less CPU time than handing PyAV RGB,
        # which copies the frame twice holding the GIL before swscale converts it
        yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)
        vf = av.VideoFrame.from_ndarray(yuv.astype(np.uint8, copy=False), format="yuv420p")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.split(":")[-1].strip() if text else type(e).__name__
