"""The latency benchmark (``lowlatseg bench``): a video fed as a live stream to every mode.

Frame i *arrives* at ``t0 + i / fps`` (``fps = 0``: when the runtime is ready for it, i.e. as
fast as possible). A runtime that is slower than the stream falls behind and its frames wait:
latency = time the labels are ready - time the frame arrived, so waiting counts, exactly as for
a live camera. Frames are never dropped. Decoding and resizing happen before the clock starts
(a camera hands over decoded frames); everything from the frame's arrival on is timed, including
how late the OS wakes the feeding loop for a frame it waited for (``feed_overshoot_ms``, also
reported apart: on a busy or virtual machine it reached 10-19 ms). Every mode runs in the same
process on the same frames: one after the other, or taking turns on consecutive parts of them
(``lowlatseg bench --rounds``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lowlatseg.runtime.stream import StreamRuntime


def _rss_mb() -> float:
    """Resident memory of this process (MiB), from /proc (Linux); 0 where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return 0.0


def summarize(latencies_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(latencies_ms, dtype=np.float64)
    return {"mean": round(float(a.mean()), 2), "p50": round(float(np.percentile(a, 50)), 2),
            "p95": round(float(np.percentile(a, 95)), 2), "max": round(float(a.max()), 2)}


# One second of a 25 fps stream. A stream's first frames carry one-off costs: oneDNN builds its
# kernels on the first use of each shape and thread count, and the low-latency mode's first
# keyframe cycles (one core for the main path, then two) take that path for the first time.
# With 5 warm-up frames, those cycles reached 32-44 ms in our runs, the rest of the stream 22-29 ms.
WARMUP_FRAMES = 25
RSS_EVERY = 50  # measured frames between two readings of resident memory (about 20 us each)


def keyframe_delays(indices: Sequence[int], is_keyframe: Sequence[bool], labels_from: Sequence[int]) -> list[int]:
    """Per chosen keyframe whose features were used before the stream ended: the frames from
    choosing it to the first frame answered from it (0: answered with its own features, as in
    the inline modes; in low-latency mode, how many frames late the worker's ``high`` came).
    ``indices``, ``is_keyframe``, ``labels_from``: each frame's ``FrameResult`` fields ``index``,
    ``is_keyframe``, ``keyframe_index``."""
    first_use: dict[int, int] = {}
    for i, src in zip(indices, labels_from):
        first_use.setdefault(src, i)
    return [first_use[i] - i for i, k in zip(indices, is_keyframe) if k and i in first_use]


@dataclass
class LiveRun:
    """What one stream fed by :func:`feed_live` recorded, frame by frame (measured frames only,
    except ``warm``)."""

    latencies_ms: list[float]
    is_keyframe: list[bool]
    labels_from: list[int]  # each frame's FrameResult.keyframe_index
    indices: list[int]  # each frame's FrameResult.index
    warm_ms: list[float]  # the warm-up frames' latencies
    overshoot_ms: list[float]  # how late the OS woke the feeding loop, for each frame it waited for
    rss_mb: list[float]  # resident memory after the warm-up, every RSS_EVERY measured frames and after the last
    rss_end_mb: float  # after the runtime's reset() at the end
    span_s: float  # first measured frame's arrival to the last frame's labels
    warmup: int
    cpu_s: float | None = None  # CPU time of the whole process (every thread) over the measured frames


def feed_live(runtime: StreamRuntime, frames: Sequence[np.ndarray], *, fps: float, warmup: int = WARMUP_FRAMES,
              on_frame: Callable[[int], None] | None = None) -> LiveRun:
    """Feeds ``frames`` to ``runtime`` as one live stream; the first ``warmup`` frames warm up
    allocators, kernels and the worker and establish the first keyframe (as in a stream that has
    been running). They are fed as fast as possible and kept apart (``warm_ms``)."""
    lat, keys, labels_from, indices, warm, overshoot = [], [], [], [], [], []
    runtime.reset()
    measured = frames[warmup:]
    with torch.inference_mode():
        for f in frames[:warmup]:
            t = time.perf_counter()
            runtime.step(f)
            warm.append((time.perf_counter() - t) * 1000)
        rss = [_rss_mb()]
        cpu_start = cpu_end = time.process_time()
        t_start = time.perf_counter() + 0.01
        t_first_arrival, t_last_done = None, 0.0
        for i, f in enumerate(measured):
            arrival = t_start + i / fps if fps > 0 else time.perf_counter()
            now = time.perf_counter()
            if now < arrival:
                time.sleep(arrival - now)
                # the feeding loop's own lateness: the OS woke it after the frame's arrival time
                # (counted in the latency, as a camera read returning late would be; reported apart)
                overshoot.append((time.perf_counter() - arrival) * 1000)
            r = runtime.step(f)
            done = time.perf_counter()
            cpu_end = time.process_time()
            t_first_arrival = arrival if t_first_arrival is None else t_first_arrival
            t_last_done = done
            lat.append((done - arrival) * 1000)
            keys.append(r.is_keyframe)
            labels_from.append(r.keyframe_index)
            indices.append(r.index)
            if on_frame:
                on_frame(1)
            if (i + 1) % RSS_EVERY == 0 or i + 1 == len(measured):  # and after the last frame
                rss.append(_rss_mb())
    runtime.reset()
    return LiveRun(lat, keys, labels_from, indices, warm, overshoot, rss, _rss_mb(),
                   t_last_done - (t_first_arrival or t_last_done), warmup, cpu_end - cpu_start if len(measured) else None)


def _drift(lat: Sequence[float]) -> float:
    """The last quarter's mean latency minus the first quarter's (ms)."""
    q = max(1, len(lat) // 4)
    return float(np.mean(lat[-q:]) - np.mean(lat[:q]))


def live_summary(runs: Sequence[LiveRun]) -> dict[str, Any]:
    """The benchmark's row for one mode from one or more streams (``lowlatseg bench --rounds``:
    one per round, in time order). Latency, fps, keyframe share and warm-up are over all their
    measured frames together; what only makes sense within one stream is computed per stream:
    keyframe delays (frame numbers restart), ``drift_ms`` (the mean over the streams of each
    one's last quarter minus its first quarter) and ``rss_growth_mb`` (the largest rise of
    resident memory within a stream above that stream's start; resident memory is the whole
    process's, so across streams it also holds what other modes' runtimes left behind).
    ``rss_mb``: at the end of the last stream. With several streams, ``per_stream`` gives each
    one's mean and max latency."""
    lat = [v for r in runs for v in r.latencies_ms]
    keys = [k for r in runs for k in r.is_keyframe]
    warm = [v for r in runs for v in r.warm_ms]
    overshoot = [v for r in runs for v in r.overshoot_ms]
    # keyframe delays within each stream (frame indices restart with every stream)
    delays = [d for r in runs for d in keyframe_delays(r.indices, r.is_keyframe, r.labels_from)]
    span = sum(r.span_s for r in runs)
    cpu = [r.cpu_s for r in runs if r.cpu_s is not None]
    cpu_s = sum(cpu) if len(cpu) == len(runs) else None  # None when any stream did not measure it
    return {
        "drift_ms": round(float(np.mean([_drift(r.latencies_ms) for r in runs])), 2),
        "rss_mb": runs[-1].rss_end_mb,  # at the end, after reset()
        "rss_start_mb": runs[0].rss_mb[0], "rss_growth_mb": round(max(max(r.rss_mb) - r.rss_mb[0] for r in runs), 1),
        "latency_ms": summarize(lat),
        "fps": round(len(lat) / span, 2) if span > 0 else None,
        # what the stream costs in CPU (the whole process, all threads, the feeding loop included):
        # per measured frame, and as cores kept busy on average over the stream's span
        "cpu_ms_per_frame": round(1000 * cpu_s / len(lat), 2) if cpu_s is not None and lat else None,
        "cores_busy": round(cpu_s / span, 2) if cpu_s is not None and span > 0 else None,
        "keyframe_fraction": round(sum(keys) / len(keys), 4),
        # frames from choosing a keyframe to the first frame answered from it (0: inline)
        "keyframe_delay_frames": {"mean": round(float(np.mean(delays)), 2), "max": int(max(delays)),
                                  "counts": {str(d): delays.count(d) for d in sorted(set(delays))}} if delays else None,
        "frames": len(lat),
        "warmup_frames": runs[0].warmup,  # per stream
        "streams": len(runs),
        "per_stream": [{"mean": round(float(np.mean(r.latencies_ms)), 2), "max": round(float(max(r.latencies_ms)), 2)}
                       for r in runs] if len(runs) > 1 else None,
        "warmup_latency_ms": summarize(warm) if warm else None,
        # frames the loop waited for (live rate, runtime ready early): how late the OS woke it
        # for them; None when it never waited (--fps 0, or a runtime always behind the stream)
        "feed_overshoot_ms": {"frames": len(overshoot), "mean": round(float(np.mean(overshoot)), 2),
                              "max": round(float(max(overshoot)), 2),
                              "over_1ms": sum(v > 1.0 for v in overshoot)} if overshoot else None,
        "latencies_ms": [round(v, 2) for v in lat],
    }


def run_live(runtime: StreamRuntime, frames: Sequence[np.ndarray], *, fps: float, warmup: int = WARMUP_FRAMES,
             on_frame: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Feeds ``frames`` to ``runtime`` as one live stream (:func:`feed_live`) and summarises it
    (:func:`live_summary`): the statistics cover the frames after the warm-up, which are reported
    apart (``warmup_latency_ms``)."""
    return live_summary([feed_live(runtime, frames, fps=fps, warmup=warmup, on_frame=on_frame)])


def plot_latency(rows: Sequence[dict[str, Any]], path: Path, *, title: str) -> None:
    """``lowlatseg bench --plot``: each mode's latency frame by frame (left) and how often a frame
    is at least that slow (right, log scale: the tail that a mean hides). ``rows``: the bench's
    rows with ``latencies_ms``; dashed lines at 40 % and 50 % of the per-frame mode's mean (the
    targets of the low-latency mode) when that mode is among them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"per-frame": "k", "fixed": "tab:blue", "adaptive": "tab:orange", "low-latency": "tab:red"}
    fig, (ax, tail) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    spread = []
    for r in rows:
        lat = np.asarray(r["latencies_ms"], dtype=np.float64)
        if lat.size == 0:
            continue
        spread += [lat.min(), lat.max()]
        color = colors.get(r["mode"])
        # dots, not lines: modes that alternate between two costs (keyframes, propagated frames)
        # show as two bands instead of a filled area
        ax.plot(np.arange(lat.size), lat, color=color, linestyle="none", marker=".", markersize=1.5, alpha=0.6,
                label=r["mode"])
        worst = np.sort(lat)[::-1]
        tail.step(worst, np.arange(1, lat.size + 1) / lat.size, where="post", color=color, label=r["mode"])
    ref = next((r["latency_ms"]["mean"] for r in rows if r["mode"] == "per-frame"), None)
    if ref:
        for a in (ax, tail):
            line = a.axhline if a is ax else a.axvline
            for frac, style in ((0.4, ":"), (0.5, "--")):
                line(frac * ref, color="gray", linestyle=style, linewidth=1,
                     label=f"{frac:.0%} of per-frame mean" if a is ax else None)
    if spread and max(spread) > 20 * max(min(spread), 1e-3):  # queueing modes: a log axis keeps the rest visible
        ax.set_yscale("log")
        tail.set_xscale("log")
    ax.set_xlabel("measured frame")
    ax.set_ylabel("latency (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", markerscale=6)
    tail.set_yscale("log")
    tail.set_xlabel("latency (ms)")
    tail.set_ylabel("fraction of frames at least this slow")
    tail.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
