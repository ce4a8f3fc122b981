"""The live view's segmentation thread: reads the source, segments every frame, hands it to the page.

It runs on its own thread and never waits for a browser: each segmented frame goes into a
:class:`~lowlatseg.view.slot.LatestFrame` (which a slow browser reads at its own pace) and
its latency into :class:`~lowlatseg.view.stats.LatencyStats`. A file plays at its own frame
rate (frame ``n`` is due ``n / fps`` seconds after the start; a file that cannot be segmented
that fast plays as fast as it can, and the clock starts anew once it is a second behind); a
camera or stream URL is read as it comes. When a file ends, the thread stops, keeping the last
frame and the statistics (or, with ``loop``, plays it again from the start, the runtime reset).
A mode switch or pause asked from the page takes effect between two frames. States:
``playing``, ``paused``, ``ended``, ``error`` (``message`` says why), ``stopped``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

from lowlatseg.errors import UserError
from lowlatseg.io.video import VideoReader
from lowlatseg.defaults import MODES
from lowlatseg.runtime.stream import StreamRuntime
from lowlatseg.view.render import Segmented
from lowlatseg.view.slot import LatestFrame
from lowlatseg.view.stats import LatencyStats

BEHIND_S = 1.0  # a file this far behind its own clock restarts the clock instead of rushing to catch up


def check_mode(mode: str) -> str:
    """``mode`` if the runtime knows it, else a one-sentence :class:`UserError` naming the modes."""
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    return mode


class LiveSegmenter:
    """Owns the reader and the runtime once started (it closes both when its thread ends).

    ``make_runtime(mode)`` builds a runtime for a mode switch (it may raise :class:`UserError`;
    the mode then stays as it was and ``message`` says why); ``reopen()`` opens the source
    again for ``loop``. ``threads``: torch threads of the segmentation thread (0: leave as is).
    """

    def __init__(self, reader: VideoReader, runtime: StreamRuntime, make_runtime: Callable[[str], StreamRuntime], *,
                 slot: LatestFrame[Segmented], stats: LatencyStats, loop: bool = False,
                 reopen: Callable[[], VideoReader] | None = None, threads: int = 0) -> None:
        self.slot = slot
        self.stats = stats
        self.source = reader.source
        self.fps = reader.info.fps
        self.resolution = f"{reader.info.height}x{reader.info.width}"
        self._reader = reader
        self._runtime = runtime
        self._make_runtime = make_runtime
        self._loop = loop and not reader.is_live
        self._reopen = reopen or (lambda: VideoReader(self.source))
        self._threads = threads
        self._lock = threading.Lock()
        self._mode = runtime.mode
        self._wanted = self._mode
        self._paused = False
        self._state = "playing"
        self._message: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lowlatseg-view-segment", daemon=True)

    # ------------------------------------------------------------ control (any thread)
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Asks the thread to end after the frame in hand and waits up to ``timeout`` seconds (not
        started: closes the reader and the runtime)."""
        self._stop.set()
        if self._thread.ident is None:  # never started: what the thread would have closed
            try:
                self._runtime.close()
            finally:
                self._reader.close()
        elif self._thread.is_alive():
            self._thread.join(timeout)

    def request_mode(self, mode: str) -> str:
        """Switches to ``mode`` from the next frame on; an unknown mode raises :class:`UserError`."""
        with self._lock:
            self._wanted = check_mode(mode)
            self._message = None
        return mode

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def status(self) -> dict[str, Any]:
        """What ``/status.json`` answers: the statistics plus mode, state, message and the source."""
        with self._lock:
            state = "paused" if self._paused and self._state == "playing" else self._state
            head = {"mode": self._mode, "requested_mode": self._wanted, "state": state, "message": self._message,
                    "paused": self._paused}
        return {**self.stats.snapshot(), **head, "source": self.source, "fps": self.fps,
                "resolution": self.resolution, "loop": self._loop}

    # ------------------------------------------------------------ the thread
    def _set_state(self, state: str, message: str | None = None) -> None:
        with self._lock:
            self._state, self._message = state, message if message is not None else self._message

    def _run(self) -> None:
        if self._threads > 0:
            torch.set_num_threads(self._threads)
        try:
            while not self._stop.is_set():
                self._play()
                reader = self._reader
                if self._stop.is_set():
                    break
                if reader.error:
                    self._set_state("ended", f"the source stopped: {reader.error}")
                    break
                if not self._loop:
                    self._set_state("ended", f"the video ended after {self.stats.frames} frames"
                                    + (f" ({reader.warning})" if reader.warning else ""))
                    break
                reader.close()
                self._reader = self._reopen()
                self._runtime.reset()  # a new pass is a new stream: no keyframe carries over the cut
        except Exception as e:  # noqa: BLE001 - shown on the page; the server keeps answering
            why = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
            self._set_state("error", f"segmentation stopped: {why}")
            print(f"lowlatseg: error: segmentation stopped: {why}; the page keeps the last frame", file=sys.stderr)
        finally:
            if self._stop.is_set():
                self._set_state("stopped")
            try:
                self._runtime.close()
            finally:
                self._reader.close()

    def _play(self) -> None:
        """One pass over the reader, paced by the file's frame rate (a live source: as it comes)."""
        reader = self._reader
        period = 1.0 / reader.info.fps if reader.info.fps > 0 and not reader.is_live else 0.0
        start, n = time.perf_counter(), 0
        for frame in reader:
            if self._stop.is_set():
                return
            if self._wait_while_paused(live=reader.is_live):
                if self._stop.is_set():
                    return
                if reader.is_live:
                    continue  # a live source is drained while paused: its frames are not held back
                start = time.perf_counter() - n * period  # the clock resumes where it stopped
            if self._switch_mode():
                start = time.perf_counter() - n * period
            if period:
                delay = start + n * period - time.perf_counter()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -BEHIND_S:
                    start = time.perf_counter() - n * period
            n += 1
            self._segment(frame)

    def _wait_while_paused(self, *, live: bool) -> bool:
        """True if the stream was paused (a live source is not waited for: its frame is dropped)."""
        if not self._paused:
            return False
        while self._paused and not self._stop.is_set() and not live:
            self._stop.wait(0.05)
        return True

    def _switch_mode(self) -> bool:
        with self._lock:
            wanted = self._wanted
        if wanted == self._mode:
            return False
        try:
            runtime = self._make_runtime(wanted)
        except UserError as e:
            with self._lock:
                self._wanted, self._message = self._mode, f"cannot switch to {wanted}: {e}"
            return False
        old, self._runtime = self._runtime, runtime
        old.close()
        self.stats.restart()
        with self._lock:
            self._mode = wanted
        return True

    def _segment(self, frame: np.ndarray) -> None:
        t0 = time.perf_counter()
        result = self._runtime.step(frame)
        labels = result.labels
        if labels.shape != frame.shape[:2]:
            labels = cv2.resize(labels, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
        latency = (time.perf_counter() - t0) * 1000
        index = self.stats.frames
        self.stats.add(latency, result.is_keyframe)
        self.slot.put(Segmented(index=index, frame=frame, labels=labels, is_keyframe=result.is_keyframe))
