"""``lowlatseg eval scheduling --video FILE ...``: keyframe rules on long unlabelled video,
scored by agreement with the per-frame network, each rule against ``fixed`` with a paired block
bootstrap interval (evaluation/long_video.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS
from lowlatseg.errors import UserError
from lowlatseg.outputs import check_parent, write_json

DEFAULT_SIZE = "360"
DEFAULT_BOOTSTRAP = 1000


def _check_length(video: str, frames: int, longest: int, what: str) -> None:
    if frames < longest:
        raise UserError(f"{video} has {frames} frames{what}, fewer than the largest --intervals value ({longest}); "
                        "drop it or choose shorter intervals")


def run_video_scheduling_eval(
    *, videos: Sequence[str], intervals: tuple[int, ...] = (5, 8), max_gap: int = 12, size: str = DEFAULT_SIZE,
    weights: str | None = None, propagation: str | None = None, scheduler: str | None = None,
    json_path: Path | None = None, progress: bool = True, max_frames: int = 0, chance_samples: int = 2000,
    bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
) -> dict[str, Any]:
    """Every rule at exactly the fixed intervals' keyframe counts on each video (its own stream)
    and pooled over all of them; mIoU against the per-frame network's labels at the network input
    size (``size``: HxW, a height or 'native'); ``max_frames`` > 0: the first frames of each video
    only. See :func:`~lowlatseg.evaluation.long_video.score_interval` for the rows."""
    from lowlatseg.evaluation import long_video as lv
    from lowlatseg.evaluation.report import _load_prop
    from lowlatseg.io.video import VideoReader
    from lowlatseg.nn.inference import for_inference
    from lowlatseg.runtime import network_size, parse_size, prepare
    from lowlatseg.scheduling.weights import load_scheduler

    if not videos:
        raise UserError("give at least one --video FILE")
    if any(n < 1 for n in intervals):
        raise UserError("every --intervals value must be at least 1")
    longest = max(intervals)
    if max_gap < longest:
        raise UserError(f"--max-gap {max_gap} must be at least the largest interval ({longest})")
    if bootstrap < 1:
        raise UserError(f"--bootstrap {bootstrap} is not valid; it is a number of resamples, at least 1 (e.g. 1000)")
    if json_path is not None:
        check_parent(json_path)
    spec = parse_size(size)
    for v in videos:  # every input checked before the long part starts
        with VideoReader(v) as reader:
            stated = reader.info.frames if not max_frames else min(max_frames, reader.info.frames or max_frames)
        if stated:
            _check_length(v, stated, longest, "" if not max_frames else f" to use (--max-frames {max_frames})")
    base, _, adaptive, _ = _load_prop(weights, propagation)
    predictor, defaults = load_scheduler(scheduler, base)
    # the inference copies the runtime and `eval agreement` run (BatchNorm folded, channels-last)
    model, method, predictor = for_inference(base), for_inference(adaptive), for_inference(predictor)

    tables = []
    for v in videos:
        with VideoReader(v) as reader:
            hw = network_size((reader.info.height, reader.info.width), spec)

            def frames(r: VideoReader = reader, hw: tuple[int, int] = hw) -> Iterator[torch.Tensor]:
                for i, f in enumerate(r):
                    if max_frames and i >= max_frames:
                        break
                    yield prepare(f, hw)

            total = min(reader.info.frames, max_frames) if max_frames and reader.info.frames else (max_frames or reader.info.frames or None)
            bar = tqdm(total=total, desc=Path(v).name, unit="frame", disable=not progress)
            try:
                table = lv.stream_pair_table(model, method, predictor, frames(), num_classes=base.config.num_classes,
                                             max_gap=max_gap, progress=bar.update)
            finally:
                bar.close()
            if reader.error or reader.warning:
                tqdm.write(f"lowlatseg: warning: {v}: {reader.error or reader.warning}; scoring the {table.frames} frames "
                           "before it", file=sys.stderr)
            _check_length(v, table.frames, longest, " that decode")
            tables.append(lv.VideoTable(str(v), reader.info.fps, f"{hw[0]}x{hw[1]}", table))

    out: dict[str, Any] = {
        "reference": "per-frame network labels at the network input size",
        "weights": str(weights or DEFAULT_WEIGHTS), "propagation": str(propagation or "bundled"),
        "scheduler": str(scheduler or "bundled"), "shipped_rule": defaults.rule, "size": size, "max_gap": max_gap,
        "max_frames": max_frames, "seed": seed, "bootstrap": bootstrap, "block_seconds": lv.BLOCK_SECONDS,
        "chance_samples": chance_samples, "threads": torch.get_num_threads(),
        "intervals": [lv.score_interval(tables, n, shipped_rule=defaults.rule, bootstrap=bootstrap, seed=seed,
                                        chance_samples=chance_samples) for n in intervals],
    }
    print(format_result(out))
    if json_path is not None:
        write_json(out, json_path)
    return out


def _ci(r: dict[str, Any]) -> str:
    lo, hi = r["vs_fixed_ci95"]
    return "-" if lo is None or hi is None else f"[{lo:+.2f}, {hi:+.2f}]"


def _lines(rows: list[dict[str, Any]], shipped_rule: str, indent: str) -> list[str]:
    label = {"adaptive": f"adaptive ({shipped_rule})", "oracle": f"oracle ({shipped_rule})"}
    out = []
    for r in rows:
        name = label.get(r["rule"], r["rule"])
        if r["rule"] == "chance":
            name = f"chance (median of {r['samples']})"  # the draw ranked at the median
        miou = "-" if r["miou"] is None else f"{r['miou']:.2f}"
        diff = "-" if r["vs_fixed"] is None else f"{r['vs_fixed']:+.2f}"
        line = f"{indent}{name:<26} {r['keyframes']:>6} {miou:>7} {diff:>8}  {_ci(r):<16}"
        if "chance_percentile" in r:
            line += f" {r['chance_percentile']:>5.0f}"
        if r["rule"] == "chance":
            line += (f"       p5 {r['miou_p5']:.2f}, p50 {r['miou_p50']:.2f}, p95 {r['miou_p95']:.2f}, "
                     f"{100 * r['share_above_fixed']:.0f} % above fixed (keyframes moved by up to {r['jitter']})")
        out.append(line)
    return out


def format_result(out: dict[str, Any]) -> str:
    """The readable table: per interval the pooled rows, then each video's rows."""
    head = f"{'rule':<26} {'keys':>6} {'mIoU':>7} {'vs fixed':>8}  {'95 % CI':<16} {'pctl':>5}"
    lines = []
    for entry in out["intervals"]:
        vids = entry["videos"]
        frames = sum(v["frames"] for v in vids)
        lines += ["", f"interval {entry['interval']}: pooled over {len(vids)} video{'s' * (len(vids) != 1)} ({frames} frames)",
                  head, "-" * len(head)]
        lines += _lines(entry["pooled"], out["shipped_rule"], "")
        for v in vids:
            lines.append(f"  {Path(v['video']).name}: {v['frames']} frames, {v['fps']:g} fps, {v['resolution']}, "
                         f"{v['blocks']} block{'s' * (v['blocks'] != 1)} of {v['block_frames']} frames")
            lines += _lines(v["rows"], out["shipped_rule"], "  ")
    lines.append(f"\nmIoU against the per-frame network; keys: keyframes (each rule matched to fixed's count as near as its "
                 f"number allows); 95 % CI of mIoU - fixed from a paired bootstrap of {out['block_seconds']:g} s blocks "
                 f"({out['bootstrap']} resamples, seed {out['seed']}); pctl: percentile among the chance schedules")
    return "\n".join(lines)
