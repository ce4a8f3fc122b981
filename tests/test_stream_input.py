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
