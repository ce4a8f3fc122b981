"""Evaluation commands: run, print a table, write JSON (atomically)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from lowlatseg.checkpoint import DEFAULT_WEIGHTS, load_model
from lowlatseg.errors import UserError
from lowlatseg.outputs import check_parent, write_json
from lowlatseg.scheduling.policies import RULES, check_interval
from lowlatseg.defaults import DEFAULT_DELAY_FRAMES, DEFAULT_PROPAGATION_METHOD, MAX_DELAY_FRAMES
from lowlatseg.evaluation.image import evaluate_images
from lowlatseg.evaluation.latency import WARMUP_FRAMES

if TYPE_CHECKING:
    from lowlatseg.evaluation.schedules import Chance


_check_parent = check_parent  # the name the commands here use


def _check_classes(model: Any, ds: Any) -> None:
    if model.config.num_classes != ds.labels.num_classes:
        raise UserError(
            f"the weights predict {model.config.num_classes} classes but the {ds.labels.name} data has "
            f"{ds.labels.num_classes}; pass weights trained on this label set"
        )


def format_table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
    w = max(len(header[0]), *(len(r[0]) for r in rows))
    lines = [f"{header[0]:<{w}}  {header[1]:>7}", f"{'-' * w}  {'-' * 7}"]
    lines += [f"{a:<{w}}  {b:>7}" for a, b in rows]
    return "\n".join(lines)


def run_image_eval(
    *, data: str, split: str, dataset: str = "camvid", weights: str | None = None,
    json_path: Path | None = None, progress: bool = True, drive: str | None = None, size: str | None = None,
) -> dict[str, Any]:
    """``lowlatseg eval image``: per-frame network on a labelled split (``drive``: only that
    drive's frames, e.g. a held-out dev-test drive; ``size`` HxW: the network runs on frames
    resized to it and its labels are scored at the frames' own size, nearest-neighbour)."""
    from lowlatseg.data.datasets import open_dataset
    from lowlatseg.runtime import parse_size

    if json_path is not None:
        _check_parent(json_path)
    input_size = None
    if size is not None:
        parsed = parse_size(size)
        if not isinstance(parsed, tuple):
            raise UserError(f"--size {size} must be HxW (e.g. 288x384)")
        input_size = parsed
    ds = open_dataset(dataset, data, split, drive=drive)
    model = load_model(weights)
    _check_classes(model, ds)
    bar = tqdm(range(len(ds)), desc=f"eval {split}", unit="frame", disable=not progress)
    res = evaluate_images(model, ds, progress=bar, size=input_size)
    out = res.to_dict()
    out.update({
        "weights": str(weights or DEFAULT_WEIGHTS),
        "data": str(data),
        "split": split,
        "drive": drive,
        "resolution": "native" if input_size is None else f"{input_size[0]}x{input_size[1]}",
        "threads": torch.get_num_threads(),
    })
    rows = [(k, "-" if v is None else f"{v:.2f}") for k, v in out["per_class_iou"].items()]
    rows.append(("mIoU", f"{out['miou']:.2f}"))
    print(format_table(rows, ("class", "IoU %")))
    print(f"{out['frames']} frames of {data} split {split}{f' drive {drive}' if drive else ''}, "
          f"input {out['resolution']}, weights {out['weights']}")
    if json_path is not None:
        write_json(out, json_path)
    return out


def _load_prop(weights: str | None, propagation: str | None):
    from lowlatseg.propagation.weights import load_propagation

    model = load_model(weights)
    prop_cfg, adaptive, uniform = load_propagation(propagation, model)
    return model, prop_cfg, adaptive, uniform


def _load_guided(propagation: str | None, model: Any) -> Any:
    from lowlatseg.propagation.weights import load_flow_guided

    return load_flow_guided(propagation, model)


def _open_clip(data: str, split: str, weights: str | None, propagation: str | None, max_frames: int):
    """A labelled clip in time order, the base model with its propagation (classes checked), and
    how many frames to use: (ds, n, model, prop_cfg, adaptive, uniform)."""
    from lowlatseg.data.camvid import camvid
    from lowlatseg.evaluation.video import check_time_order

    ds = camvid(data, split)
    check_time_order(ds.samples)
    model, prop_cfg, adaptive, uniform = _load_prop(weights, propagation)
    _check_classes(model, ds)
    n = len(ds) if not max_frames else min(max_frames, len(ds))
    return ds, n, model, prop_cfg, adaptive, uniform


def _finish_video(result: dict[str, Any], extra: dict[str, Any], json_path: Path | None) -> dict[str, Any]:
    from lowlatseg.evaluation.video import format_rows

    result.update(extra)
    result["threads"] = torch.get_num_threads()
    print(format_rows(result))
    print(", ".join(f"{k} {v}" for k, v in extra.items()) + f", threads {result['threads']}")
    if json_path is not None:
        write_json(result, json_path)
    return result


def _scheduled_rows(model: Any, ds: Any, n: int, interval: int, *, propagation: str | None,
                    scheduler: str | None, delay_frames: int, progress: bool) -> list[dict[str, Any]]:
    """``adaptive-scheduled`` and ``low-latency`` rows at the fixed protocol's keyframe rate."""
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation.video import run_online
    from lowlatseg.runtime.build import build_runtime
    from lowlatseg.scheduling.calibrate import fixed_interval_rate, threshold_for_rate
    from lowlatseg.scheduling.weights import load_scheduler

    images = [ds[i][0] for i in range(n)]
    labels = [ds[i][1] for i in range(n)]
    predictor, defaults = load_scheduler(scheduler, model)
    other = "instant" if defaults.rule == "accumulated" else "accumulated"
    rate = fixed_interval_rate(n, interval)
    with torch.inference_mode():
        f_lows = [model.low(to_tensor(im).unsqueeze(0)) for im in images]
    rows = []
    # the shipped rule, then the other rule for comparison; low-latency with the shipped rule
    for name, mode, rule in (("adaptive-scheduled", "adaptive", defaults.rule),
                             (f"adaptive-scheduled-{other}", "adaptive", other),
                             ("low-latency", "low-latency", defaults.rule)):
        # match the rate of the mode as it really runs (low-latency: keyframes take effect later)
        value = threshold_for_rate(predictor, f_lows, rate, rule=rule,
                                   delay_frames=delay_frames if mode == "low-latency" else 0)
        rt = build_runtime(mode, model, propagation=propagation, scheduler=scheduler,
                           threshold=value if rule == "instant" else None, budget=value if rule == "accumulated" else None,
                           size=images[0].shape[:2], parallel=False, delay_frames=delay_frames)
        with rt, torch.inference_mode():
            row = run_online(rt, images, labels, num_classes=ds.labels.num_classes, name=name, interval=interval)
        row["rule"] = rule
        row["threshold" if rule == "instant" else "budget"] = round(value, 5)
        if mode == "low-latency":
            row["delay_frames"] = delay_frames
        rows.append(row)
        if progress:
            tqdm.write(f"{name}: keyframe fraction {row['keyframe_fraction']:.3f} (fixed: {rate:.3f}), mIoU {row['miou']:.2f}")
    return rows


def run_video_eval(
    *, data: str, split: str, interval: int, weights: str | None = None, propagation: str | None = None,
    json_path: Path | None = None, progress: bool = True, max_frames: int = 0, scheduled: bool = True,
    scheduler: str | None = None, delay_frames: int = DEFAULT_DELAY_FRAMES,
) -> dict[str, Any]:
    """``lowlatseg eval video``: the propagation benchmark on a labelled clip."""
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation.video import run_protocol, standard_rows

    check_interval(interval)
    if json_path is not None:
        _check_parent(json_path)
    ds, n, model, prop_cfg, adaptive, uniform = _open_clip(data, split, weights, propagation, max_frames)
    frames = ((to_tensor(ds[i][0]).unsqueeze(0), ds[i][1]) for i in range(n))
    bar = tqdm(total=n, desc=f"eval video N={interval}", unit="frame", disable=not progress)
    rows = standard_rows(prop_cfg, adaptive, uniform, flow_guided=_load_guided(propagation, model))
    res = run_protocol(model, rows, frames, interval=interval,
                       num_classes=ds.labels.num_classes, progress=bar.update)
    bar.close()
    if scheduled:
        res["rows"] += _scheduled_rows(model, ds, n, interval, propagation=propagation,
                                       scheduler=scheduler, delay_frames=delay_frames, progress=progress)
    h, w = ds[0][0].shape[:2]
    classes = list(ds.labels.classes)
    for r in res["rows"]:
        r["per_class_iou"] = dict(zip(classes, r["per_class_iou"]))
    extra = {"data": str(data), "split": split, "resolution": f"{h}x{w}",
             "weights": str(weights or DEFAULT_WEIGHTS), "propagation": str(propagation or "bundled")}
    return _finish_video(res, extra, json_path)


def run_scheduling_eval(
    *, data: str, split: str, intervals: tuple[int, ...] = (2, 3, 5, 8), max_gap: int = 12, weights: str | None = None,
    propagation: str | None = None, scheduler: str | None = None, json_path: Path | None = None, progress: bool = True,
    max_frames: int = 0, chance_samples: int = 2000,
) -> dict[str, Any]:
    """``lowlatseg eval scheduling``: every keyframe rule at exactly the fixed intervals' keyframe
    counts, with the true deviation and the ground truth as references, and what chance gives at
    the same rate (``chance_samples`` jittered fixed schedules, seed 0; 0: none) as the yardstick
    (see evaluation/schedules.py)."""
    from lowlatseg.data.transforms import to_tensor
    from lowlatseg.evaluation import schedules as sc
    from lowlatseg.scheduling.weights import load_scheduler

    if any(n < 1 for n in intervals):
        raise UserError("every --intervals value must be at least 1")
    if max_gap < max(intervals):
        raise UserError(f"--max-gap {max_gap} must be at least the largest interval ({max(intervals)})")
    if json_path is not None:
        _check_parent(json_path)
    ds, n, model, _, adaptive, _ = _open_clip(data, split, weights, propagation, max_frames)
    predictor, defaults = load_scheduler(scheduler, model)
    images = [to_tensor(ds[i][0]).unsqueeze(0) for i in range(n)]
    labels = [ds[i][1] for i in range(n)]
    bar = tqdm(total=n, desc="pairs", unit="keyframe", disable=not progress)
    table = sc.pair_table(model, adaptive, predictor, images, labels, num_classes=ds.labels.num_classes,
                          max_gap=max_gap, progress=bar.update)
    bar.close()
    rows, chances = [], []
    for interval in intervals:
        luck = sc.chance(table, interval, samples=chance_samples) if chance_samples else None
        if luck is not None:
            chances.append(_chance_json(luck))
        fixed = sc.fixed_schedule(n, interval)
        want = sc.count_keys(fixed)
        schedules = {"fixed": fixed}
        for source, devs in (("predicted", table.predicted), ("oracle", table.true)):
            for rule in ("instant", "accumulated"):
                schedules[f"{source}-{rule}"] = sc.matched_rule_schedule(table, devs, want, rule=rule)
        schedules["oracle-least-deviation"] = sc.best_schedule(table, sc.deviation_cost(table, table.true), want)
        schedules["ground-truth-best"] = sc.best_schedule(table, sc.linear_cost(table, fixed), want)
        for name, keys_of in schedules.items():
            miou = sc.score(table, keys_of)
            row: dict[str, Any] = {"interval": interval, "policy": name, "miou": round(miou, 2),
                                   "keyframes": sc.count_keys(keys_of), "keyframe_indices": sorted(set(keys_of))}
            if luck is not None and len(luck.scores):
                row["chance_percentile"] = round(luck.percentile(miou), 1)
            source, _, rule = name.partition("-")
            if source in ("predicted", "oracle") and rule in RULES:  # a rule's number can be swept
                spread = sc.same_count_range(table, table.predicted if source == "predicted" else table.true, want, rule=rule)
                row["miou_range_same_count"] = None if spread is None else [round(spread[0], 2), round(spread[1], 2)]
            rows.append(row)
    h, w = ds[0][0].shape[:2]
    out = {"data": str(data), "split": split, "frames": n, "resolution": f"{h}x{w}", "max_gap": max_gap,
           "shipped_rule": defaults.rule, "weights": str(weights or DEFAULT_WEIGHTS), "rows": rows}
    if chance_samples:
        out["chance"] = chances
    names = list(dict.fromkeys(r["policy"] for r in rows))
    head = f"{'interval':>8} {'keys':>5} " + " ".join(f"{p:>22}" for p in names)
    print(head + "\n" + "-" * len(head))
    for interval in intervals:
        rs = [r for r in rows if r["interval"] == interval]
        cells = " ".join(f"{r['miou']:>17.2f}" + (f" ({r['keyframes']:>2})" if r["keyframes"] != rs[0]["keyframes"] else "     ")
                         for r in rs)
        print(f"{'1/' + str(interval):>8} {rs[0]['keyframes']:>5} {cells}")
    print(f"{n} frames of {data} {split}; mIoU of each policy at the fixed interval's keyframe count "
          "(a count in brackets where a rule could not hit it exactly)")
    print("lowest..highest mIoU over every rule number giving exactly that count:")
    for interval in intervals:
        spreads = [f"{r['policy']} {r['miou_range_same_count'][0]:.2f}..{r['miou_range_same_count'][1]:.2f}"
                   for r in rows if r["interval"] == interval and r.get("miou_range_same_count")]
        print(f"  1/{interval}: " + ", ".join(spreads))
    for c in chances:
        rs = [r for r in rows if r["interval"] == c["interval"] and "chance_percentile" in r]
        print(f"chance at 1/{c['interval']}: fixed started at each phase "
              + " ".join(f"{p['miou']:.2f}" for p in c["fixed_phases"])
              + (f"; {c['samples']} fixed schedules jittered by up to {c['jitter']} frame{'s' * (c['jitter'] != 1)}: p5 {c['miou_p5']:.2f}, "
                 f"median {c['miou_p50']:.2f}, p95 {c['miou_p95']:.2f}, {100 * c['share_above_fixed']:.0f} % above fixed"
                 if c["samples"] else "; no jittered schedule fits --max-gap")
              + ("; percentile among them: " + ", ".join(f"{r['policy']} {r['chance_percentile']:.0f}" for r in rs) if rs else ""))
    if json_path is not None:
        write_json(out, json_path)
    return out


def _chance_json(luck: Chance) -> dict[str, Any]:
    """:class:`~lowlatseg.evaluation.schedules.Chance` as JSON (fixed's mIoU is phase 0's)."""
    s = luck.scores
    fixed = luck.phases[0][1] if luck.phases and luck.phases[0][0] == 0 else float("nan")
    out: dict[str, Any] = {
        "interval": luck.interval,
        "fixed_phases": [{"phase": p, "miou": round(m, 2), "keyframes": k} for p, m, k in luck.phases],
        "jitter": luck.jitter, "samples": int(len(s)), "seed": 0,
    }
    if len(s):
        out.update({"miou_p5": round(float(np.percentile(s, 5)), 2), "miou_p50": round(float(np.median(s)), 2),
                    "miou_p95": round(float(np.percentile(s, 95)), 2),
                    "share_above_fixed": round(float(np.mean(s > fixed + 1e-9)), 3)})
    return out


def run_agreement_eval(
    *, video: str, interval: int, size: str = "360", weights: str | None = None, propagation: str | None = None,
    json_path: Path | None = None, progress: bool = True, max_frames: int = 0,
) -> dict[str, Any]:
    """``lowlatseg eval agreement``: the same methods on unlabelled video, scored against the per-frame network."""
    from lowlatseg.evaluation.video import run_protocol, standard_rows
    from lowlatseg.io.video import VideoReader
    from lowlatseg.runtime import network_size, parse_size, prepare

    check_interval(interval)
    if json_path is not None:
        _check_parent(json_path)
    size_spec = parse_size(size)
    model, prop_cfg, adaptive, uniform = _load_prop(weights, propagation)
    reader = VideoReader(video)
    hw = network_size((reader.info.height, reader.info.width), size_spec)

    def frames():
        for i, f in enumerate(reader):
            if max_frames and i >= max_frames:
                break
            yield prepare(f, hw), None

    total = min(reader.info.frames, max_frames) if max_frames and reader.info.frames else (max_frames or reader.info.frames or None)
    bar = tqdm(total=total, desc=f"agreement N={interval}", unit="frame", disable=not progress)
    try:
        rows = standard_rows(prop_cfg, adaptive, uniform, flow_guided=_load_guided(propagation, model))
        res = run_protocol(model, rows, frames(), interval=interval,
                           num_classes=model.config.num_classes, progress=bar.update)
    finally:
        bar.close()
        reader.close()
    extra = {"video": str(video), "resolution": f"{hw[0]}x{hw[1]}", "fps": reader.info.fps,
             "weights": str(weights or DEFAULT_WEIGHTS), "propagation": str(propagation or "bundled"),
             "reference": "per-frame network labels"}
    return _finish_video(res, extra, json_path)


def _decode(video: str, size: str, max_frames: int) -> tuple[list[Any], tuple[int, int], float]:
    """All frames of a video, resized to the network input size (before any clock starts)."""
    import cv2

    from lowlatseg.io.video import VideoReader
    from lowlatseg.runtime import network_size, parse_size

    spec = parse_size(size)
    with VideoReader(video) as reader:
        hw = network_size((reader.info.height, reader.info.width), spec)
        frames: list[np.ndarray] = []
        for f in reader:
            if max_frames and len(frames) >= max_frames:
                break
            frames.append(f if f.shape[:2] == hw else cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_AREA))
        fps = reader.info.fps
        if reader.error or reader.warning:
            tqdm.write(f"lowlatseg: warning: {video}: {reader.error or reader.warning}; measuring the {len(frames)} frames "
                       "before it", file=sys.stderr)
    return frames, hw, fps


def _bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive (start, end) ranges covering 0..n, as equal as possible."""
    cuts = [round(i * n / parts) for i in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def run_latency_bench(
    *, video: str, size: str = "360x480", fps: float | None = None, modes: tuple[str, ...] = ("per-frame", "fixed", "adaptive", "low-latency"),
    interval: int = 5, threshold: float | None = None, budget: float | None = None, weights: str | None = None,
    propagation: str | None = None, scheduler: str | None = None, threads: int = 2, max_frames: int = 0, warmup: int | None = None, repeat: int = 1,
    json_path: Path | None = None, plot_path: Path | None = None, progress: bool = True, keep_latencies: bool = False,
    worker: str = "sliced", max_delay: int = MAX_DELAY_FRAMES, rounds: int = 1,
    propagation_method: str = DEFAULT_PROPAGATION_METHOD,
) -> dict[str, Any]:
    """``lowlatseg bench``: every mode on the same frames, fed as a live stream; ``plot_path``:
    each mode's latency frame by frame and its tail, as a PNG.

    ``rounds``: the frames are cut into this many consecutive parts, and every mode runs on
    each part in turn (round 1: the modes in order, round 2: in reverse order, ...), each part a
    stream of its own with its own warm-up and a newly built runtime. On a machine whose speed
    drifts, the modes then share its fast and slow phases, so their ratios compare like with
    like; with 1 (the default) each mode is one long stream, run one after the other, which is
    what drift and memory growth need."""
    from lowlatseg.evaluation.latency import LiveRun, feed_live, live_summary, plot_latency
    from lowlatseg.runtime.build import build_runtime

    check_interval(interval)
    if fps is not None and (not math.isfinite(fps) or fps < 0):
        raise UserError(f"--fps {fps} is not valid; give the stream rate in frames per second, or 0 for as fast as possible")
    for target in (json_path, plot_path):
        if target is not None:
            _check_parent(target)
    frames, hw, video_fps = _decode(video, size, max_frames)
    if repeat > 1:  # a long stream: the clip played forwards and backwards in turn (no jump at the seams)
        clip = frames
        frames = [f for r in range(repeat) for f in (clip if r % 2 == 0 else clip[::-1])]
    warmup = WARMUP_FRAMES if warmup is None else warmup
    if warmup < 0:
        raise UserError(f"--warmup {warmup} is not valid; give a number of frames >= 0")
    if len(frames) <= warmup:
        raise UserError(f"{video} has {len(frames)} frames; the benchmark needs more than the {warmup} warm-up frames: lower --warmup, or play the clip several times with --repeat")
    if rounds < 1:
        raise UserError(f"--rounds {rounds} is not valid; give a number of rounds >= 1")
    parts = [frames[a:b] for a, b in _bounds(len(frames), rounds)]
    if min(len(p) for p in parts) <= warmup:
        raise UserError(f"--rounds {rounds} cuts the {len(frames)} frames into parts of {min(len(p) for p in parts)}, "
                        f"which leaves nothing after the {warmup} warm-up frames of each part: use fewer rounds, or a "
                        "longer stream with --repeat")
    if fps is None and not video_fps:
        raise UserError(f"{video} does not say its frame rate; pass --fps (0 for as fast as possible)")
    rate = video_fps if fps is None else fps
    model = load_model(weights)
    runs: dict[str, list[LiveRun]] = {m: [] for m in modes}
    bar = tqdm(total=sum(len(p) - warmup for p in parts) * len(modes), desc="bench", unit="frame", disable=not progress)
    for k, part in enumerate(parts):
        for mode in modes if k % 2 == 0 else modes[::-1]:
            torch.set_num_threads(threads)
            rt = build_runtime(mode, model, propagation=propagation, scheduler=scheduler, threshold=threshold,
                               budget=budget, interval=interval if mode in ("fixed",) else None, size=hw, threads=threads,
                               worker=worker, max_delay=max_delay, propagation_method=propagation_method)
            with rt:
                runs[mode].append(feed_live(rt, part, fps=rate, warmup=warmup, on_frame=bar.update))
    bar.close()
    rows = [{"mode": mode, "threads": threads, **live_summary(runs[mode])} for mode in modes]
    if plot_path is not None:
        plot_latency(rows, plot_path, title=f"{Path(video).name}, {hw[0]}x{hw[1]}, {threads} threads, "
                     f"{'as fast as possible' if rate == 0 else f'{rate:g} fps'}, {rows[0]['frames']} measured frames"
                     + (f" in {rounds} interleaved rounds" if rounds > 1 else ""))
    if not keep_latencies:
        for r in rows:
            r.pop("latencies_ms")
    torch.set_num_threads(threads)
    out = {"video": str(video), "resolution": f"{hw[0]}x{hw[1]}", "threads": threads, "fps_input": rate, "worker": worker,
           "max_delay": max_delay if worker == "sliced" else None,
           "frames": len(frames), "repeat": repeat, "rounds": rounds, "interval": interval, "weights": str(weights or DEFAULT_WEIGHTS), "rows": rows}
    ref = rows[0]["latency_ms"]["mean"] if rows and rows[0]["mode"] == "per-frame" else None
    head = f"{'mode':<12} {'mean':>8} {'p50':>8} {'p95':>8} {'max':>8} {'fps':>7} {'keyframes':>9}  (ms; % of per-frame mean)"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        L = r["latency_ms"]
        rel = f"  {L['mean'] / ref * 100:.0f}% / {L['max'] / ref * 100:.0f}%" if ref else ""
        print(f"{r['mode']:<12} {L['mean']:>8.1f} {L['p50']:>8.1f} {L['p95']:>8.1f} {L['max']:>8.1f} "
              f"{r['fps'] or 0:>7.1f} {r['keyframe_fraction']:>9.2f}{rel}  drift {r['drift_ms']:+.1f} ms, rss {r['rss_mb']:.0f} MiB "
              f"(+{r['rss_growth_mb']:.0f} while streaming)"
              + (f", warm-up max {r['warmup_latency_ms']['max']:.0f} ms" if r["warmup_latency_ms"] else "")
              + (f", fed up to {r['feed_overshoot_ms']['max']:.1f} ms late ({r['feed_overshoot_ms']['over_1ms']} frames > 1 ms)"
                 if r.get("feed_overshoot_ms") and r["feed_overshoot_ms"]["over_1ms"] else "")
              + (f", keyframe features {r['keyframe_delay_frames']['mean']:.1f} frames late (max {r['keyframe_delay_frames']['max']})"
                 if r["keyframe_delay_frames"] and r["keyframe_delay_frames"]["max"] > 0 else ""))
    print(f"{video}, {out['resolution']}, {threads} threads, stream at {'as fast as possible' if rate == 0 else f'{rate:g} fps'}, "
          f"first {warmup} frames not measured (warm-up)"
          + (f"; {rounds} rounds: the modes took turns on {rounds} consecutive parts of the frames, "
             f"each part a stream with its own warm-up" if rounds > 1 else ""))
    if json_path is not None:
        write_json(out, json_path)
    return out


def run_tradeoff_eval(
    *, data: str, split: str, intervals: tuple[int, ...] = (2, 3, 5, 8), fps: float = 15.0, weights: str | None = None,
    propagation: str | None = None, scheduler: str | None = None, threads: int = 2, delay_frames: int | None = None,
    plot_path: Path | None = None, json_path: Path | None = None, progress: bool = True, max_frames: int = 0,
    latency_repeat: int = 3, ladder: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """``lowlatseg eval tradeoff``: mean / max latency against mIoU for every method and mode.

    ``ladder``: per-frame points besides the model's own, each ``WEIGHTS`` (at the clip's size) or
    ``WEIGHTS@HxW``; None: every bundled network at the clip's size and the model at
    ``LADDER_SIZES`` (see :func:`ladder_points`)."""
    from lowlatseg.evaluation.tradeoff import plot_tradeoff, tradeoff_points
    from lowlatseg.scheduling.weights import load_scheduler

    if any(n < 1 for n in intervals):
        raise UserError("every --intervals value must be at least 1")
    for target in (plot_path, json_path):
        if target is not None:
            _check_parent(target)
    from lowlatseg.propagation.methods import ImageDifference

    ds, n, model, prop_cfg, adaptive, uniform = _open_clip(data, split, weights, propagation, max_frames)
    predictor, defaults = load_scheduler(scheduler, model)
    images = [ds[i][0] for i in range(n)]
    labels = [ds[i][1] for i in range(n)]
    torch.set_num_threads(threads)
    members = ladder_points(ladder, model, weights, clip_hw=images[0].shape[:2])
    guided = _load_guided(propagation, model)
    runtime_method = guided if DEFAULT_PROPAGATION_METHOD == "flow-guided" and guided is not None else adaptive
    points = tradeoff_points(model, adaptive, uniform, ImageDifference(prop_cfg), predictor, images, labels, rule=defaults.rule, num_classes=ds.labels.num_classes,
                             intervals=intervals, fps=fps, threads=threads, delay_frames=delay_frames, progress=progress,
                             latency_repeat=latency_repeat, ladder=members, flow_guided=guided, scheduled_method=runtime_method)
    h, w = images[0].shape[:2]
    out = {"data": str(data), "split": split, "frames": n, "resolution": f"{h}x{w}", "threads": threads,
           "stream_fps": fps, "delay_frames": delay_frames, "latency_repeat": latency_repeat, "weights": str(weights or DEFAULT_WEIGHTS),
           "ladder": [{"model": m.name, "size": f"{m.size[0]}x{m.size[1]}", "weights": m.weights} for m in members],
           "points": points}
    head = f"{'model':<10} {'size':>7} {'method':<22} {'rate':>5} {'mIoU':>6} {'keys':>5} {'mean ms':>8} {'max ms':>8} {'live keys':>9} {'late':>5}"
    print(head + "\n" + "-" * len(head))
    for p in points:
        rate = f"1/{p['interval']}" if p["interval"] else "1"
        late = p["live_keyframe_delay_frames"]
        print(f"{p['model']:<10} {p['size']:>7} {p['method']:<22} {rate:>5} {p['miou']:>6.2f} {p['keyframe_fraction']:>5.2f} "
              f"{p['latency_ms']['mean']:>8.1f} {p['latency_ms']['max']:>8.1f} {p['live_keyframe_fraction']:>9.2f} "
              f"{late['mean'] if late else 0:>5.1f}")
    used = sorted({p["delay_frames"] for p in points if p["delay_frames"]})
    print(f"keys: keyframe fraction of the accuracy run (low-latency: features {'/'.join(map(str, used)) or '-'} frames late"
          f"{'' if delay_frames else ', as late as in the live run'}); live keys, "
          "late: the live run's keyframe fraction and mean frames from choosing a keyframe to using it")
    if plot_path is not None:
        plot_tradeoff(points, plot_path, title=f"{data} {split}, {n} frames (latency: {latency_repeat} passes), {h}x{w}, "
                      f"{threads} threads, stream {'as fast as possible' if fps == 0 else f'{fps:g} fps'}")
    if json_path is not None:
        write_json(out, json_path)
    return out


def ladder_points(specs: tuple[str, ...] | None, model: Any, weights: str | None, *, clip_hw: tuple[int, int]) -> list[Any]:
    """The per-frame ladder of ``eval tradeoff`` besides the model's own point (see run_tradeoff_eval)."""
    from lowlatseg.checkpoint import LADDER_SIZES, bundled_models
    from lowlatseg.evaluation.tradeoff import LadderPoint
    from lowlatseg.runtime import parse_size

    hw = (int(clip_hw[0]), int(clip_hw[1]))
    out: list[LadderPoint] = []
    if specs is None:
        own = Path(weights).resolve() if weights else DEFAULT_WEIGHTS.resolve()
        for size in LADDER_SIZES:
            if size != hw:
                out.append(LadderPoint(model.config.arch, model, size, str(weights or DEFAULT_WEIGHTS)))
        for p in bundled_models():
            if p.resolve() != own:
                out.append(LadderPoint(load_model(p).config.arch, load_model(p), hw, str(p)))
        return out
    for spec in specs:
        path, _, size_text = spec.partition("@")
        size = hw
        if size_text:
            parsed = parse_size(size_text)
            if not isinstance(parsed, tuple):
                raise UserError(f"--ladder {spec}: give the size as HxW (e.g. {path}@288x384)")
            size = parsed
        try:
            net = load_model(path)
        except UserError as e:
            raise UserError(f"--ladder {spec} is not a model file ({e})") from None
        out.append(LadderPoint(net.config.arch, net, size, path))
    return out


def run_split_bench(*, size: str = "360x480", weights: str | None = None, repeats: int = 20,
                    json_path: Path | None = None) -> dict[str, Any]:
    """``lowlatseg bench split``: median time of low, high, head (with the labels at the input
    size) and the whole network, as the runtime runs them (the inference copy of the network,
    channels-last input, :func:`upsampled_labels`), interleaved so machine noise hits all alike."""
    import time

    from lowlatseg.nn.inference import for_inference
    from lowlatseg.nn.labels import upsampled_labels
    from lowlatseg.runtime import parse_size
    from lowlatseg.runtime.steady import keep_freed_memory

    keep_freed_memory()  # as every runtime does (runtime/steady.py)
    spec = parse_size(size)
    if not isinstance(spec, tuple):
        raise UserError(f"--size {size!r}: give HxW, e.g. 360x480")
    if json_path is not None:
        _check_parent(json_path)
    model = for_inference(load_model(weights))
    x = torch.rand(1, 3, *spec).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        f_low = model.low(x)
        f_high = model.high(f_low)

        def whole() -> torch.Tensor:
            f = model.low(x)
            return upsampled_labels(model.head(model.high(f), f), spec, dtype=torch.uint8)

        parts = {"low": lambda: model.low(x), "high": lambda: model.high(f_low),
                 "head": lambda: upsampled_labels(model.head(f_high, f_low), spec, dtype=torch.uint8), "whole": whole}
        for fn in parts.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in parts}
        for _ in range(repeats):
            for k, fn in parts.items():
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1000)
    med = {k: round(float(np.median(v)), 2) for k, v in times.items()}
    out = {"resolution": f"{spec[0]}x{spec[1]}", "threads": torch.get_num_threads(), "weights": str(weights or DEFAULT_WEIGHTS),
           "ms": med, "fraction_of_whole": {k: round(med[k] / med["whole"], 3) for k in ("low", "high", "head")}}
    for k in ("low", "high", "head", "whole"):
        print(f"{k:<6} {med[k]:>7.2f} ms  {med[k] / med['whole'] * 100:>5.1f}%")
    print(f"{out['resolution']}, {out['threads']} threads, median of {repeats}")
    if json_path is not None:
        write_json(out, json_path)
    return out
