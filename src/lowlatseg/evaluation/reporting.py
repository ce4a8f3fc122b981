"""The reporting layer of the evaluation commands: printed tables, JSON files and plots.

The commands (:mod:`lowlatseg.evaluation.commands`) return result dataclasses; here each becomes
the table printed on stdout (``*_table``), and :func:`emit` prints it and writes
``result.to_json()``. The JSON files keep their keys and values (docs/results).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from lowlatseg.evaluation.verdict import verdicts
from lowlatseg.evaluation.commands.bench import LatencyBench, SplitBench
from lowlatseg.evaluation.commands.image import ImageEval
from lowlatseg.evaluation.commands.scheduling import SchedulingEval
from lowlatseg.evaluation.commands.scheduling_video import VideoSchedulingEval
from lowlatseg.evaluation.commands.tradeoff import TradeoffEval
from lowlatseg.evaluation.commands.video import VideoEval
from lowlatseg.outputs import check_parent, write_json
from lowlatseg.propagation.bench import SvconvBench


class Result(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def check_outputs(*paths: Path | None) -> None:
    """Every output path writable, checked before any work (None: not asked for)."""
    for path in paths:
        if path is not None:
            check_parent(path)


def save(result: Result, json_path: Path | None) -> None:
    """Writes the result's JSON to ``json_path`` (atomically) when given."""
    if json_path is not None:
        write_json(result.to_json(), json_path)


def emit(table: str, result: Result, json_path: Path | None) -> None:
    """Prints ``table``, then :func:`save`."""
    print(table)
    save(result, json_path)


def format_table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
    w = max(len(header[0]), *(len(r[0]) for r in rows))
    lines = [f"{header[0]:<{w}}  {header[1]:>7}", f"{'-' * w}  {'-' * 7}"]
    lines += [f"{a:<{w}}  {b:>7}" for a, b in rows]
    return "\n".join(lines)


def image_table(r: ImageEval) -> str:
    """``eval image``: IoU per class, mIoU, and what was scored."""
    out = r.to_json()
    rows = [(k, "-" if v is None else f"{v:.2f}") for k, v in out["per_class_iou"].items()]
    rows.append(("mIoU", f"{out['miou']:.2f}"))
    return (format_table(rows, ("class", "IoU %")) + "\n"
            + f"{r.scores.frames} frames of {r.data} split {r.split}{f' drive {r.drive}' if r.drive else ''}, "
            f"input {r.resolution}, weights {r.weights}")


def format_rows(result: dict[str, Any]) -> str:
    """The protocol's rows (``result``: ``interval`` and ``rows`` as saved), one line per method."""
    rows = result["rows"]
    ref = next((r for r in rows if r["method"] == "per-frame"), None)
    head = f"{'method':<24} {'mIoU':>6} {'% of per-frame':>14} {'ms/frame':>9} {'cost ratio':>10}   mIoU by distance d=0..{result['interval'] - 1}"
    lines = [head, "-" * len(head)]
    for r in rows:
        rel = f"{r['miou'] / ref['miou'] * 100:.1f}" if ref and ref["miou"] else "-"
        cost = f"{r['ms_per_frame'] / ref['ms_per_frame']:.2f}" if ref and r["ms_per_frame"] else "-"
        by_d = " ".join("-" if v is None else f"{v:.1f}" for v in r["miou_by_distance"])
        lines.append(f"{r['method']:<24} {r['miou']:>6.2f} {rel:>14} {r['ms_per_frame'] or 0:>9.1f} {cost:>10}   {by_d}")
    return "\n".join(lines)


def video_table(r: VideoEval) -> str:
    """``eval video`` / ``eval agreement``: one line per method, then what was evaluated."""
    return (format_rows({"interval": r.interval, "rows": r.rows}) + "\n"
            + ", ".join(f"{k} {v}" for k, v in r.source.items()) + f", threads {r.threads}")


def scheduling_table(r: SchedulingEval) -> str:
    """``eval scheduling``: mIoU of every policy per interval, the rules' spreads, chance."""
    rows = r.rows
    names = list(dict.fromkeys(x.policy for x in rows))
    head = f"{'interval':>8} {'keys':>5} " + " ".join(f"{p:>22}" for p in names)
    lines = [head + "\n" + "-" * len(head)]
    for interval in r.intervals:
        rs = [x for x in rows if x.interval == interval]
        cells = " ".join(f"{x.miou:>17.2f}" + (f" ({x.keyframes:>2})" if x.keyframes != rs[0].keyframes else "     ")
                         for x in rs)
        lines.append(f"{'1/' + str(interval):>8} {rs[0].keyframes:>5} {cells}")
    lines.append(f"{r.frames} frames of {r.data} {r.split}; mIoU of each policy at the fixed interval's keyframe count "
                 "(a count in brackets where a rule could not hit it exactly); the deviation (predicted, and true for "
                 f"the oracles): {TARGET_WORDS.get(r.deviation_target, r.deviation_target)}")
    lines.append("lowest..highest mIoU over every rule number giving exactly that count:")
    for interval in r.intervals:
        spreads = [f"{x.policy} {x.miou_range_same_count[0]:.2f}..{x.miou_range_same_count[1]:.2f}"
                   for x in rows if x.interval == interval and x.miou_range_same_count]
        lines.append(f"  1/{interval}: " + ", ".join(spreads))
    for c in r.chances or []:
        rs = [x for x in rows if x.interval == c["interval"] and x.chance_percentile is not None]
        lines.append(
            f"chance at 1/{c['interval']}: fixed started at each phase "
            + " ".join(f"{p['miou']:.2f}" for p in c["fixed_phases"])
            + (f"; {c['samples']} fixed schedules jittered by up to {c['jitter']} frame{'s' * (c['jitter'] != 1)}: p5 {c['miou_p5']:.2f}, "
               f"median {c['miou_p50']:.2f}, p95 {c['miou_p95']:.2f}, {100 * c['share_above_fixed']:.0f} % above fixed"
               if c["samples"] else "; no jittered schedule fits --max-gap")
            + ("; percentile among them: " + ", ".join(f"{x.policy} {x.chance_percentile:.0f}" for x in rs) if rs else ""))
    return "\n".join(lines)


def _yes(ok: bool, count: int, what: str) -> str:
    return f"yes, none is as {what}" if count == 0 else ("yes" if ok else "no")


def tradeoff_table(r: TradeoffEval) -> str:
    """``eval tradeoff``: one line per point."""
    from lowlatseg.evaluation.tradeoff import other_method

    head = f"{'model':<10} {'size':>7} {'method':<22} {'rate':>5} {'mIoU':>6} {'keys':>5} {'mean ms':>8} {'max ms':>8} {'live keys':>9} {'late':>5}"
    lines = [head + "\n" + "-" * len(head)]
    for p in r.points:
        rate = f"1/{p['interval']}" if p["interval"] else "1"
        late = p["live_keyframe_delay_frames"]
        method = f"{p['method']} ({p['propagation']})" if other_method(p["method"], p.get("propagation")) else p["method"]
        lines.append(f"{p['model']:<10} {p['size']:>7} {method:<22} {rate:>5} {p['miou']:>6.2f} {p['keyframe_fraction']:>5.2f} "
                     f"{p['latency_ms']['mean']:>8.1f} {p['latency_ms']['max']:>8.1f} {p['live_keyframe_fraction']:>9.2f} "
                     f"{late['mean'] if late else 0:>5.1f}")
    used = sorted({p["delay_frames"] for p in r.points if p.get("delay_frames")})
    lines.append(f"keys: keyframe fraction of the accuracy run (low-latency: features {'/'.join(map(str, used)) or '-'} frames late"
                 f"{'' if r.delay_frames else ', as late as in the live run'}); live keys, "
                 "late: the live run's keyframe fraction and mean frames from choosing a keyframe to using it")
    for p in r.points:  # a later round may find keyframes later than the delay accuracy was scored with
        late, scored = p["live_keyframe_delay_frames"], p.get("delay_frames")
        if late and scored and late["max"] > scored:
            lines.append(f"note: {p['method']} {p['size']} ({p['propagation']}): keyframe features came up to {late['max']} "
                         f"frames late live, its accuracy is scored at {scored}")
        if p.get("spare_keyframes") and late and scored and set(late["counts"]) != {str(scored)}:
            # spare keyframes fire only after keyframes ready 1 frame late: a replay at one delay
            # has them on every frame (1) or hardly any (> 1); the live run had some of each
            lines.append(f"note: {p['method']} {p['size']} ({p['propagation']}): live keyframe delays "
                         f"{'/'.join(sorted(late['counts'], key=int))} frames, so its live run had "
                         f"{'fewer' if scored == 1 else 'more'} spare keyframes than its accuracy run (delay {scored})")
    for v in verdicts(r.points):
        if v["method"].startswith("low-latency"):
            cost = v["cost_vs_fastest_as_accurate"]
            lines.append(f"{v['method']} {v['size']} 1/{v['interval']} ({v['propagation']}) against the per-frame ladder: "
                         f"{'Pareto-optimal' if v['pareto'] else 'not Pareto-optimal'}"
                         f" (more accurate than every as-fast point: {_yes(v['beats_as_fast'], v['as_fast'], 'fast')}; "
                         f"faster than every as-accurate point: {_yes(v['faster_than_as_accurate'], v['as_accurate'], 'accurate')})"
                         + (f"; {cost:.2f}x the mean latency of the fastest as-accurate one" if cost is not None else ""))
    return "\n".join(lines)


def tradeoff_plot(r: TradeoffEval, path: Path) -> None:
    from lowlatseg.evaluation.tradeoff import plot_tradeoff

    h, w = (int(v) for v in r.resolution.split("x"))
    rounds = f" x {r.rounds} rounds, interleaved" if r.rounds > 1 else ""
    plot_tradeoff(r.points, path, title=f"{r.data} {r.split}, {r.frames} frames (latency: {r.latency_repeat} passes{rounds}), {h}x{w}, "
                  f"{r.threads} threads, stream {'as fast as possible' if r.stream_fps == 0 else f'{r.stream_fps:g} fps'}")


def latency_table(r: LatencyBench) -> str:
    """``bench``: latency statistics of every mode, relative to per-frame's mean."""
    rows, rate = r.rows, r.fps_input
    ref = rows[0]["latency_ms"]["mean"] if rows and rows[0]["mode"] == "per-frame" else None
    head = f"{'mode':<12} {'mean':>8} {'p50':>8} {'p95':>8} {'max':>8} {'fps':>7} {'keyframes':>9}  (ms; % of per-frame mean)"
    lines = [head + "\n" + "-" * len(head)]
    for x in rows:
        L = x["latency_ms"]
        rel = f"  {L['mean'] / ref * 100:.0f}% / {L['max'] / ref * 100:.0f}%" if ref else ""
        lines.append(
            f"{x['mode']:<12} {L['mean']:>8.1f} {L['p50']:>8.1f} {L['p95']:>8.1f} {L['max']:>8.1f} "
            f"{x['fps'] or 0:>7.1f} {x['keyframe_fraction']:>9.2f}{rel}  drift {x['drift_ms']:+.1f} ms, rss {x['rss_mb']:.0f} MiB "
            f"(+{x['rss_growth_mb']:.0f} while streaming)"
            + (f", CPU {x['cpu_ms_per_frame']:.1f} ms a frame ({x['cores_busy']:.2f} cores busy)"
               if x.get("cpu_ms_per_frame") is not None and x.get("cores_busy") is not None else "")
            + (f", warm-up max {x['warmup_latency_ms']['max']:.0f} ms" if x["warmup_latency_ms"] else "")
            + (f", fed up to {x['feed_overshoot_ms']['max']:.1f} ms late ({x['feed_overshoot_ms']['over_1ms']} frames > 1 ms)"
               if x.get("feed_overshoot_ms") and x["feed_overshoot_ms"]["over_1ms"] else "")
            + (f", keyframe features {x['keyframe_delay_frames']['mean']:.1f} frames late (max {x['keyframe_delay_frames']['max']})"
               if x["keyframe_delay_frames"] and x["keyframe_delay_frames"]["max"] > 0 else ""))
    lines.append(f"{r.video}, {r.resolution}, {r.threads} threads, stream at {'as fast as possible' if rate == 0 else f'{rate:g} fps'}, "
                 f"first {r.warmup} frames not measured (warm-up)"
                 + (f"; {r.rounds} rounds: the modes took turns on {r.rounds} consecutive parts of the frames, "
                    f"each part a stream with its own warm-up" if r.rounds > 1 else ""))
    return "\n".join(lines)


def latency_plot(r: LatencyBench, path: Path) -> None:
    """Each mode's latency frame by frame, and its tail."""
    from lowlatseg.evaluation.latency import plot_latency

    rate = r.fps_input
    plot_latency(r.rows, path, title=f"{Path(r.video).name}, {r.resolution}, {r.threads} threads, "
                 f"{'as fast as possible' if rate == 0 else f'{rate:g} fps'}, {r.rows[0]['frames']} measured frames"
                 + (f" in {r.rounds} interleaved rounds" if r.rounds > 1 else ""))


def svconv_table(r: SvconvBench) -> str:
    """``bench svconv``: one line."""
    return (f"sv_conv {r.kernel_size}x{r.kernel_size} (dilation {r.dilation}) on {r.shape}: {r.svconv_ms:.2f} ms compiled "
            f"(the tensor loop used for training: {r.svconv_loop_ms:.2f} ms); 3x3 conv {r.shape.split('x')[1]}->"
            f"{r.shape.split('x')[1]}: {r.conv3x3_ms:.2f} ms; ratio {r.ratio:.2f} ({r.threads} threads)")


def split_table(r: SplitBench) -> str:
    """``bench split``: median ms of each part and its share of the whole network."""
    med = r.ms
    lines = [f"{k:<6} {med[k]:>7.2f} ms  {med[k] / med['whole'] * 100:>5.1f}%" for k in ("low", "high", "head", "whole")]
    lines.append(f"{r.resolution}, {r.threads} threads, median of {r.repeats}")
    return "\n".join(lines)


TARGET_WORDS = {"pixels": "the share of pixels whose label the propagation changes",
                "class-weighted": "each pixel whose label the propagation changes, weighted by its classes' rarity"}


def _ci(r: dict[str, Any]) -> str:
    lo, hi = r["vs_fixed_ci95"]
    return "-" if lo is None or hi is None else f"[{lo:+.2f}, {hi:+.2f}]"


def _video_rule_lines(rows: list[dict[str, Any]], shipped_rule: str, indent: str) -> list[str]:
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


def video_scheduling_table(result: VideoSchedulingEval) -> str:
    """``eval scheduling --video``: per interval the pooled rows, then each video's rows."""
    out = result.to_json()
    head = f"{'rule':<26} {'keys':>6} {'mIoU':>7} {'vs fixed':>8}  {'95 % CI':<16} {'pctl':>5}"
    lines = []
    for entry in out["intervals"]:
        vids = entry["videos"]
        frames = sum(v["frames"] for v in vids)
        lines += ["", f"interval {entry['interval']}: pooled over {len(vids)} video{'s' * (len(vids) != 1)} ({frames} frames)",
                  head, "-" * len(head)]
        lines += _video_rule_lines(entry["pooled"], out["shipped_rule"], "")
        for v in vids:
            lines.append(f"  {Path(v['video']).name}: {v['frames']} frames, {v['fps']:g} fps, {v['resolution']}, "
                         f"{v['blocks']} block{'s' * (v['blocks'] != 1)} of {v['block_frames']} frames")
            lines += _video_rule_lines(v["rows"], out["shipped_rule"], "  ")
    lines.append(f"\nmIoU against the per-frame network; keys: keyframes (each rule matched to fixed's count as near as its "
                 f"number allows); 95 % CI of mIoU - fixed from a paired bootstrap of {out['block_seconds']:g} s blocks "
                 f"({out['bootstrap']} resamples, seed {out['seed']}); pctl: percentile among the chance schedules; "
                 f"the deviation (predicted, and true for the oracles): {TARGET_WORDS.get(out['deviation_target'], out['deviation_target'])}")
    return "\n".join(lines)
