"""The command line: the main job end to end on tiny inputs, and one clear sentence for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lowlatseg.cli import main

from conftest import CAMVID, needs_camvid


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_segment_writes_one_frame_per_input_frame(small_video: Path, tiny_weights: Path, tiny_prop: Path,
                                                  tiny_sched: Path, tmp_path: Path) -> None:
    out, labels, stats = tmp_path / "o.mp4", tmp_path / "labels", tmp_path / "s.json"
    rc = main(["segment", str(small_video), "--out", str(out), "--weights", str(tiny_weights), "--propagation",
               str(tiny_prop), "--scheduler", str(tiny_sched), "--labels", str(labels), "--stats", str(stats),
               "--quiet", "--threads", "1"])
    assert rc == 0
    assert _frames(out) == _frames(small_video) == 12
    pngs = sorted(labels.glob("*.png"))
    assert len(pngs) == 12
    lab = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert lab.shape == (96, 128) and lab.max() < 11
    s = json.loads(stats.read_text())
    assert s["frames"] == 12 and len(s["per_frame"]) == 12 and s["mode"] == "low-latency"
    assert s["per_frame"][0]["keyframe"] and s["keyframes"] >= 1
    assert s["threads"] == 1 and s["resolution"] == "360x480" and s["input_resolution"] == "96x128"
    assert set(s["latency_ms"]) == {"mean", "p50", "p95", "max"}


@pytest.mark.parametrize("mode, extra, keys", [
    ("per-frame", [], 6), ("fixed", ["--interval", "3"], 2), ("adaptive", ["--threshold", "1"], 1),
    ("low-latency", ["--interval", "2", "--no-spare-keyframes"], 3), ("adaptive", ["--budget", "100"], 1),
])
def test_segment_modes(mode: str, extra: list[str], keys: int, small_video: Path, tiny_weights: Path,
                       tiny_prop: Path, tiny_sched: Path, tmp_path: Path) -> None:
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    rc = main(["segment", str(small_video), "--out", str(out), "--weights", str(tiny_weights), "--propagation",
               str(tiny_prop), "--scheduler", str(tiny_sched), "--mode", mode, "--max-frames", "6", "--stats",
               str(stats), "--quiet", "--threads", "1", *extra])
    assert rc == 0
    s = json.loads(stats.read_text())
    assert s["mode"] == mode and s["frames"] == 6 and _frames(out) == 6
    assert s["keyframes"] == keys
    if mode == "adaptive":  # the stats say which rule and number ran
        assert (s["policy"]["rule"], s["policy"]["value"]) == (("instant", 1.0) if "--threshold" in extra else ("accumulated", 100.0))
    assert s["spare_keyframes"] == (False if mode == "low-latency" else None)


def test_segment_low_latency_with_spare_keyframes(small_video: Path, tiny_weights: Path, tiny_prop: Path,
                                                  tmp_path: Path) -> None:
    """By default low-latency spends the time between frames on keyframes (how many depends on
    the machine's speed): at least the first, every frame answered, none from its own keyframe."""
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    rc = main(["segment", str(small_video), "--out", str(out), "--weights", str(tiny_weights), "--propagation",
               str(tiny_prop), "--mode", "low-latency", "--interval", "4", "--max-frames", "6", "--stats", str(stats),
               "--quiet", "--threads", "1"])
    assert rc == 0
    s = json.loads(stats.read_text())
    assert s["spare_keyframes"] is True and s["frames"] == 6 and 1 <= s["keyframes"] <= 6
    rows = s["per_frame"]
    assert [r["frame"] for r in rows] == list(range(6)) and rows[1]["keyframe"]  # frame 1: the probe
    assert all(r["labels_from"] < r["frame"] for r in rows[1:])  # never waits for its own high


def test_worker_crash_is_one_sentence_and_keeps_output(small_video: Path, tiny_weights: Path, tiny_prop: Path,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from concurrent.futures import Future

    from lowlatseg.runtime.sliced import SlicedExecutor

    def broken(self: SlicedExecutor, fn: object, f_low: object) -> Future:
        fut: Future = Future()
        fut.set_exception(MemoryError("simulated"))
        return fut

    monkeypatch.setattr(SlicedExecutor, "submit", broken)
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    rc = main(["segment", str(small_video), "--out", str(out), "--weights", str(tiny_weights), "--propagation",
               str(tiny_prop), "--mode", "low-latency", "--interval", "3", "--stats", str(stats), "--quiet",
               "--threads", "1", "--no-spare-keyframes"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "keyframe worker failed on frame 3: MemoryError: simulated" in err and err.count("\n") == 1
    s = json.loads(stats.read_text())  # frames 0..3 were answered before frame 4 found the failure
    assert s["frames"] == _frames(out) == 4 and "worker failed" in s["stopped_early"]


def test_segment_native_size_and_max_frames(small_video: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    assert main(["segment", str(small_video), "--out", str(out), "--weights", str(tiny_weights), "--size", "native",
                 "--mode", "per-frame", "--max-frames", "5", "--stats", str(stats), "--quiet", "--threads", "1"]) == 0
    assert _frames(out) == 5
    assert json.loads(stats.read_text())["resolution"] == "96x128"


def test_truncated_video_keeps_frames_already_decoded(tiny_weights: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A file cut off mid-way (no decoding error: it just ends early): the frames before the cut
    are all in a valid output, and the run says so (a warning: the header's duration can be
    wrong on legitimate files, so this is not an error)."""
    from lowlatseg.io.video import VideoWriter

    full = tmp_path / "full.mkv"  # Matroska keeps its header first, so a cut file is still readable
    rng = np.random.default_rng(0)
    with VideoWriter(full, fps=10, width=128, height=96) as w:
        for _ in range(30):
            w.write(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    rc = main(["segment", str(cut), "--out", str(out), "--weights", str(tiny_weights), "--stats", str(stats),
               "--mode", "per-frame", "--quiet", "--threads", "1"])
    err = capsys.readouterr().err
    # no decoding error, just an early end: a one-line warning (the track's header says 3.0 s)
    assert rc == 0 and len(err.strip().splitlines()) == 1 and "warning" in err and "of the 3.0 s" in err
    n = _frames(out)
    assert 0 < n < 30 and f"the {n} frames read before that" in err
    s = json.loads(stats.read_text())
    assert s["frames"] == n and "truncated" in s["stopped_early"]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d / "missing.mp4", "does not exist"),
        (lambda d: (d / "t.mp4").write_text("hello") and d / "t.mp4", "cannot be opened as a video"),
        (lambda d: d, "is a folder"),
    ],
    ids=["missing", "not-a-video", "folder"],
)
def test_bad_input_video(make, match: str, tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make(tmp_path)
    rc = main(["segment", str(src), "--out", str(tmp_path / "o.mp4"), "--weights", str(tiny_weights), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_video_without_frames(tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.mkv"
    c = av.open(str(empty), "w")
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    c.start_encoding()  # header only, zero frames
    c.close()
    rc = main(["segment", str(empty), "--out", str(tmp_path / "o.mp4"), "--weights", str(tiny_weights), "--quiet"])
    assert rc == 2
    assert "no video frames" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["/nonexistent-dir/o.mp4", "."], ids=["no-folder", "is-folder"])
def test_unwritable_output(out: str, small_video: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["segment", str(small_video), "--out", out, "--weights", str(tiny_weights), "--quiet", "--mode", "per-frame"])
    assert rc == 2
    assert "cannot write" in capsys.readouterr().err


def test_wrong_checkpoint(small_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    rc = main(["segment", str(small_video), "--out", str(tmp_path / "o.mp4"), "--weights", str(tmp_path / "other.pt"), "--quiet"])
    assert rc == 2
    assert "not a lowlatseg checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--size", "axb"], ["--alpha", "3"], ["--threshold", "2"], ["--interval", "0"], ["--budget", "-1"]])
def test_bad_flags(flags: list[str], small_video: Path, tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["segment", str(small_video), "--out", str(tmp_path / "o.mp4"), "--weights", str(tiny_weights), "--quiet",
               "--mode", "fixed" if flags[0] == "--interval" else "adaptive" if flags[0] in ("--threshold", "--budget") else "per-frame", *flags])
    assert rc == 2
    assert flags[0] in capsys.readouterr().err


def test_interval_with_threshold_or_budget_is_refused(small_video: Path, tiny_weights: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["segment", str(small_video), "--out", str(tmp_path / "o.mp4"), "--weights", str(tiny_weights), "--quiet",
               "--mode", "low-latency", "--interval", "3", "--budget", "0.5"])
    assert rc == 2 and "--budget and --interval" in capsys.readouterr().err


def test_exit_status_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lowlatseg.cli", "segment", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o.mp4")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lowlatseg: error:") and "Traceback" not in proc.stderr


@needs_camvid
def test_eval_image_json(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.json"
    assert main(["eval", "image", "--data", str(CAMVID), "--split", "val", "--weights", str(tiny_weights),
                 "--json", str(out), "--quiet", "--threads", "1"]) == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 51 and res["weights"] == str(tiny_weights)
    assert 0 <= res["miou"] <= 100
    assert set(res["per_class_iou"]) == {"Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
                                         "Fence", "Car", "Pedestrian", "Bicyclist"}
    assert "mIoU" in capsys.readouterr().out


@needs_camvid
def test_eval_image_drive_and_size(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.json"
    assert main(["eval", "image", "--data", str(CAMVID), "--split", "train", "--drive", "0006R0", "--size", "120x160",
                 "--weights", str(tiny_weights), "--json", str(out), "--quiet", "--threads", "1"]) == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 101 and res["drive"] == "0006R0" and res["resolution"] == "120x160"
    assert main(["eval", "image", "--data", str(CAMVID), "--split", "train", "--drive", "9999XX",
                 "--weights", str(tiny_weights), "--quiet"]) == 2
    assert "its drives are: 0001TP, 0006R0, 0016E5" in capsys.readouterr().err


def test_eval_image_bad_split(tiny_weights: Path, tiny_camvid: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_camvid / "broken.txt").write_text("img/S_000.png lab/missing.png\n")
    rc = main(["eval", "image", "--data", str(tiny_camvid), "--split", "broken", "--weights", str(tiny_weights), "--quiet"])
    assert rc == 2
    assert "missing.png, which does not exist" in capsys.readouterr().err


def test_camera_that_cannot_be_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["segment", "97", "--out", str(tmp_path / "o.mp4"), "--quiet"])
    assert rc == 2
    assert "camera 97 (/dev/video97) cannot be opened" in capsys.readouterr().err


def test_output_that_cannot_hold_h264_fails_before_any_work(small_video: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.webm"
    assert main(["segment", str(small_video), "--out", str(out), "--weights", str(tmp_path / "missing.pt"), "--quiet"]) == 2
    err = capsys.readouterr().err
    # reported before the (missing) weights are even looked at, and nothing is created
    assert "'.webm' file" in err and ".mp4" in err and len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("which", ["out-is-input", "stats-is-out"])
def test_outputs_that_would_overwrite_each_other_are_refused(which: str, small_video: Path, tiny_weights: Path,
                                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.mp4"
    src.write_bytes(small_video.read_bytes())
    out = src if which == "out-is-input" else tmp_path / "o.mp4"
    stats = out if which == "stats-is-out" else tmp_path / "s.json"
    rc = main(["segment", str(src), "--out", str(out), "--stats", str(stats), "--weights", str(tiny_weights), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "is the same file as" in err and len(err.strip().splitlines()) == 1
    assert src.read_bytes() == small_video.read_bytes() and not (tmp_path / "o.mp4").exists()


def test_sigterm_stops_like_ctrl_c_and_keeps_output(small_video: Path, tiny_weights: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import signal

    from lowlatseg.runtime.stream import StreamRuntime

    step = StreamRuntime.step

    def step_then_term(self: StreamRuntime, frame: np.ndarray):
        r = step(self, frame)
        if r.index == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill`, `timeout` or `docker stop` would
        return r

    monkeypatch.setattr(StreamRuntime, "step", step_then_term)
    before = signal.getsignal(signal.SIGTERM)
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    rc = main(["segment", str(small_video), "--out", str(out), "--stats", str(stats), "--weights", str(tiny_weights),
               "--mode", "per-frame", "--quiet", "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 128 + signal.SIGTERM and "terminated (SIGTERM)" in err and "Traceback" not in err
    n = _frames(out)
    s = json.loads(stats.read_text())
    assert 4 <= n < 12 and s["frames"] == n and s["stopped_early"] == "terminated (SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) is before  # main() puts the caller's handler back


def test_stream_that_changes_resolution_mid_way(tiny_weights: Path, tiny_prop: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera or stream that switches resolution: later frames are resized to the first's size,
    in the runtime's network input and in the output video, and the stats match the video."""
    from lowlatseg.io.video import VideoReader

    from lowlatseg.io.video import VideoWriter

    src = tmp_path / "in.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(src, fps=10, width=128, height=96) as w:
        for _ in range(10):
            w.write(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    decode = VideoReader.__iter__

    def two_sizes(self: VideoReader):
        for i, f in enumerate(decode(self)):
            yield f if i < 5 else cv2.resize(f, (200, 150))  # from frame 5 on: 150x200, another aspect

    monkeypatch.setattr(VideoReader, "__iter__", two_sizes)
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    for mode in ("fixed", "low-latency"):
        assert main(["segment", str(src), "--out", str(out), "--stats", str(stats), "--weights", str(tiny_weights),
                     "--propagation", str(tiny_prop), "--mode", mode, "--interval", "3", "--size", "native", "--quiet",
                     "--threads", "1"]) == 0
        s = json.loads(stats.read_text())
        assert _frames(out) == s["frames"] == 10 and s["stopped_early"] is None


def test_checkpoint_of_the_wrong_kind_says_which_flag(small_video: Path, tiny_sched: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", str(small_video), "--out", str(tmp_path / "o.mp4"), "--weights", str(tiny_sched), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds scheduler weights, not a segmentation model; pass it with --scheduler" in err


def test_empty_input_file(tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "e.mp4").write_bytes(b"")
    assert main(["segment", str(tmp_path / "e.mp4"), "--out", str(tmp_path / "o.mp4"), "--weights", str(tiny_weights)]) == 2
    assert "is an empty file (0 bytes)" in capsys.readouterr().err


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"lowlatseg {version('lowlatseg')}"


@pytest.mark.parametrize("argv", [["segment", "v.mp4", "--out", "o.mp4"], ["view", "v.mp4"], ["bench", "--video", "v.mp4"],
                                  ["eval", "tradeoff"]])
def test_every_stream_command_takes_no_spare_keyframes(argv: list[str]) -> None:
    from lowlatseg.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(argv).spare_keyframes is True
    assert parser.parse_args([*argv, "--no-spare-keyframes"]).spare_keyframes is False


@pytest.mark.parametrize("argv", [["segment", "v.mp4", "--out", "o.mp4"], ["view", "v.mp4"], ["bench", "--video", "v.mp4"],
                                  ["eval", "tradeoff"]])
def test_every_stream_command_takes_propagation_method(argv: list[str]) -> None:
    from lowlatseg.cli import build_parser
    from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD

    parser = build_parser()
    assert parser.parse_args(argv).propagation_method == DEFAULT_PROPAGATION_METHOD
    assert parser.parse_args([*argv, "--propagation-method", "adaptive"]).propagation_method == "adaptive"


def test_view_hands_propagation_method_to_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    serve_module = importlib.import_module("lowlatseg.view.serve")  # the module (the package exports its function)
    seen = []
    monkeypatch.setattr(serve_module, "serve", lambda opts, threads: seen.append(opts))
    assert main(["view", "v.mp4", "--propagation-method", "flow-guided", "--no-spare-keyframes"]) == 0
    assert seen[0].propagation_method == "flow-guided" and seen[0].spare_keyframes is False
