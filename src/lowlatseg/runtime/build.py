"""One call that builds a runtime from a :class:`~lowlatseg.runtime.config.RuntimeConfig`,
loading the learned parts the mode needs."""

from __future__ import annotations

import torch

from lowlatseg.defaults import MODES, PROPAGATION_METHODS
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Clockwork, Propagator
from lowlatseg.runtime.config import Inline, Parallel, RuntimeConfig, Sliced
from lowlatseg.runtime.executors import InlineExecutor, KeyExecutor, ThreadExecutor
from lowlatseg.runtime.sliced import SlicedExecutor
from lowlatseg.runtime.stream import StreamRuntime
from lowlatseg.scheduling.policies import AdaptiveThreshold, EveryFrame, Fixed, KeyframePolicy, check_interval
from lowlatseg.scheduling.rules import ACCUMULATED, INSTANT, check_budget, check_threshold


def build_runtime(model: SplitSegNet, config: RuntimeConfig | None = None, *, method: Propagator | None = None,
                  policy: KeyframePolicy | None = None) -> StreamRuntime:
    """The runtime of ``config`` (None: ``RuntimeConfig()``, low-latency with the sliced worker)
    for ``model``.

    The propagation method (``config.propagation_method`` from ``config.propagation``) and the
    keyframe policy (``config.mode`` with its interval, threshold or budget, the adaptive ones
    from ``config.scheduler``) are loaded here; ``method`` / ``policy`` instead: already-built
    parts (evaluation: a method that is not learned, a policy calibrated on the clip).

    ``config.threads`` (default: torch's current count): the stream's thread count; with the
    parallel worker, all of them while no keyframe is in flight, half while one is.
    """
    cfg = config or RuntimeConfig()
    if cfg.mode not in MODES:
        raise UserError(f"unknown mode {cfg.mode!r}; choose one of: {', '.join(MODES)}")
    if cfg.interval is not None:
        check_interval(cfg.interval)
    if cfg.threshold is not None and cfg.budget is not None:
        raise ParameterError("give {threshold} (instant rule) or {budget} (accumulated rule), not both", "threshold", "budget")
    if cfg.threshold is not None:
        check_threshold(cfg.threshold)
    if cfg.budget is not None:
        check_budget(cfg.budget)
    if cfg.propagation_method not in PROPAGATION_METHODS:
        raise UserError(f"unknown propagation method {cfg.propagation_method!r}; choose one of: {', '.join(PROPAGATION_METHODS)}")
    if method is None:
        method = _load_method(cfg, model)
    if policy is None:
        policy = _load_policy(cfg, model)
    background = cfg.mode == "low-latency"
    # the main path's count while no keyframe is in flight: the caller's, read before the worker
    # thread exists (torch.get_num_threads() reports the last count set by any thread)
    threads = cfg.threads or torch.get_num_threads()
    executor: KeyExecutor = InlineExecutor()
    split, delay_frames = None, None
    spec = cfg.executor
    if background and isinstance(spec, Sliced):
        executor, delay_frames = SlicedExecutor(threads, max_delay=spec.max_delay), spec.delay_frames
    elif background and isinstance(spec, Parallel):
        executor, split, delay_frames = ThreadExecutor(), (threads, max(1, threads // 2)), spec.delay_frames
    elif background and isinstance(spec, Inline):
        delay_frames = spec.delay_frames
    return StreamRuntime(model, method=method, policy=policy, background=background, executor=executor,
                         delay_frames=delay_frames, size=cfg.size, threads=split,
                         spare_keyframes=cfg.spare_keyframes)


def _load_method(cfg: RuntimeConfig, model: SplitSegNet) -> Propagator:
    """The propagation of the config's method: learned (from the propagation file), or ``flow``
    (DIS flow, no weights); per-frame: never asked to propagate."""
    from lowlatseg.propagation.weights import runtime_propagator

    if cfg.mode == "per-frame":
        return Clockwork()
    return runtime_propagator(cfg.propagation, model, cfg.propagation_method)  # flow: the file is not read


def _load_policy(cfg: RuntimeConfig, model: SplitSegNet) -> KeyframePolicy:
    """The mode's keyframe policy (see :class:`RuntimeConfig`)."""
    if cfg.mode == "per-frame":
        return EveryFrame()
    if cfg.mode == "fixed" or (cfg.mode == "low-latency" and cfg.interval is not None):
        return Fixed(cfg.interval or 5)
    from lowlatseg.scheduling.weights import load_scheduler

    predictor, defaults = load_scheduler(cfg.scheduler, model)
    if cfg.threshold is not None:
        return AdaptiveThreshold(predictor, cfg.threshold, rule=INSTANT)
    if cfg.budget is not None:
        return AdaptiveThreshold(predictor, cfg.budget, rule=ACCUMULATED)
    return AdaptiveThreshold(predictor, defaults.value(defaults.rule), rule=defaults.rule)
