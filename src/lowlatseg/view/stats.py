"""Running latency statistics of the live view: what ``/status.json`` reports.

Conventions: latencies are wall-clock milliseconds of one ``runtime.step`` (plus resizing the
labels to the frame), as ``lowlatseg segment`` counts them. ``frames`` counts every frame
segmented since the server started; ``latency_ms`` and ``keyframe_fraction`` describe the frames
of the current mode only (they restart when the mode is switched, so two modes are never
mixed): mean and max over all of them, p95 over the latest ``window`` of them (bounded memory
on a stream that runs for days). ``recent`` keeps the latest ``history`` frames for the chart.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np


class LatencyStats:
    """Thread-safe: the segmentation thread calls :meth:`add`, the server :meth:`snapshot`."""

    def __init__(self, *, window: int = 3000, history: int = 150) -> None:
        self._lock = threading.Lock()
        self._window: deque[float] = deque(maxlen=window)
        self._recent: deque[tuple[int, float, bool]] = deque(maxlen=history)
        self.frames = 0  # every frame segmented, all modes together
        self._n = 0  # frames of the current mode
        self._sum = 0.0
        self._max = 0.0
        self._keys = 0

    def restart(self) -> None:
        """A new mode starts: its latency figures start from nothing (``frames`` keeps counting)."""
        with self._lock:
            self._window.clear()
            self._n, self._sum, self._max, self._keys = 0, 0.0, 0.0, 0

    def add(self, latency_ms: float, is_keyframe: bool) -> None:
        """Records one segmented frame."""
        with self._lock:
            self._recent.append((self.frames, round(latency_ms, 2), bool(is_keyframe)))
            self.frames += 1
            self._n += 1
            self._sum += latency_ms
            self._max = max(self._max, latency_ms)
            self._keys += bool(is_keyframe)
            self._window.append(latency_ms)

    def snapshot(self) -> dict[str, Any]:
        """``frames``, ``mode_frames``, ``latency_ms`` {mean, p95, max} (0 before any frame),
        ``keyframe_fraction`` and ``recent``: [frame number, latency ms, keyframe] of the latest frames."""
        with self._lock:
            p95 = float(np.percentile(np.fromiter(self._window, float), 95)) if self._window else 0.0
            return {
                "frames": self.frames,
                "mode_frames": self._n,
                "latency_ms": {
                    "mean": round(self._sum / self._n, 2) if self._n else 0.0,
                    "p95": round(p95, 2),
                    "max": round(self._max, 2),
                },
                "keyframe_fraction": round(self._keys / self._n, 4) if self._n else 0.0,
                "recent": [list(r) for r in self._recent],
            }
