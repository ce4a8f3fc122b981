"""The propagation benchmark (``lowlatseg eval video`` / ``eval agreement``).

Protocol (shared/docs/benchmarks.md): on frames f_0..f_m in time order, f_s is a keyframe for
s = 0, N, 2N, ...; every frame f_{s+d} (d = 0..N-1) is produced from keyframe f_s by the method
under test; one confusion matrix accumulates over all produced frames (also one per d).
d = 0 is the keyframe itself (the per-frame result for every method).

Rows: ``per-frame``; the paper's baselines without low-level fusion (``clockwork``, ``flow``,
``uniform``, ``image-difference``) and ``adaptive-nofuse``; ``adaptive`` (with fusion); so
that nobody has to guess, the baselines *with* fusion (``clockwork+fuse`` ...); and, with
propagation files that have it, ``flow-guided`` (beyond the paper; propagation/flow_guided.py)
with and without fusion, and ``flow-residual`` (with fusion only: its correction reads the
current frame's low-level features, a fusion of its own).

``ms_per_frame`` is the mean compute time of a non-key frame (d > 0): ``low`` on the frame,
the method's propagation, the head at the evaluated resolution and the argmax, measured inline
with the thread count in effect. For ``per-frame`` it is the whole network on every frame.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from lowlatseg.data.camvid import Sample
from lowlatseg.errors import UserError
from lowlatseg.metrics import Confusion
from lowlatseg.nn.inference import for_inference
from lowlatseg.nn.labels import upsampled_labels
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.runtime.steady import keep_freed_memory
from lowlatseg.propagation.methods import (
    Adaptive, Clockwork, Current, FlowWarp, ImageDifference, PropagationConfig, Propagator, Uniform,
)
from lowlatseg.propagation.produce import make_key, propagated_logits
from lowlatseg.scheduling.policies import check_interval

_NAME = re.compile(r"^(?P<seq>.+)_(?P<num>\d+)$")


def check_time_order(samples: Sequence[Sample]) -> None:
    """Frames must be one sequence (``SEQ_NUMBER`` names, one SEQ) with increasing numbers."""
    seqs, nums = [], []
    for s in samples:
        m = _NAME.match(s.name)
        if not m:
            raise UserError(f"frame {s.name} is not named SEQUENCE_NUMBER; the video benchmark needs frames of one clip in time order")
        seqs.append(m["seq"])
        nums.append(int(m["num"]))
    if len(set(seqs)) > 1:
        raise UserError(f"the list mixes sequences ({', '.join(sorted(set(seqs)))}); list the frames of one clip in time order")
    for a, b, sa, sb in zip(nums, nums[1:], samples, samples[1:]):
        if b <= a:
            raise UserError(f"frames are not in time order ({sa.name} is followed by {sb.name}); sort the list by frame number")


@dataclass(frozen=True)
class Row:
    name: str
    method: Propagator | None  # None: per-frame
    fuse: bool


def standard_rows(prop_cfg: PropagationConfig, adaptive: Adaptive, uniform: Uniform, *, with_fused_baselines: bool = True,
                  flow_guided: Propagator | None = None, flow_residual: Propagator | None = None) -> list[Row]:
    """The paper's rows, the fused baselines, and (when the propagation file has them) the
    flow-guided method with and without fusion and the flow-residual method, after them."""
    clock, flow, imgdiff = Clockwork(), FlowWarp.of(prop_cfg), ImageDifference(prop_cfg)
    rows = [
        Row("per-frame", None, True),
        Row("clockwork", clock, False),
        Row("flow", flow, False),
        Row("uniform", uniform, False),
        Row("image-difference", imgdiff, False),
        Row("adaptive-nofuse", adaptive, False),
        Row("adaptive", adaptive, True),
    ]
    if with_fused_baselines:
        rows += [Row(f"{r.name}+fuse", r.method, True) for r in rows[1:5]]
    if flow_guided is not None:
        rows += [Row("flow-guided-nofuse", flow_guided, False), Row("flow-guided", flow_guided, True)]
    if flow_residual is not None:
        rows.append(Row("flow-residual", flow_residual, True))
    return rows


@dataclass(frozen=True)
class ProtocolResult:
    """What :func:`run_protocol` measured: ``frames`` produced, the keyframe ``interval``, and one
    row per method as saved (``method``, ``fuse``, ``miou``, ``miou_by_distance`` for d = 0..N-1,
    ``ms_per_frame``, ``per_class_iou``)."""

    frames: int
    interval: int
    rows: list[dict[str, Any]]


@dataclass
class _Acc:
    total: Confusion
    by_d: list[Confusion]
    ms: list[float] = field(default_factory=list)


def run_protocol(
    model: SplitSegNet,
    rows: list[Row],
    frames: Iterable[tuple[torch.Tensor, np.ndarray | None]],
    *,
    interval: int,
    num_classes: int,
    progress: Callable[[int], None] | None = None,
) -> ProtocolResult:
    """frames: (1 x 3 x H x W image tensor, H x W label or None) in time order. A label of None
    means "score against the per-frame network" (agreement on unlabelled video).

    Runs (and times) the networks as the runtime does: their inference copies (BatchNorm folded,
    channels-last; :func:`~lowlatseg.nn.inference.for_inference`), the same functions to float
    rounding, and the runtime's label map (:func:`~lowlatseg.nn.labels.upsampled_labels`, the
    same labels as upsampling every logit; since 2026-12-07, before which the timings included
    the slower full upsampling)."""
    check_interval(interval)
    keep_freed_memory()  # as every runtime does: no page faults in the timings (runtime/steady.py)
    model = for_inference(model)
    copies: dict[int, Any] = {}
    for r in rows:  # one copy per method object (adaptive and adaptive-nofuse share one)
        if isinstance(r.method, nn.Module) and id(r.method) not in copies:
            copies[id(r.method)] = for_inference(r.method)
    rows = [Row(r.name, copies.get(id(r.method), r.method), r.fuse) for r in rows]
    accs = {r.name: _Acc(Confusion(num_classes), [Confusion(num_classes) for _ in range(interval)]) for r in rows}
    key = None
    n = 0
    with torch.inference_mode():
        for i, (image, label) in enumerate(frames):
            d = i % interval
            image = image.contiguous(memory_format=torch.channels_last)
            size = (image.shape[-2], image.shape[-1])
            t0 = time.perf_counter()
            f_low = model.low(image)
            t_low = time.perf_counter() - t0
            t0 = time.perf_counter()
            per_frame_key = make_key(model, i, image, f_low)
            per_frame = upsampled_labels(model.head(per_frame_key.f_high, f_low), size)[0]
            t_full = t_low + time.perf_counter() - t0
            if d == 0:
                key = per_frame_key
            target = per_frame if label is None else torch.from_numpy(label)
            cur = Current(index=i, image=image, f_low=f_low)
            for r in rows:
                acc = accs[r.name]
                if r.method is None or d == 0:
                    pred = per_frame
                    if r.method is None:
                        acc.ms.append(t_full * 1000)
                else:
                    assert key is not None
                    t0 = time.perf_counter()
                    pred = upsampled_labels(propagated_logits(model, r.method, key, cur, fuse=r.fuse), size)[0]
                    acc.ms.append((t_low + time.perf_counter() - t0) * 1000)
                acc.total.update(pred, target)
                acc.by_d[d].update(pred, target)
            n += 1
            if progress:
                progress(1)
    if n == 0:
        raise UserError("no frames to evaluate")
    out_rows = []
    for r in rows:
        a = accs[r.name]
        out_rows.append({
            "method": r.name,
            "fuse": r.fuse,
            "miou": round(a.total.miou(), 2),
            "miou_by_distance": [round(c.miou(), 2) if c.matrix.sum() else None for c in a.by_d],
            "ms_per_frame": round(float(np.mean(a.ms)), 2) if a.ms else None,
            "per_class_iou": [None if not np.isfinite(v) else round(float(v) * 100, 2) for v in a.total.iou()],
        })
    return ProtocolResult(n, interval, out_rows)


def run_online(
    runtime: Any, frames: Sequence[np.ndarray], labels: Sequence[np.ndarray | None], *, num_classes: int,
    name: str, interval: int, reference: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Runs a runtime online over the clip and scores it like :func:`run_protocol` rows. Labels of
    a runtime at another input size than the clip's are resized (nearest) to the clip's size.

    distance = frame index - index of the keyframe that produced its labels; ``miou_by_distance``
    covers d = 0..interval-1 (larger distances count in ``miou`` only). ``ms_per_frame``: mean
    ``step`` time of the frames not answered by their own keyframe.
    """
    total = Confusion(num_classes)
    by_d = [Confusion(num_classes) for _ in range(interval)]
    ms, n_keys = [], 0
    runtime.reset()
    for i, (f, lab) in enumerate(zip(frames, labels)):
        r = runtime.step(f)
        if lab is None and reference is None:
            raise ValueError("run_online needs labels or a reference for every frame")
        target = np.asarray(lab if lab is not None else reference[i], dtype=np.int64)  # type: ignore[index]
        pred = r.labels
        if pred.shape != target.shape:  # a network run at another input size: labels scored at the clip's
            pred = cv2.resize(pred, (target.shape[1], target.shape[0]), interpolation=cv2.INTER_NEAREST)
        total.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(target))
        d = r.index - r.keyframe_index
        if d < interval:
            by_d[d].update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(target))
        if r.keyframe_index != r.index:
            ms.append(r.compute_ms)
        n_keys += int(r.is_keyframe)
    runtime.reset()
    return {
        "method": name, "fuse": True, "miou": round(total.miou(), 2),
        "miou_by_distance": [round(c.miou(), 2) if c.matrix.sum() else None for c in by_d],
        "ms_per_frame": round(float(np.mean(ms)), 2) if ms else None,
        "per_class_iou": [None if not np.isfinite(v) else round(float(v) * 100, 2) for v in total.iou()],
        "keyframe_fraction": round(n_keys / max(1, len(frames)), 4),
    }
