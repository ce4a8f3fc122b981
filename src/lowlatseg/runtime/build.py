"""One call that builds a runtime for a mode, loading the learned parts it needs."""

from __future__ import annotations

from pathlib import Path

import torch

from lowlatseg.errors import UserError
from lowlatseg.defaults import DEFAULT_DELAY_FRAMES, DEFAULT_PROPAGATION_METHOD, MAX_DELAY_FRAMES, WORKERS
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Clockwork, Propagator
from lowlatseg.runtime.executors import InlineExecutor, KeyExecutor, ThreadExecutor
from lowlatseg.runtime.sliced import SlicedExecutor
from lowlatseg.runtime.stream import MODES, StreamRuntime
from lowlatseg.scheduling.rules import ACCUMULATED, INSTANT
from lowlatseg.scheduling.policies import (
    AdaptiveThreshold, EveryFrame, Fixed, KeyframePolicy, check_budget, check_interval, check_threshold,
)


PROPAGATION_METHODS = ("adaptive", "flow-guided")  # the learned methods a runtime can propagate with


def build_runtime(
    mode: str,
    model: SplitSegNet,
    *,
    propagation: str | Path | None = None,
    scheduler: str | Path | None = None,
    interval: int | None = None,
    threshold: float | None = None,
    budget: float | None = None,
    size: tuple[int, int] | int | None = (360, 480),
    delay_frames: int | None = None,
    parallel: bool = True,
    threads: int | None = None,
    worker: str = "sliced",
    max_delay: int = MAX_DELAY_FRAMES,
    propagation_method: str = DEFAULT_PROPAGATION_METHOD,
) -> StreamRuntime:
    """``mode``: per-frame | fixed | adaptive | low-latency.

    ``propagation_method``: ``adaptive`` (the paper's) or ``flow-guided`` (DIS flow, then learned
    kernels; propagation/flow_guided.py), both from the ``propagation`` file.

    fixed uses ``interval`` (default 5); adaptive uses the deviation predictor with the instant
    rule and ``threshold``, or the accumulated rule and ``budget`` (neither: the rule and number
    stored with the scheduler); low-latency uses ``interval`` when given, else
    the adaptive policy. ``parallel=False`` runs low-latency's keyframes inline (the sequential
    twin used for deterministic evaluation, together with ``delay_frames``, by default
    ``DEFAULT_DELAY_FRAMES``: the delay measured live on a 15 Hz stream, as the evaluation
    commands use). ``worker``: where live low-latency runs a keyframe's ``high``: ``sliced``
    (default: between frames, with every core, on the stream's compute thread) or ``parallel``
    (on a worker thread with one core, at the same time as the frames); runtime/executors.py.
    ``max_delay``: sliced only: when frames come faster than they are answered, a keyframe's
    features are ready at most this many frames after it (larger: lower latency for such
    streams, staler features).
    ``threads`` (default: torch's current count): the stream's thread count; with
    ``parallel``, all of them while no keyframe is in flight, half while one is.
    """
    from lowlatseg.propagation.weights import load_propagation

    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    if worker not in WORKERS:
        raise UserError(f"unknown worker {worker!r}; choose one of: {', '.join(WORKERS)}")
    if interval is not None:
        check_interval(interval)
    if threshold is not None and budget is not None:
        raise UserError("give --threshold (instant rule) or --budget (accumulated rule), not both")
    if threshold is not None:
        check_threshold(threshold)
    if budget is not None:
        check_budget(budget)
    policy: KeyframePolicy
    method: Propagator = Clockwork()  # per-frame: never asked to propagate
    if propagation_method not in PROPAGATION_METHODS:
        raise UserError(f"unknown propagation method {propagation_method!r}; choose one of: {', '.join(PROPAGATION_METHODS)}")
    if mode != "per-frame" and propagation_method == "flow-guided":
        from lowlatseg.propagation.weights import load_flow_guided

        guided = load_flow_guided(propagation, model)
        if guided is None:
            raise UserError("this propagation file has no flow-guided method; retrain it with the propagation trainer "
                            "or use the adaptive method")
        method = guided
    elif mode != "per-frame":
        _, method, _ = load_propagation(propagation, model)
    if mode == "per-frame":
        policy = EveryFrame()
    elif mode == "fixed" or (mode == "low-latency" and interval is not None):
        policy = Fixed(interval or 5)
    else:
        from lowlatseg.scheduling.weights import load_scheduler

        predictor, defaults = load_scheduler(scheduler, model)
        if threshold is not None:
            policy = AdaptiveThreshold(predictor, threshold, rule=INSTANT)
        elif budget is not None:
            policy = AdaptiveThreshold(predictor, budget, rule=ACCUMULATED)
        else:
            policy = AdaptiveThreshold(predictor, defaults.value(defaults.rule), rule=defaults.rule)
    background = mode == "low-latency"
    # the main path's count while no keyframe is in flight: the caller's, read before the worker
    # thread exists (torch.get_num_threads() reports the last count set by any thread)
    threads = threads or torch.get_num_threads()
    executor: KeyExecutor = InlineExecutor()
    split = None
    if background and parallel and worker == "sliced":
        executor = SlicedExecutor(threads, max_delay=max_delay)
    elif background and parallel:
        executor, split = ThreadExecutor(), (threads, max(1, threads // 2))
    if background and not parallel and delay_frames is None:
        delay_frames = DEFAULT_DELAY_FRAMES  # the same as the evaluation commands: measured, not optimistic
    return StreamRuntime(model, method=method, policy=policy, background=background, executor=executor,
                         delay_frames=delay_frames, size=size, threads=split)
