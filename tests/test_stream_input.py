"""Live inputs: a stream URL goes through the same reader, and a stalled stream ends instead of hanging."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time

import numpy as np
import pytest

from lowlatseg.errors import UserError
from lowlatseg.io.video import VideoReader, VideoWriter

from conftest import VIDEO, needs_video


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[socketserver.TCPServer, str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/clip.mkv"


class _Full(http.server.BaseHTTPRequestHandler):
    """Serves ``body`` (set in a subclass) whole."""

    body = b""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "video/x-matroska")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def _serve_bytes(body: bytes) -> tuple[socketserver.TCPServer, str]:
    return _serve(type("Handler", (_Full,), {"body": body}))


@pytest.fixture(scope="module")
def mkv_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("stream") / "clip.mkv"  # Matroska streams without seeking
    rng = np.random.default_rng(0)
    with VideoWriter(path, fps=10, width=64, height=48) as w:
        for _ in range(20):
            w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return path.read_bytes()


def test_stream_url_reads_every_frame(mkv_bytes: bytes) -> None:
    server, url = _serve_bytes(mkv_bytes)
    try:
        with VideoReader(url, timeout_s=5) as r:
            frames = list(r)
        assert len(frames) == 20 and frames[0].shape == (48, 64, 3)
    finally:
        server.shutdown()


class _Stalling(http.server.BaseHTTPRequestHandler):
    """Sends the first half of ``body`` (set in a subclass), then nothing, holding the connection."""

    body = b""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "video/x-matroska")
        self.end_headers()
        self.wfile.write(self.body[: len(self.body) // 2])  # half the stream, then silence
        self.wfile.flush()
        time.sleep(30)

    def log_message(self, *args: object) -> None:
        pass


def test_stalled_stream_ends_instead_of_hanging(mkv_bytes: bytes) -> None:
    server, url = _serve(type("Handler", (_Stalling,), {"body": mkv_bytes}))
    t0 = time.perf_counter()
    try:
        with VideoReader(url, timeout_s=1) as r:
            frames = list(r)
        assert 0 < len(frames) < 20  # the frames before the stall, then an end that says why
        assert r.error is not None and "no data for 1 s, the stream stalled" in r.error
        assert time.perf_counter() - t0 < 15
    finally:
        server.shutdown()


def test_segment_on_a_stalled_stream_keeps_output_and_says_why(mkv_bytes: bytes, tiny_weights, tiny_prop, tmp_path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import functools
    import json

    import av

    import lowlatseg.segment
    from lowlatseg.cli import main

    monkeypatch.setattr(lowlatseg.segment, "VideoReader", functools.partial(VideoReader, timeout_s=1))
    server, url = _serve(type("Handler", (_Stalling,), {"body": mkv_bytes}))
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    try:
        rc = main(["segment", url, "--out", str(out), "--weights", str(tiny_weights), "--propagation", str(tiny_prop),
                   "--mode", "low-latency", "--interval", "3", "--size", "native", "--stats", str(stats), "--quiet",
                   "--threads", "1"])
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert rc == 2 and "stream stalled" in err and len(err.strip().splitlines()) == 1
    with av.open(str(out)) as c:
        n = sum(1 for _ in c.decode(video=0))
    s = json.loads(stats.read_text())
    assert 0 < n < 20 and s["frames"] == n and "stalled" in s["stopped_early"]


@pytest.mark.parametrize("mode", ["low-latency", "fixed"])
def test_segment_reads_a_stream_url(mode: str, mkv_bytes: bytes, tiny_weights, tiny_prop, tmp_path) -> None:
    import json

    from lowlatseg.cli import main

    server, url = _serve_bytes(mkv_bytes)
    try:
        stats = tmp_path / "s.json"
        assert main(["segment", url, "--out", str(tmp_path / "o.mp4"), "--weights", str(tiny_weights), "--propagation",
                     str(tiny_prop), "--mode", mode, "--interval", "3", "--size", "native", "--stats", str(stats),
                     "--quiet", "--threads", "1"]) == 0
    finally:
        server.shutdown()
    s = json.loads(stats.read_text())
    assert s["frames"] == 20 and s["mode"] == mode and s["input"] == url


def test_stream_url_that_cannot_be_opened() -> None:
    with socketserver.TCPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # free now that the probe closes: nothing listens there
    with pytest.raises(UserError, match="stream http://127.0.0.1:.* cannot be opened .*check the URL"):
        VideoReader(f"http://127.0.0.1:{port}/clip.mkv", timeout_s=2)


def _write(path, *, n: int = 50, audio_s: float = 0.0, vfr: bool = False) -> None:
    """A 64x48 H.264 clip of n frames at 25 fps; ``vfr``: its second half at 5 fps; ``audio_s``:
    an AAC track that long (longer than the video)."""
    import fractions

    import av

    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    if vfr:
        v.time_base = fractions.Fraction(1, 1000)
    a = c.add_stream("aac", rate=48000) if audio_s else None  # every stream before the first packet
    pts = 0
    for i in range(n):
        f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 3 % 255, np.uint8), format="rgb24")
        if vfr:
            f.pts, f.time_base = pts, fractions.Fraction(1, 1000)
            pts += 40 if i < n // 2 else 200
        for p in v.encode(f):
            c.mux(p)
    for p in v.encode(None):
        c.mux(p)
    if a is not None:
        for done in range(0, int(audio_s * 48000), 1024):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 48000, done
            for p in a.encode(fr):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    c.close()


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
@pytest.mark.parametrize("kind", ["audio-longer", "variable-rate"])
def test_complete_files_are_not_called_truncated(kind: str, suffix: str, tmp_path) -> None:
    path = tmp_path / f"clip{suffix}"
    _write(path, audio_s=4.0 if kind == "audio-longer" else 0.0, vfr=kind == "variable-rate")
    with VideoReader(path) as r:
        assert len(list(r)) == 50
    assert r.error is None and r.warning is None


@needs_video
def test_a_cut_mp4_is_called_truncated(tmp_path) -> None:
    """An MP4 with its index first (as cameras and the sample clip write them) cut short: it
    decodes without error to the cut; the header's duration shows the rest is missing."""
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(VIDEO.read_bytes()[:300_000])
    with VideoReader(cut) as r:
        n = len(list(r))
    assert 0 < n < 221 and r.error is None and "of the 8.8 s its header states (probably truncated)" in r.warning


def test_reads_from_a_fifo(mkv_bytes: bytes, tmp_path) -> None:
    """A pipe reports 0 bytes like an empty file; it must still be read."""
    import os

    fifo = tmp_path / "pipe.mkv"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(mkv_bytes)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    with VideoReader(fifo) as r:
        assert len(list(r)) == 20
    t.join(5)
