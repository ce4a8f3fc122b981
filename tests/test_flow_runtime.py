"""``flow`` as a runtime propagation method: DIS optical flow alone (the flow+fuse baseline), no weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lowlatseg.checkpoint import load_model
from lowlatseg.cli import main
from lowlatseg.io.video import VideoReader
from lowlatseg.propagation.methods import FlowWarp
from lowlatseg.runtime.build import build_runtime
from lowlatseg.runtime.config import RuntimeConfig


def _labels(runtime, frames: list[np.ndarray]) -> list[np.ndarray]:
    with runtime:
        return [runtime.step(f).labels for f in frames]


def test_flow_runs_the_baseline_method_without_reading_a_propagation_file(small_video: Path, tiny_weights: Path,
                                                                          tmp_path: Path) -> None:
    model = load_model(tiny_weights)
    frames = list(VideoReader(small_video))
    missing = tmp_path / "no_such_propagation.pt"  # never opened: the flow method has no weights
    by_name = build_runtime(model, RuntimeConfig(mode="fixed", interval=4, size=(96, 128), propagation=missing,
                                                 propagation_method="flow"))
    assert isinstance(by_name.method, FlowWarp)
    given = build_runtime(model, RuntimeConfig(mode="fixed", interval=4, size=(96, 128)), method=FlowWarp.runtime())
    a, b = _labels(by_name, frames), _labels(given, frames)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # the keyframes' labels are the per-frame network's, the others propagated
    per_frame = _labels(build_runtime(model, RuntimeConfig(mode="per-frame", size=(96, 128))), frames)
    assert all(np.array_equal(a[i], per_frame[i]) for i in range(0, len(frames), 4))


def test_segment_low_latency_with_flow(small_video: Path, tiny_weights: Path, tiny_sched: Path, tmp_path: Path) -> None:
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    rc = main(["segment", str(small_video), "--out", str(out), "--weights", str(tiny_weights), "--scheduler", str(tiny_sched),
               "--mode", "low-latency", "--propagation-method", "flow", "--stats", str(stats), "--quiet"])
    assert rc == 0
    s = json.loads(stats.read_text())
    assert s["frames"] == len(list(VideoReader(small_video))) and out.stat().st_size > 0
    assert s["propagation_method"] == "flow"


def test_an_unknown_method_is_refused_with_the_choices(tiny_weights: Path) -> None:
    from lowlatseg.errors import UserError

    with pytest.raises(UserError, match="adaptive, flow-guided, flow-residual, flow"):
        build_runtime(load_model(tiny_weights), RuntimeConfig(mode="fixed", propagation_method="optical"))


def test_the_default_runtime_propagates_with_flow_at_the_runtime_preset(tiny_weights: Path, tmp_path: Path) -> None:
    """Without --propagation-method the runtime (and `segment`, `view`, `bench`) propagates with DIS
    flow at RUNTIME_FLOW_PRESET and never opens a propagation file; the paper's kernels stay one flag away."""
    from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD, PROPAGATION_METHODS, RUNTIME_FLOW_PRESET
    from lowlatseg.propagation.weights import load_methods

    assert DEFAULT_PROPAGATION_METHOD == "flow" and RUNTIME_FLOW_PRESET in ("ultrafast", "fast")
    assert RuntimeConfig().propagation_method == DEFAULT_PROPAGATION_METHOD
    runtime = build_runtime(load_model(tiny_weights), RuntimeConfig(mode="fixed", interval=4, size=(96, 128),
                                                                    propagation=tmp_path / "never_read.pt"))
    assert isinstance(runtime.method, FlowWarp) and runtime.method.flow.preset == RUNTIME_FLOW_PRESET
    assert "adaptive" in PROPAGATION_METHODS
    bundled = load_model()
    flow = load_methods(None, bundled).runtime_method("flow")
    assert isinstance(flow, FlowWarp) and flow.flow.preset == RUNTIME_FLOW_PRESET
