"""``segment`` as a pipeline: reader, runtime and writer on three threads give the same frames in
the same order as one thread would, lose none, and stop cleanly (valid partial video, exact
stats, no thread left behind) whichever thread fails."""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lowlatseg.cli import main
from lowlatseg.errors import UserError
from lowlatseg.pipeline import Pipeline


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _no_pipeline_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name in ("lowlatseg-reader", "lowlatseg-writer")]


def _segment(video: Path, tmp_path: Path, weights: Path, *extra: str) -> tuple[int, Path, dict]:
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    rc = main(["segment", str(video), "--out", str(out), "--stats", str(stats), "--weights", str(weights),
               "--quiet", "--threads", "1", *extra])
    return rc, out, json.loads(stats.read_text())


# ---------------------------------------------------------------- the pipeline on its own
def _jitter() -> None:
    time.sleep(random.random() * 0.002)


def test_every_item_in_order() -> None:
    random.seed(0)
    written: list[int] = []

    def source() -> Iterator[int]:
        for i in range(200):
            _jitter()
            yield i

    def compute(i: int) -> int:
        _jitter()
        return i * 10

    def write(r: int) -> None:
        _jitter()
        written.append(r)

    Pipeline(source(), compute, write, depth=2).run()
    assert written == [i * 10 for i in range(200)] and _no_pipeline_threads()


@pytest.mark.parametrize("where", ["source", "compute", "write"])
def test_an_error_in_any_stage_surfaces_and_nothing_hangs(where: str) -> None:
    """The source never ends: only the error can stop the run, and it must stop every thread."""
    written: list[int] = []

    def source() -> Iterator[int]:
        for i in itertools.count():
            if where == "source" and i == 7:
                raise UserError("simulated read failure")
            yield i

    def compute(i: int) -> int:
        if where == "compute" and i == 7:
            raise KeyboardInterrupt  # as Ctrl-C would, in the calling thread
        return i

    def write(i: int) -> None:
        if where == "write" and i == 7:
            raise OSError("simulated disk full")
        written.append(i)

    error = {"source": UserError, "compute": KeyboardInterrupt, "write": OSError}[where]
    with pytest.raises(error):
        Pipeline(source(), compute, write, depth=3).run()
    # every item computed before the failure is written, in order (the writer's own failure: up to it)
    assert written == list(range(7)) and _no_pipeline_threads()


# ---------------------------------------------------------------- segment end to end
@pytest.mark.parametrize("mode, size, extra", [("per-frame", "360", []), ("fixed", "48", ["--interval", "3"])])
def test_same_labels_and_frames_in_the_same_order_as_one_thread(mode: str, size: str, extra: list[str],
                                                                small_video: Path, tiny_weights: Path,
                                                                tiny_prop: Path, tmp_path: Path) -> None:
    import torch

    from lowlatseg.checkpoint import load_model
    from lowlatseg.classes import CAMVID
    from lowlatseg.io.video import VideoReader
    from lowlatseg.overlay import blend
    from lowlatseg.runtime import parse_size
    from lowlatseg.runtime.build import build_runtime
    from lowlatseg.runtime.config import RuntimeConfig

    labels_dir = tmp_path / "labels"
    rc, out, s = _segment(small_video, tmp_path, tiny_weights, "--mode", mode, "--size", size, "--labels",
                          str(labels_dir), "--propagation", str(tiny_prop), *extra)
    assert rc == 0 and _no_pipeline_threads()
    # the sequential reference: runtime.step on each decoded frame, labels upsampled, blended
    runtime = build_runtime(load_model(tiny_weights), RuntimeConfig(mode=mode, propagation=tiny_prop, interval=3 if extra else None, size=parse_size(size), threads=torch.get_num_threads()))
    ref_labels, ref_overlays = [], []
    with VideoReader(small_video) as reader:
        for frame in reader:
            lab = runtime.step(frame).labels
            lab = cv2.resize(lab, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
            ref_labels.append(lab)
            ref_overlays.append(blend(frame, lab, CAMVID).astype(np.int16))
    runtime.close()
    pngs = sorted(labels_dir.glob("frame_*.png"))
    assert [p.name for p in pngs] == [f"frame_{i:06d}.png" for i in range(12)]
    got = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in pngs]
    assert all(np.array_equal(g, r) for g, r in zip(got, ref_labels))
    assert len({g.tobytes() for g in got}) > 1  # the labels vary from frame to frame: the order is tested
    video = _frames(out)
    assert len(video) == s["frames"] == len(s["per_frame"]) == 12
    for i, f in enumerate(video):  # lossy: each written frame is nearest to its own reference, close to it
        diffs = [np.abs(f.astype(np.int16) - r).mean() for r in ref_overlays]
        assert int(np.argmin(diffs)) == i and diffs[i] < 5  # (own ~4, the next ones >= 7)
    assert [p["frame"] for p in s["per_frame"]] == list(range(12))
    assert s["wall_seconds"] > 0 and s["end_to_end_fps"] == pytest.approx(12 / s["wall_seconds"], rel=0.02)
    assert set(s["latency_ms"]) == {"mean", "p50", "p95", "max"} and s["stopped_early"] is None


def test_an_error_in_the_writer_thread_keeps_a_valid_partial_video(small_video: Path, tiny_weights: Path,
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lowlatseg.io.video import VideoWriter

    write = VideoWriter.write

    def fail_on_fifth(self: VideoWriter, frame: np.ndarray) -> None:
        if self.frames == 4:
            raise RuntimeError("simulated encoder failure")
        write(self, frame)

    monkeypatch.setattr(VideoWriter, "write", fail_on_fifth)
    with pytest.raises(RuntimeError, match="simulated encoder failure"):  # a bug: raised as it always was
        _segment(small_video, tmp_path, tiny_weights, "--mode", "per-frame")
    s = json.loads((tmp_path / "s.json").read_text())
    assert len(_frames(tmp_path / "o.mp4")) == s["frames"] == 4
    assert s["stopped_early"] == "stopped by an internal error: RuntimeError: simulated encoder failure"
    assert _no_pipeline_threads()


def test_a_label_png_that_cannot_be_written_is_one_sentence(small_video: Path, tiny_weights: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    imwrite = cv2.imwrite
    calls = itertools.count()
    monkeypatch.setattr(cv2, "imwrite", lambda *a, **k: next(calls) != 3 and imwrite(*a, **k))
    rc, out, s = _segment(small_video, tmp_path, tiny_weights, "--mode", "per-frame", "--labels", str(tmp_path / "l"))
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write the label PNG" in err and "frame_000003.png" in err and len(err.strip().splitlines()) == 1
    # frame 3 is in the video (its PNG failed after it): the stats count the frames in the video
    assert len(_frames(out)) == s["frames"] == 4 and "label PNG" in s["stopped_early"] and _no_pipeline_threads()


def test_an_error_in_the_reader_thread_keeps_what_was_read(small_video: Path, tiny_weights: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from lowlatseg.io.video import VideoReader

    decode = VideoReader.__iter__

    def five_then_fail(self: VideoReader) -> Iterator[np.ndarray]:
        for i, f in enumerate(decode(self)):
            if i == 5:
                raise UserError("simulated read failure")
            yield f

    monkeypatch.setattr(VideoReader, "__iter__", five_then_fail)
    rc, out, s = _segment(small_video, tmp_path, tiny_weights, "--mode", "per-frame")
    err = capsys.readouterr().err
    assert rc == 2 and "simulated read failure" in err and len(err.strip().splitlines()) == 1
    assert len(_frames(out)) == s["frames"] == 5 and s["stopped_early"] == "simulated read failure"
    assert _no_pipeline_threads()


def test_ctrl_c_keeps_every_frame_segmented_before_it(small_video: Path, tiny_weights: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from lowlatseg.runtime.stream import StreamRuntime

    step = StreamRuntime.step

    def interrupt_at_four(self: StreamRuntime, frame: np.ndarray):
        if self.state.index == 4:
            raise KeyboardInterrupt
        return step(self, frame)

    monkeypatch.setattr(StreamRuntime, "step", interrupt_at_four)
    rc, out, s = _segment(small_video, tmp_path, tiny_weights, "--mode", "per-frame")
    assert rc == 130 and len(_frames(out)) == s["frames"] == 4 and s["stopped_early"] == "interrupted by the user"
    assert _no_pipeline_threads()


# ---------------------------------------------------------------- the encoder's preset
def _x264_subme(path: Path) -> int:
    """x264 writes its settings into the stream; subme tells the presets apart (0 ultra, 1 super, 2 veryfast)."""
    m = re.search(rb"options: [^\x00]*?subme=(\d+)", path.read_bytes())
    assert m is not None
    return int(m.group(1))


@pytest.mark.parametrize("flag, subme", [([], 1), (["--preset", "ultrafast"], 0), (["--preset", "veryfast"], 2)])
def test_preset_reaches_the_encoder(flag: list[str], subme: int, small_video: Path, tiny_weights: Path,
                                    tmp_path: Path) -> None:
    rc, out, s = _segment(small_video, tmp_path, tiny_weights, "--mode", "per-frame", "--max-frames", "3", *flag)
    assert rc == 0 and _x264_subme(out) == subme and s["preset"] == (flag[1] if flag else "superfast")


def test_bad_preset_is_one_sentence_before_any_work(small_video: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.mp4"
    rc = main(["segment", str(small_video), "--out", str(out), "--weights", str(tmp_path / "missing.pt"), "--quiet",
               "--preset", "fastest"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and not out.exists()
    assert "--preset 'fastest' is not a libx264 preset" in err and "superfast" in err


def test_the_help_names_the_default_preset() -> None:
    from lowlatseg.cli import build_parser
    from lowlatseg.segment import FILE_PRESET

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    seg = sub.choices["segment"]  # type: ignore[attr-defined]
    help_text = next(a.help for a in seg._actions if a.dest == "preset")
    assert f"{FILE_PRESET} (default" in help_text


# ---------------------------------------------------------------- the overlay
@pytest.mark.parametrize("frame_hw, label_hw", [((96, 128), (360, 480)), ((101, 67), (48, 32)), ((40, 60), (40, 60))])
def test_blend_upsampled_is_blend_of_the_upsampled_labels(frame_hw: tuple[int, int], label_hw: tuple[int, int]) -> None:
    from lowlatseg.classes import CAMVID
    from lowlatseg.overlay import blend, blend_upsampled

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (*frame_hw, 3), dtype=np.uint8)
    label = rng.integers(0, 12, label_hw, dtype=np.uint8)  # 11: an ignored id, black
    up = cv2.resize(label, frame_hw[::-1], interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(blend_upsampled(frame, label, CAMVID, alpha=0.3), blend(frame, up, CAMVID, alpha=0.3))
