"""Latency benchmark and trade-off figure, end to end on tiny models and data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lowlatseg.checkpoint import bundled_models
from lowlatseg.cli import main
from lowlatseg.evaluation.latency import summarize

from conftest import CAMVID, needs_camvid


def test_summarize() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["max"] == 100.0 and s["p50"] == 3.0 and s["mean"] == pytest.approx(22.0)


def test_bench_rows_for_every_mode(small_video: Path, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    rc = main(["bench", "--video", str(small_video), "--size", "48x64", "--fps", "0", "--weights", str(tiny_weights),
               "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--threads", "1", "--json", str(out),
               "--interval", "3", "--warmup", "5", "--quiet"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert [r["mode"] for r in res["rows"]] == ["per-frame", "fixed", "adaptive", "low-latency"]
    assert res["resolution"] == "48x64" and res["threads"] == 1 and res["frames"] == 12
    for r in res["rows"]:
        assert set(r["latency_ms"]) == {"mean", "p50", "p95", "max"}
        # 5 warm-up frames establish the stream; the other 7 are measured
        assert r["frames"] == 7 and r["warmup_frames"] == 5 and 0 <= r["keyframe_fraction"] <= 1
        assert r["latency_ms"]["max"] >= r["latency_ms"]["p95"] >= r["latency_ms"]["p50"] > 0
        assert set(r["warmup_latency_ms"]) == {"mean", "p50", "p95", "max"}  # reported apart, not dropped
        # a stream costs CPU, and one process cannot keep more cores busy than the machine has
        assert r["cpu_ms_per_frame"] > 0 and 0 < r["cores_busy"] <= (os.cpu_count() or 1) + 0.5
    rows = {r["mode"]: r for r in res["rows"]}
    assert rows["per-frame"]["keyframe_fraction"] == 1.0
    assert rows["fixed"]["keyframe_fraction"] == pytest.approx(2 / 7, abs=1e-4)  # frames 6 and 9 of 5..11


def test_bench_live_rate_adds_waiting_when_too_slow(small_video: Path, tiny_weights: Path, tiny_prop: Path,
                                                    tiny_sched: Path, tmp_path: Path) -> None:
    """At a stream rate far above what the machine sustains, frames queue: the k-th measured frame
    waits for the k-1 before it, so the mean latency is several times the as-fast-as-possible one."""
    means = {}
    for fps in ("0", "100000"):
        out = tmp_path / f"b{fps}.json"
        assert main(["bench", "--video", str(small_video), "--size", "48x64", "--fps", fps, "--weights",
                     str(tiny_weights), "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--threads", "1",
                     "--json", str(out), "--warmup", "5", "--quiet"]) == 0
        means[fps] = json.loads(out.read_text())["rows"][0]["latency_ms"]["mean"]  # per-frame mode: 7 measured frames
    assert means["100000"] > 2 * means["0"]


@pytest.mark.parametrize("flags, match", [(["--fps", "-1"], "--fps -1"), (["--fps", "nan"], "--fps nan"),
                                          (["--fps", "inf"], "--fps inf"), (["--interval", "0"], "--interval 0")])
def test_bench_bad_flags_fail_before_measuring(flags: list[str], match: str, small_video: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--video", str(small_video), *flags, "--warmup", "2", "--quiet"]) == 2
    err = capsys.readouterr()
    assert match in err.err and len(err.err.strip().splitlines()) == 1 and "per-frame" not in err.out


def test_bench_clip_shorter_than_the_warmup(small_video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--video", str(small_video), "--fps", "0", "--quiet"]) == 2  # 12 frames, default warm-up 25
    err = capsys.readouterr().err
    assert "12 frames" in err and "25 warm-up frames" in err


def test_svconv_microbenchmark(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    assert main(["bench", "svconv", "--channels", "8", "--height", "10", "--width", "12", "--repeats", "3",
                 "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["svconv_ms"] > 0 and res["svconv_loop_ms"] > 0 and res["conv3x3_ms"] > 0 and res["ratio"] == pytest.approx(res["svconv_ms"] / res["conv3x3_ms"], rel=1e-2)


@needs_camvid
def test_tradeoff_plot_and_json(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path) -> None:
    plot, js = tmp_path / "t.png", tmp_path / "t.json"
    rc = main(["eval", "tradeoff", "--data", str(CAMVID), "--split", "val", "--max-frames", "6", "--intervals", "2", "3",
               "--weights", str(tiny_weights), "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched),
               "--threads", "1", "--plot", str(plot), "--json", str(js), "--quiet"])
    assert rc == 0
    assert plot.stat().st_size > 10_000
    res = json.loads(js.read_text())
    methods = {p["method"] for p in res["points"]}
    assert methods == {"per-frame", "clockwork+fuse", "flow+fuse", "uniform+fuse", "image-difference+fuse", "adaptive",
                       "adaptive-scheduled", "low-latency", "low-latency-no-spare"}
    fixed = [p for p in res["points"] if p["method"] == "adaptive"]
    assert [p["keyframe_fraction"] for p in fixed] == [pytest.approx(0.5), pytest.approx(2 / 6, abs=1e-4)]
    assert all(np.isfinite(p["latency_ms"]["mean"]) for p in res["points"])
    # the per-frame ladder: the model at 360x480 and the smaller sizes, and every bundled network at all four
    ladder = [(p["model"], p["size"]) for p in res["points"] if p["method"] == "per-frame"]
    assert ladder[:4] == [("llnet-tiny", "360x480"), ("llnet-tiny", "192x256"), ("llnet-tiny", "240x320"),
                          ("llnet-tiny", "288x384")]
    bundled = ladder[4:]
    assert len(bundled) == 4 * len(bundled_models())
    for arch in {a for a, _ in bundled}:
        assert sorted(s for a, s in bundled if a == arch) == ["192x256", "240x320", "288x384", "360x480"]  # one file per arch
    assert all({"model", "size", "method", "miou", "latency_ms"} <= set(p) for p in res["points"])
    assert all({"mean", "p95", "max"} <= set(p["latency_ms"]) for p in res["points"])
    # low-latency accuracy is scored with the keyframe delay its own live run showed (at least 1)
    for p in res["points"]:
        if not p["method"].startswith("low-latency"):
            assert p["delay_frames"] is None and p["spare_keyframes"] is None
            continue
        assert p["spare_keyframes"] == (p["method"] == "low-latency")
        late = p["live_keyframe_delay_frames"]
        if late:
            assert p["delay_frames"] == max(1, late["max"])
        else:
            # no keyframe came in the recorded live passes: the delay the policy was calibrated for, the
            # default (2) or the one a first live pass found before its policy was recalibrated (under load: 1)
            assert p["delay_frames"] in (1, 2)


def _small_tradeoff(weights: Path, prop: Path, sched: Path) -> list[str]:
    """``eval tradeoff`` on 4 frames of the val clip, one interval, one pass: the flags to extend."""
    return ["eval", "tradeoff", "--data", str(CAMVID), "--split", "val", "--max-frames", "4", "--intervals", "2",
            "--weights", str(weights), "--propagation", str(prop), "--scheduler", str(sched),
            "--threads", "1", "--quiet", "--latency-repeat", "1"]


@needs_camvid
def test_tradeoff_ladder_members(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    js = tmp_path / "t.json"
    base = _small_tradeoff(tiny_weights, tiny_prop, tiny_sched)
    assert main([*base, "--ladder", f"{tiny_weights}@120x160", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    ladder = [(p["model"], p["size"]) for p in res["points"] if p["method"] == "per-frame"]
    assert ladder == [("llnet-tiny", "360x480"), ("llnet-tiny", "120x160")]
    # the model's own point (its weights at the clip's size) and a repeated member are measured once
    assert main([*base, "--ladder", f"{tiny_weights}@120x160", "--ladder", str(tiny_weights), "--ladder",
                 f"{tiny_weights}@360x480", "--ladder", f"{tiny_weights}@120x160", "--json", str(js)]) == 0
    ladder = [(p["model"], p["size"]) for p in json.loads(js.read_text())["points"] if p["method"] == "per-frame"]
    assert ladder == [("llnet-tiny", "360x480"), ("llnet-tiny", "120x160")]
    assert main([*base, "--ladder", str(tiny_prop)]) == 2
    assert "is not a model file" in capsys.readouterr().err
    assert main([*base, "--ladder", f"{tiny_weights}@big"]) == 2
    assert "give the size as HxW" in capsys.readouterr().err


@needs_camvid
def test_tradeoff_low_latency_at_more_sizes(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    js = tmp_path / "t.json"
    base = [*_small_tradeoff(tiny_weights, tiny_prop, tiny_sched), "--ladder", f"{tiny_weights}@120x160"]
    # the clip's own size is not measured twice
    assert main([*base, "--low-latency-sizes", "120x160", "360x480", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    ll = [p for p in res["points"] if p["method"] == "low-latency"]
    assert [p["size"] for p in ll] == ["360x480", "120x160"]  # the clip's size first: it is the mode as run by default
    assert all(p["interval"] == 2 and p["delay_frames"] >= 1 for p in ll)
    # each low-latency point gets its own verdict, named by its size
    assert [(v["size"], v["method"]) for v in res["verdicts"] if v["method"] == "low-latency"] == [
        ("360x480", "low-latency"), ("120x160", "low-latency")]
    assert "low-latency 120x160 1/2 (flow) against the per-frame ladder" in capsys.readouterr().out
    # another propagation method: at the clip's size and at each extra size, after the default method's points
    assert main([*base, "--low-latency-sizes", "120x160", "--low-latency-methods", "flow", "adaptive", "--json", str(js),
                 "--plot", str(tmp_path / "t.png")]) == 0
    res = json.loads(js.read_text())
    ll = [(p["size"], p["propagation"]) for p in res["points"] if p["method"] == "low-latency"]
    assert ll == [("360x480", "flow"), ("120x160", "flow"), ("360x480", "adaptive"), ("120x160", "adaptive")]
    assert [v["propagation"] for v in res["verdicts"] if v["method"] == "low-latency"] == [p for _, p in ll]
    assert "low-latency (adaptive)" in capsys.readouterr().out
    for bad in (["--low-latency-sizes", "240"], ["--low-latency-sizes", "axb"]):
        assert main([*base, *bad]) == 2
        assert "--low-latency-sizes" in capsys.readouterr().err


def test_split_bench(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    assert main(["bench", "split", "--size", "48x64", "--weights", str(tiny_weights), "--repeats", "3",
                 "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["ms"]) == {"low", "high", "head", "whole"} and res["resolution"] == "48x64"
    assert all(v > 0 for v in res["ms"].values())


def test_long_stream_fields(small_video: Path, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "--video", str(small_video), "--size", "48x64", "--fps", "0", "--repeat", "3", "--weights",
                 str(tiny_weights), "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--threads", "1",
                 "--json", str(out), "--warmup", "5", "--quiet"]) == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 36 and res["repeat"] == 3
    assert all(r["frames"] == 31 and "drift_ms" in r and r["rss_mb"] > 0 for r in res["rows"])


def test_keyframe_delays() -> None:
    from lowlatseg.evaluation.latency import keyframe_delays

    # inline: a keyframe answers its own frame
    assert keyframe_delays(range(5), [True, False, True, False, False], [0, 0, 2, 2, 2]) == [0, 0]
    # low-latency: chosen at 12, first used at 14; chosen at 15, never used before the end
    idx = range(10, 17)
    keys = [False, False, True, False, False, True, False]
    src = [8, 8, 8, 8, 12, 12, 12]
    assert keyframe_delays(idx, keys, src) == [2]


def test_bench_reports_how_late_keyframes_come(small_video: Path, tiny_weights: Path, tiny_prop: Path,
                                               tiny_sched: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "--video", str(small_video), "--size", "48x64", "--fps", "0", "--repeat", "2", "--weights",
                 str(tiny_weights), "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--threads", "1",
                 "--interval", "3", "--threshold", "0", "--json", str(out), "--warmup", "3", "--quiet"]) == 0
    rows = {r["mode"]: r for r in json.loads(out.read_text())["rows"]}  # threshold 0: adaptive modes always choose
    assert rows["fixed"]["keyframe_delay_frames"]["max"] == 0 and rows["per-frame"]["keyframe_delay_frames"]["max"] == 0
    late = rows["low-latency"]["keyframe_delay_frames"]
    assert sum(late["counts"].values()) > 3 and min(int(d) for d in late["counts"]) >= 1  # never its own fresh keyframe


def test_bench_plot(small_video: Path, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    args = ["bench", "--video", str(small_video), "--size", "48x64", "--fps", "0", "--weights", str(tiny_weights),
            "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--threads", "1", "--warmup", "3", "--quiet"]
    assert main([*args, "--json", str(out), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert all("latencies_ms" not in r for r in json.loads(out.read_text())["rows"])  # the JSON stays a summary
    assert main([*args, "--plot", str(tmp_path / "missing" / "b.png")]) == 2  # refused before measuring


def test_plot_latency_marks_the_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.axes

    from lowlatseg.evaluation.latency import plot_latency

    lines: list[float] = []
    real = matplotlib.axes.Axes.axhline
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", lambda self, y=0, *a, **k: (lines.append(y), real(self, y, *a, **k))[1])
    rows = [{"mode": "per-frame", "latency_ms": {"mean": 50.0}, "latencies_ms": [48.0, 52.0, 50.0]},
            {"mode": "low-latency", "latency_ms": {"mean": 12.0}, "latencies_ms": [10.0, 14.0, 12.0]}]
    plot_latency(rows, tmp_path / "p.png", title="t")
    assert sorted(lines) == [20.0, 25.0] and (tmp_path / "p.png").exists()


def test_bench_records_the_worker(small_video: Path, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    args = ["bench", "--video", str(small_video), "--size", "48x64", "--fps", "0", "--weights", str(tiny_weights),
            "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--threads", "1", "--warmup", "3", "--quiet"]
    assert main([*args, "--max-delay", "3", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert (res["worker"], res["max_delay"]) == ("sliced", 3)
    assert main([*args, "--worker", "parallel", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert (res["worker"], res["max_delay"]) == ("parallel", None) and len(res["rows"]) == 4
    with pytest.raises(SystemExit):
        main([*args, "--max-delay", "0"])  # argparse: one sentence, exit 2


def test_run_live_reports_late_wakeups_apart_and_counts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A feeding loop woken late (here: every sleep 20 ms longer than asked) delays the frame, so
    the latency includes it, and ``feed_overshoot_ms`` says how much; at --fps 0 nothing waits."""
    import time as _time

    from lowlatseg.evaluation import latency

    class Instant:  # a runtime that answers at once
        def reset(self) -> None: ...

        def step(self, frame: np.ndarray) -> object:
            class R:
                is_keyframe, keyframe_index, index = True, 0, 0
            return R()

    frames = [np.zeros((4, 4, 3), np.uint8)] * 6
    real_sleep = _time.sleep
    monkeypatch.setattr(latency.time, "sleep", lambda s: real_sleep(s + 0.02))
    res = latency.run_live(Instant(), frames, fps=20.0, warmup=1)  # type: ignore[arg-type]
    fo = res["feed_overshoot_ms"]
    assert fo["frames"] >= 4 and fo["over_1ms"] == fo["frames"] and 20.0 <= fo["mean"] <= fo["max"]
    assert fo["mean"] < 45.0  # the lateness, not the whole 50 ms sleep
    assert res["latency_ms"]["p50"] >= 20.0  # the lateness is part of the latency
    monkeypatch.setattr(latency.time, "sleep", real_sleep)
    assert latency.run_live(Instant(), frames, fps=0.0, warmup=1)["feed_overshoot_ms"] is None  # type: ignore[arg-type]


def test_run_live_sees_memory_growing_during_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """``rss_growth_mb`` is read during the stream: a runtime that keeps 2 MiB per frame shows it,
    one that keeps nothing does not."""
    from lowlatseg.evaluation import latency

    class Runtime:
        def __init__(self, leak: bool) -> None:
            self.leak, self.kept = leak, []  # type: ignore[var-annotated]

        def reset(self) -> None: ...

        def step(self, frame: np.ndarray) -> object:
            if self.leak:  # 2 MiB, written: resident. An anonymous mapping of its own, so that memory
                # freed by earlier tests (which the allocator would hand out again) cannot absorb it
                import mmap

                block = mmap.mmap(-1, 2**21)
                block.write(b"\x01" * 2**21)
                self.kept.append(block)
            class R:
                is_keyframe, keyframe_index, index = False, 0, 0
            return R()

    monkeypatch.setattr(latency, "RSS_EVERY", 5)
    frames = [np.zeros((4, 4, 3), np.uint8)] * 42
    leaky = latency.run_live(Runtime(True), frames, fps=0.0, warmup=2)  # type: ignore[arg-type]
    assert leaky["rss_growth_mb"] >= 60  # 40 measured frames x 2 MiB = 80 MiB
    assert latency.run_live(Runtime(False), frames, fps=0.0, warmup=2)["rss_growth_mb"] < 10  # type: ignore[arg-type]


def test_bench_rounds_interleave_the_modes(small_video: Path, tiny_weights: Path, tiny_prop: Path, tiny_sched: Path,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--rounds 2``: the modes take turns on two consecutive parts of the frames (the second
    round in reverse order), each part a stream with its own warm-up, and every row covers both."""
    import lowlatseg.runtime.build as build

    order: list[str] = []
    real = build.build_runtime

    def spy(model: object, config: object, **kw: object) -> object:
        order.append(config.mode)  # type: ignore[attr-defined]
        return real(model, config, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(build, "build_runtime", spy)
    import lowlatseg.evaluation.latency as latency

    parts: dict[str, list[list[int]]] = {}
    real_feed = latency.feed_live

    def feed_spy(rt: object, frames: list[np.ndarray], **kw: object) -> object:
        parts.setdefault(rt.mode, []).append([int(f.sum()) for f in frames])  # type: ignore[attr-defined]
        return real_feed(rt, frames, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(latency, "feed_live", feed_spy)
    out = tmp_path / "b.json"
    assert main(["bench", "--video", str(small_video), "--size", "48x64", "--fps", "0", "--weights", str(tiny_weights),
                 "--propagation", str(tiny_prop), "--scheduler", str(tiny_sched), "--threads", "1", "--json", str(out),
                 "--warmup", "2", "--rounds", "2", "--quiet"]) == 0
    modes = ["per-frame", "fixed", "adaptive", "low-latency"]
    assert order == modes + modes[::-1]
    res = json.loads(out.read_text())
    assert res["rounds"] == 2 and res["frames"] == 12
    for r in res["rows"]:
        assert r["frames"] == 2 * (6 - 2) and r["streams"] == 2 and r["warmup_frames"] == 2  # 12 frames = 2 parts of 6
        assert len(r["per_stream"]) == 2
    # every mode got the same two parts: consecutive, disjoint, the whole stream between them
    assert all(len(p) == 2 and len(p[0]) == 6 and len(p[1]) == 6 for p in parts.values())
    assert len({tuple(map(tuple, p)) for p in parts.values()}) == 1
    first, second = next(iter(parts.values()))
    assert first != second


def test_bench_rounds_that_leave_nothing_to_measure_fail_clearly(small_video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--video", str(small_video), "--fps", "0", "--warmup", "5", "--rounds", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--rounds 3" in err and "warm-up" in err


def test_live_summary_pools_streams_but_keeps_per_stream_quantities_apart() -> None:
    """Two streams of one mode: latency and fps over both; keyframe delays, drift and memory rise
    within each (frame numbers restart with each stream)."""
    from lowlatseg.evaluation.latency import LiveRun, live_summary

    a = LiveRun(latencies_ms=[10.0, 10.0, 10.0, 10.0], is_keyframe=[True, False, False, False],
                labels_from=[0, 0, 0, 0], indices=[0, 1, 2, 3], warm_ms=[50.0], overshoot_ms=[],
                rss_mb=[100.0, 130.0, 110.0], rss_end_mb=110.0, span_s=0.04, warmup=1)
    # the keyframe chosen at frame 1 is first used at frame 3: 2 frames late
    b = LiveRun(latencies_ms=[20.0, 20.0, 20.0, 40.0], is_keyframe=[False, True, False, False],
                labels_from=[9, 9, 9, 1], indices=[0, 1, 2, 3], warm_ms=[60.0], overshoot_ms=[],
                rss_mb=[200.0, 205.0], rss_end_mb=205.0, span_s=0.06, warmup=1)
    a.cpu_s, b.cpu_s = 0.03, 0.09
    row = live_summary([a, b])
    assert row["cpu_ms_per_frame"] == pytest.approx(1000 * 0.12 / 8) and row["cores_busy"] == pytest.approx(0.12 / 0.10)
    assert row["frames"] == 8 and row["streams"] == 2 and row["fps"] == pytest.approx(8 / 0.10)
    assert row["latency_ms"]["mean"] == pytest.approx(17.5) and row["latency_ms"]["max"] == 40.0
    assert row["keyframe_fraction"] == 0.25
    assert row["keyframe_delay_frames"]["counts"] == {"0": 1, "2": 1}  # not mixed across the streams
    assert row["drift_ms"] == pytest.approx((0.0 + 20.0) / 2)  # per stream, not 40 - 10 across them
    assert row["rss_growth_mb"] == 30.0 and row["rss_start_mb"] == 100.0 and row["rss_mb"] == 205.0
    assert row["per_stream"] == [{"mean": 10.0, "max": 10.0}, {"mean": 25.0, "max": 40.0}]
    assert live_summary([a])["per_stream"] is None
    a.cpu_s = None  # a run that did not measure its CPU time: no CPU figures rather than wrong ones
    assert live_summary([a, b])["cpu_ms_per_frame"] is None and live_summary([a, b])["cores_busy"] is None


@needs_camvid
def test_tradeoff_rounds_pool_every_point_over_interleaved_passes(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path,
                                                                   tmp_path: Path) -> None:
    js = tmp_path / "t.json"
    base = [*_small_tradeoff(tiny_weights, tiny_prop, tiny_sched), "--ladder", f"{tiny_weights}@120x160", "--json", str(js),
            "--delay-frames", "1"]  # low-latency accuracy must not hang on the delay a live run happens to measure
    assert main(base) == 0
    one = json.loads(js.read_text())
    assert main([*base, "--rounds", "3"]) == 0
    three = json.loads(js.read_text())
    assert one["rounds"] == 1 and three["rounds"] == 3
    for a, b in zip(one["points"], three["points"], strict=True):
        assert (a["method"], a["size"], a["miou"]) == (b["method"], b["size"], b["miou"])  # accuracy is not timed
        assert b["latency_rounds"] == 3 and b["latency_frames"] == 3 * a["latency_frames"] > 0
