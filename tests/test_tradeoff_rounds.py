"""``eval tradeoff``'s live passes, with the live feed replaced by a script: which policy each pass
runs, which passes a point keeps, and the order of the rounds (evaluation/tradeoff.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lowlatseg.checkpoint import load_model
from lowlatseg.evaluation import tradeoff as tr
from lowlatseg.evaluation.latency import LiveRun
from lowlatseg.propagation.methods import ImageDifference
from lowlatseg.propagation.weights import load_methods
from lowlatseg.scheduling.weights import load_scheduler


def _run_with_delay(delay: int) -> LiveRun:
    """Six measured frames: a keyframe at frame 0 whose features answer frame ``delay`` first."""
    n = 6
    return LiveRun(latencies_ms=[1.0] * n, is_keyframe=[True] + [False] * (n - 1), labels_from=[-1] * delay + [0] * (n - delay),
                   indices=list(range(n)), warm_ms=[1.0], overshoot_ms=[], rss_mb=[100.0, 100.0], rss_end_mb=100.0,
                   span_s=1.0, warmup=1)


def _points(monkeypatch: pytest.MonkeyPatch, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, *, rounds: int,
            low_latency_delays: list[int], spare: bool = False) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """Every point of one trade-off at interval 2 on 4 random frames; each low-latency pass
    "measures" the next of ``low_latency_delays`` (the last one repeated). Returns the points and
    each pass as (mode, policy); with ``spare``, (mode, spare keyframes on)."""
    model = load_model(tiny_weights)
    learned = load_methods(tiny_prop, model)
    predictor, defaults = load_scheduler(tiny_sched, model)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    labels = [rng.integers(0, model.config.num_classes, (48, 64)).astype(np.uint8) for _ in range(4)]
    passes: list[tuple[str, Any]] = []
    delays = list(low_latency_delays)

    def fake_feed(runtime: Any, frames: Any, *, fps: float, warmup: int) -> LiveRun:
        passes.append((runtime.mode, runtime.spare_keyframes if spare else runtime.policy))
        if runtime.mode != "low-latency":
            return _run_with_delay(0)
        return _run_with_delay(delays.pop(0) if len(delays) > 1 else delays[0])

    monkeypatch.setattr(tr, "feed_live", fake_feed)
    points = tr.tradeoff_points(model, learned.adaptive, learned.uniform, ImageDifference(learned.config), predictor, images,
                                labels, rule=defaults.rule, num_classes=model.config.num_classes, intervals=(2,), fps=5.0,
                                threads=1, progress=False, latency_repeat=1, rounds=rounds, spare_keyframes=spare)
    return points, passes


def test_low_latency_points_run_with_spare_keyframes_and_again_without(monkeypatch: pytest.MonkeyPatch, tiny_weights: Path,
                                                                       tiny_prop: Path, tiny_sched: Path) -> None:
    points, passes = _points(monkeypatch, tiny_weights, tiny_prop, tiny_sched, rounds=1, low_latency_delays=[2], spare=True)
    ll = [p for p in points if p["method"].startswith("low-latency")]
    assert [(p["method"], p["spare_keyframes"]) for p in ll] == [("low-latency", True), ("low-latency-no-spare", False)]
    assert [on for mode, on in passes if mode == "low-latency"] == [True, False]
    assert all(p["spare_keyframes"] is None for p in points if not p["method"].startswith("low-latency"))


def test_a_low_latency_point_keeps_only_the_passes_of_its_settled_policy(monkeypatch: pytest.MonkeyPatch, tiny_weights: Path,
                                                                         tiny_prop: Path, tiny_sched: Path) -> None:
    points, passes = _points(monkeypatch, tiny_weights, tiny_prop, tiny_sched, rounds=3, low_latency_delays=[1])
    ll = [pol for mode, pol in passes if mode == "low-latency"]
    # round 1: the policy calibrated for the assumed delay (2), then the one for the delay found (1);
    # rounds 2 and 3: the settled one only
    assert len(ll) == 4 and ll[0] is not ll[1] and ll[1] is ll[2] is ll[3]
    (p,) = [p for p in points if p["method"] == "low-latency"]
    assert p["delay_frames"] == 1 and p["latency_rounds"] == 3 and p["latency_frames"] == 3 * 6
    assert all(q["latency_rounds"] == 3 for q in points)


def test_rounds_run_every_point_in_turn_backwards_in_every_other_round(monkeypatch: pytest.MonkeyPatch, tiny_weights: Path,
                                                                      tiny_prop: Path, tiny_sched: Path) -> None:
    points, passes = _points(monkeypatch, tiny_weights, tiny_prop, tiny_sched, rounds=3, low_latency_delays=[2])
    k = len(points)  # the assumed delay is found at once: one pass a point a round
    assert len(passes) == 3 * k
    first, second, third = passes[:k], passes[k:2 * k], passes[2 * k:]
    assert [m for m, _ in second] == [m for m, _ in first][::-1] and [m for m, _ in third] == [m for m, _ in first]
    assert [pol for _, pol in second] == [pol for _, pol in first][::-1]


def test_a_second_surprise_keeps_the_policy_it_ran_with(monkeypatch: pytest.MonkeyPatch, tiny_weights: Path,
                                                         tiny_prop: Path, tiny_sched: Path) -> None:
    """Assumed 2, found 1, recalibrated, then found 3: the point stays with the policy calibrated
    for 1 and is scored at 1 (its live delays are recorded as measured)."""
    points, passes = _points(monkeypatch, tiny_weights, tiny_prop, tiny_sched, rounds=2, low_latency_delays=[1, 3, 3])
    ll = [pol for mode, pol in passes if mode == "low-latency"]
    assert len(ll) == 3 and ll[1] is ll[2]
    (p,) = [p for p in points if p["method"] == "low-latency"]
    assert p["delay_frames"] == 1 and p["live_keyframe_delay_frames"]["max"] == 3


def test_the_table_says_when_live_keyframes_came_later_than_scored() -> None:
    from types import SimpleNamespace

    from lowlatseg.evaluation.reporting import tradeoff_table

    point = {"model": "m", "size": "48x64", "method": "low-latency", "interval": 2, "propagation": "adaptive", "miou": 50.0,
             "keyframe_fraction": 0.5, "latency_ms": {"mean": 1.0, "max": 2.0}, "live_keyframe_fraction": 0.5,
             "live_keyframe_delay_frames": {"mean": 1.5, "max": 3, "counts": {"1": 1, "3": 1}}, "delay_frames": 1}
    res = SimpleNamespace(points=[point], delay_frames=None)
    assert "came up to 3 frames late live, its accuracy is scored at 1" in tradeoff_table(res)  # type: ignore[arg-type]
    point["live_keyframe_delay_frames"] = {"mean": 1.0, "max": 1, "counts": {"1": 2}}
    assert "frames late live" not in tradeoff_table(res)  # type: ignore[arg-type]


def test_the_table_says_when_a_spare_point_ran_other_keyframes_live_than_scored() -> None:
    from types import SimpleNamespace

    from lowlatseg.evaluation.reporting import tradeoff_table

    point = {"model": "m", "size": "48x64", "method": "low-latency", "interval": 2, "propagation": "flow", "miou": 50.0,
             "keyframe_fraction": 1.0, "latency_ms": {"mean": 1.0, "max": 2.0}, "live_keyframe_fraction": 0.8,
             "live_keyframe_delay_frames": {"mean": 1.2, "max": 2, "counts": {"1": 4, "2": 1}}, "delay_frames": 2,
             "spare_keyframes": True}
    res = SimpleNamespace(points=[point], delay_frames=None)
    assert "live run had more spare keyframes than its accuracy run (delay 2)" in tradeoff_table(res)  # type: ignore[arg-type]
    point["live_keyframe_delay_frames"] = {"mean": 1.0, "max": 1, "counts": {"1": 5}}
    point["delay_frames"] = 1
    assert "spare keyframes than" not in tradeoff_table(res)  # type: ignore[arg-type]
