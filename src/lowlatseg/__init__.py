"""lowlatseg: low-latency semantic segmentation of video streams (Li, Shi, Lin, CVPR 2018).

Public API (imported lazily so that ``lowlatseg --help`` stays instant)::

    from lowlatseg import load_model, build_runtime, RuntimeConfig, VideoReader
    model = load_model()                      # the bundled default model
    runtime = build_runtime(model, RuntimeConfig(mode="low-latency", size=(360, 480)))
    for frame in VideoReader("clip.mp4"):     # H x W x 3 uint8 RGB
        result = runtime.step(frame)          # FrameResult: labels, is_keyframe, keyframe_index, compute_ms
    runtime.close()
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "lowlatseg.checkpoint",
    "export_weights": "lowlatseg.checkpoint",
    "build_runtime": "lowlatseg.runtime.build",
    "RuntimeConfig": "lowlatseg.runtime.config",
    "StreamRuntime": "lowlatseg.runtime.stream",
    "FrameResult": "lowlatseg.runtime.frames",
    "VideoReader": "lowlatseg.io.video",
    "VideoWriter": "lowlatseg.io.video",
    "SplitSegNet": "lowlatseg.nn.splitnet",
    "SplitNetConfig": "lowlatseg.nn.splitnet",
    "sv_conv": "lowlatseg.propagation.svconv",
    "UserError": "lowlatseg.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lowlatseg' has no attribute {name!r}")
