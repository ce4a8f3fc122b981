"""The latency / accuracy trade-off (the paper's Figure 1 for us): ``lowlatseg eval tradeoff``.

For every method and mode, at several keyframe rates, on one labelled clip:
mIoU (online over the clip, deterministic: the low-latency mode's keyframe features arrive
``delay_frames`` later, by default as late as the latest keyframe came in the live run) and latency (the same runtime fed the clip's frames as a live stream,
low-latency with its background worker). Points: per-frame; clockwork, flow, uniform,
image-difference and adaptive propagation (all with low-level fusion, as the runtime runs them;
the variants without fusion are in ``eval video``) at fixed intervals; adaptive scheduling and
low-latency at the matched keyframe rates; on request, low-latency at other input sizes and
with other propagation methods (``eval tradeoff --low-latency-sizes``, ``--low-latency-methods``).

The live run keeps its own schedule: each point also records the keyframe fraction it reached
and how many frames late low-latency's keyframe features came (``live_keyframe_fraction``,
``live_keyframe_delay_frames``); fed as fast as possible, one keyframe in flight at a time can
stretch a short fixed interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lowlatseg.defaults import DEFAULT_DELAY_FRAMES, DEFAULT_PROPAGATION_METHOD
from lowlatseg.evaluation.latency import WARMUP_FRAMES, LiveRun, feed_live, live_summary
from lowlatseg.evaluation.video import run_online
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Clockwork, FlowWarp, ImageDifference, Propagator, Uniform
from lowlatseg.runtime.build import build_runtime
from lowlatseg.runtime.config import Inline, RuntimeConfig
from lowlatseg.runtime.frames import prepare
from lowlatseg.scheduling.calibrate import fixed_interval_rate, threshold_for_rate
from lowlatseg.scheduling.policies import AdaptiveThreshold, EveryFrame, Fixed, KeyframePolicy, rule_fields
from lowlatseg.scheduling.predictor import Predictor

NO_SPARE = "low-latency-no-spare"  # the method name of a low-latency point without spare keyframes


@dataclass(frozen=True)
class LadderPoint:
    """A per-frame network a user could pick instead: its name, weights and input size."""

    name: str  # the network's architecture name (e.g. llnet-m)
    model: SplitSegNet
    size: tuple[int, int]  # H, W the frames are resized to (labels are scored at the clip's size)
    weights: str  # where it came from, for the record


def tradeoff_points(
    model: SplitSegNet, adaptive: Propagator, uniform: Uniform, image_difference: ImageDifference,
    predictor: Predictor, images: list[np.ndarray],
    labels: list[np.ndarray], *, rule: str = "instant", num_classes: int, intervals: tuple[int, ...], fps: float, threads: int,
    delay_frames: int | None = None, progress: bool = True, latency_repeat: int = 3, ladder: Sequence[LadderPoint] = (),
    flow_guided: Propagator | None = None, flow_residual: Propagator | None = None,
    scheduled_method: Propagator | None = None, low_latency_sizes: Sequence[tuple[int, int]] = (),
    low_latency_methods: Sequence[Propagator] = (), rounds: int = 1, spare_keyframes: bool = True,
) -> list[dict[str, Any]]:
    """``latency_repeat``: latency is measured on the clip played forwards and backwards this
    many times (a 51-frame clip alone gives too few frames for a stable maximum); ``rounds``: that
    many live passes of every point, the points in turn (``bench --rounds``: a machine whose speed
    drifts slows every point alike), pooled (``latency_rounds``). ``ladder``:
    more per-frame points (other networks or input sizes), measured the same way, after the
    default model's own per-frame point. ``flow_guided``, ``flow_residual``: their rows too, when the propagation
    file has the method. ``scheduled_method``: what the adaptive-scheduled and low-latency points
    propagate with (default ``adaptive``; the runtime's default method, as the runtime runs them).
    ``delay_frames``: frames from choosing a low-latency keyframe to using its features in the
    accuracy run; None: the most the live run measured at this ``fps`` (at least 1). The
    low-latency policy is calibrated for that delay; a live run that measures another delay than
    the policy assumed is run again with the policy recalibrated for it (once), so a point's
    latency and accuracy come from one policy (its number is recorded) at one stream rate.
    ``low_latency_sizes``, ``low_latency_methods``: more low-latency points of ``model`` after all
    others, at these input sizes (H, W; each calibrated on ``low``'s features at its size) and
    propagating with these methods besides ``scheduled_method``: every method at the clip's size
    and every size, the methods in order. ``spare_keyframes``: low-latency points run as the
    runtime does by default (a keyframe on every frame while the stream leaves time for a whole
    ``high``, runtime/stream.py), and the points at the clip's size with ``scheduled_method`` are
    run again without spare keyframes, as ``low-latency-no-spare``; False: low-latency points
    without them only. Every point records ``model``
    (the network's name), ``size`` (HxW), ``propagation`` and ``delay_frames`` (None: inline)."""
    sched_method = scheduled_method if scheduled_method is not None else adaptive
    hw = images[0].shape[:2]
    own = model.config.arch
    live_frames = [f for r in range(latency_repeat) for f in (images if r % 2 == 0 else images[::-1])]
    with torch.inference_mode():
        from lowlatseg.data.transforms import to_tensor

        f_lows = [model.low(to_tensor(im).unsqueeze(0)) for im in images]
    lows: dict[tuple[int, ...], list[torch.Tensor]] = {tuple(hw): f_lows}  # low's features of every frame, by input size (for the low-latency policies)
    for size in low_latency_sizes:
        if tuple(size) not in lows:
            with torch.inference_mode():
                lows[tuple(size)] = [model.low(prepare(im, (int(size[0]), int(size[1]))).contiguous()) for im in images]
    configs: list[tuple[str, Propagator, KeyframePolicy, bool, int | None]] = [("per-frame", Clockwork(), EveryFrame(), False, None)]
    methods: list[tuple[str, Propagator]] = [("clockwork+fuse", Clockwork()), ("flow+fuse", FlowWarp.runtime()), ("uniform+fuse", uniform),
                                             ("image-difference+fuse", image_difference), ("adaptive", adaptive)]
    if flow_guided is not None:
        methods.append(("flow-guided", flow_guided))
    if flow_residual is not None:
        methods.append(("flow-residual", flow_residual))
    for name, m in methods:
        configs += [(name, m, Fixed(n), False, n) for n in intervals]
    # low-latency's number is first calibrated for this delay (the given one, else the default)
    first_delay = delay_frames if delay_frames is not None else DEFAULT_DELAY_FRAMES
    for n in intervals:
        rate = fixed_interval_rate(len(images), n)
        thr = threshold_for_rate(predictor, f_lows, rate, rule=rule)
        configs.append(("adaptive-scheduled", sched_method, AdaptiveThreshold(predictor, thr, rule=rule), False, n))
        thr = threshold_for_rate(predictor, f_lows, rate, delay_frames=first_delay, rule=rule)
        configs.append(("low-latency", sched_method, AdaptiveThreshold(predictor, thr, rule=rule), True, n))
    if spare_keyframes:  # the same policies, keyframes only as they choose them
        configs += [(NO_SPARE, *c[1:]) for c in configs if c[0] == "low-latency"]
    points = []
    runs = [(own, model, tuple(hw), c) for c in configs[:1]]
    runs += [(lp.name, lp.model, lp.size, configs[0]) for lp in ladder]
    runs += [(own, model, tuple(hw), c) for c in configs[1:]]
    for m_i, ll_method in enumerate([sched_method, *low_latency_methods]):
        for size in ([] if m_i == 0 else [tuple(hw)]) + [tuple(s) for s in low_latency_sizes]:
            for n in intervals:
                thr = threshold_for_rate(predictor, lows[size], fixed_interval_rate(len(images), n),
                                         delay_frames=first_delay, rule=rule)
                runs.append((own, model, size, ("low-latency", ll_method, AdaptiveThreshold(predictor, thr, rule=rule), True, n)))
    warm = min(WARMUP_FRAMES, len(live_frames) // 2)

    def spare(name: str) -> bool:
        return spare_keyframes and name == "low-latency"

    def live_pass(net: SplitSegNet, mode: str, size: tuple[int, ...], method: Propagator, policy: KeyframePolicy,
                  name: str) -> LiveRun:
        torch.set_num_threads(threads)
        rt = build_runtime(net, RuntimeConfig(mode=mode, size=(int(size[0]), int(size[1])), threads=threads,
                                              spare_keyframes=spare(name)), method=method, policy=policy)
        with rt:
            run = feed_live(rt, live_frames, fps=fps, warmup=warm)
        torch.set_num_threads(threads)
        return run

    settled: list[tuple[KeyframePolicy, int | None, list[LiveRun], dict[str, Any]]] = []
    bar = tqdm(total=len(runs) * rounds, desc="trade-off", disable=not progress)
    for _, net, size, (name, method, policy, background, every) in runs:
        mode = "low-latency" if background else policy.name
        # latency: live, low-latency as it runs by default (high in slices between frames).
        # Low-latency's number is calibrated for a keyframe delay; by default the delay is the
        # most the live run measured, so a run that finds another delay than its policy assumed
        # recalibrates and runs again (once): latency and accuracy then share one policy. A
        # second pass that finds yet another delay keeps its policy, scored at the delay that
        # policy was calibrated for (the live delays are recorded beside it).
        assumed = first_delay
        delay = None
        for attempt in range(2):
            first = live_pass(net, mode, size, method, policy, name)
            if not background:
                break
            late = live_summary([first])["keyframe_delay_frames"]
            delay = delay_frames if delay_frames is not None else (max(1, late["max"]) if late else assumed)
            if delay == assumed or not isinstance(policy, AdaptiveThreshold):
                break
            if attempt == 1:
                delay = assumed
                break
            # the rate matched for the delay found (one keyframe in flight at a time)
            assumed = delay
            policy = AdaptiveThreshold(predictor, threshold_for_rate(predictor, lows[tuple(size)],
                                                                     fixed_interval_rate(len(images), every or 1),
                                                                     delay_frames=delay, rule=rule), rule=rule)
        bar.update(1)
        # accuracy: deterministic (inline keyframes; low-latency: features ready `delay` frames later)
        rt = build_runtime(net, RuntimeConfig(mode=mode, size=size, executor=Inline(delay or DEFAULT_DELAY_FRAMES),
                                              spare_keyframes=spare(name)), method=method, policy=policy)
        with rt, torch.inference_mode():
            acc = run_online(rt, images, labels, num_classes=num_classes, name=name, interval=max(every or 1, 1))
        settled.append((policy, delay, [first], acc))
    # more rounds: every point again, in turn (backwards in every other round), with its settled
    # policy, so that a machine whose speed drifts slows every point alike
    for r in range(1, rounds):
        order = list(range(len(runs)))
        for i in order[::-1] if r % 2 else order:
            _, net, size, (name, method, _, background, _) = runs[i]
            kept = settled[i][0]
            settled[i][2].append(live_pass(net, "low-latency" if background else kept.name, size, method, kept, name))
            bar.update(1)
    bar.close()
    for (net_name, _, size, (name, method, _, _, every)), (kept, delay, live_runs, acc) in zip(runs, settled):
        live = live_summary(live_runs)
        points.append({
            "model": net_name, "size": f"{size[0]}x{size[1]}", "method": name, "interval": every,
            "propagation": None if name == "per-frame" else getattr(method, "name", None), "miou": acc["miou"], "keyframe_fraction": acc["keyframe_fraction"],
            "latency_ms": live["latency_ms"], "latency_frames": live["frames"], "latency_warmup_frames": live["warmup_frames"],
            "latency_rounds": len(live_runs),
            "live_keyframe_fraction": live["keyframe_fraction"], "live_keyframe_delay_frames": live["keyframe_delay_frames"],
            "delay_frames": delay, "spare_keyframes": spare(name) if name.startswith("low-latency") else None,
            **rule_fields(kept),
        })
    return points


_STYLES = {"per-frame": ("k", "*"), "clockwork+fuse": ("tab:gray", "s"), "flow+fuse": ("tab:blue", "^"),
           "uniform+fuse": ("tab:brown", "v"), "image-difference+fuse": ("tab:pink", "X"), "adaptive": ("tab:green", "o"),
           "flow-guided": ("tab:cyan", "h"), "flow-residual": ("tab:olive", "p"), "adaptive-scheduled": ("tab:orange", "D"),
           "low-latency": ("tab:red", "P"), NO_SPARE: ("maroon", "P")}
_MORE_COLORS = ("tab:purple", "gold", "navy")  # a mode's points with other propagation methods


def other_method(method: str, propagation: str | None) -> bool:
    """A scheduled point (adaptive-scheduled, low-latency) that propagates with another method
    than the runtime's default: the table and the plot name the method."""
    return method in ("adaptive-scheduled", "low-latency", NO_SPARE) and propagation not in (None, DEFAULT_PROPAGATION_METHOD)


def _series(points: list[dict[str, Any]], name: str, color: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The video points of method ``name`` as plot series (label, colour, points along the keyframe
    rate): one per propagation method, labelled with it where a scheduled mode propagates with
    another method than the runtime's default."""
    pts = [p for p in points if p["method"] == name]
    props = list(dict.fromkeys(p["propagation"] for p in pts))
    out = []
    for i, prop in enumerate(props):
        label = f"{name}, {prop}" if other_method(name, prop) else name
        out.append((label, color if i == 0 else _MORE_COLORS[(i - 1) % len(_MORE_COLORS)],
                    sorted((p for p in pts if p["propagation"] == prop), key=lambda p: p["interval"] or 0)))
    return out


def plot_tradeoff(points: list[dict[str, Any]], path: Path, *, title: str) -> None:
    """Mean (left) and max (right) latency against mIoU: the per-frame ladder as labelled stars,
    each video method as a line along its keyframe rates at the clip's size; a mode's points at
    other input sizes (``--low-latency-sizes``) as hollow markers joined, rate by rate, with its
    point at the clip's size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110, sharey=True)
    for ax, stat in zip(axes, ("mean", "max")):
        for name, (color, marker) in _STYLES.items():
            if name == "per-frame":  # the ladder: one point per network and size, each labelled, no line
                ladder = [p for p in points if p["method"] == name]
                for p in ladder:
                    x, y = p["latency_ms"][stat], p["miou"]
                    ax.plot([x], [y], color=color, marker=marker, markersize=9, linestyle="none",
                            label="per-frame (ladder)" if p is ladder[0] else None)
                    ax.annotate(f"{p.get('model', '')} {p.get('size', '')}", (x, y), textcoords="offset points",
                                xytext=(5, -10), fontsize=7)
                continue
            for label, c, pts in _series(points, name, color):
                main = pts[0].get("size")  # the clip's size comes first; other sizes after it
                own = [p for p in pts if p.get("size") == main]
                xs, ys = [p["latency_ms"][stat] for p in own], [p["miou"] for p in own]
                ax.plot(xs, ys, color=c, marker=marker, label=label, linewidth=1.2, markersize=7)
                for p, x, y in zip(own, xs, ys):
                    if p["interval"]:  # spare keyframes: the policy's rate plus a keyframe whenever there is time
                        ax.annotate(f"1/{p['interval']}" + (" + spare" if p.get("spare_keyframes") else ""), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color=c)
                others = [p for p in pts if p.get("size") != main]
                for n in sorted({p["interval"] or 0 for p in others}):  # one dotted line per rate, along the input size
                    line = sorted((p for p in pts if (p["interval"] or 0) == n), key=lambda p: p["latency_ms"][stat])
                    ax.plot([p["latency_ms"][stat] for p in line], [p["miou"] for p in line], color=c, linestyle=":",
                            linewidth=1, marker=marker, markersize=7, markerfacecolor="none")
                    for p in line:
                        if p.get("size") != main:
                            ax.annotate(f"1/{n} {p['size']}", (p["latency_ms"][stat], p["miou"]), textcoords="offset points",
                                        xytext=(4, -9), fontsize=7, color=c)
        ax.set_xlabel(f"{stat} latency (ms)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mIoU (%)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
