"""`lowlatseg view`: a real server on loopback (a subprocess on a free port, the tiny model, a
small generated video), driven over HTTP, and the page in headless Chromium where it is installed."""

from __future__ import annotations

import http.client
import json
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from lowlatseg.classes import CAMVID
from lowlatseg.cli import main
from lowlatseg.view.serve import is_loopback

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
BOUNDARY = b"--lowlatsegframe"


# ---------------------------------------------------------------- helpers
def _video(path: Path, frames: int, fps: float = 20) -> Path:
    from lowlatseg.io.video import VideoWriter

    yy, xx = np.mgrid[0:96, 0:128]
    with VideoWriter(path, fps=fps, width=128, height=96) as w:
        for t in range(frames):
            w.write(np.stack([(xx * 2 + t * 8) % 256, (yy * 2) % 256, np.full_like(xx, 100)], -1).astype(np.uint8))
    return path


class Server:
    """``lowlatseg view`` in a subprocess on a free loopback port (``--port 0``; the URL it prints)."""

    def __init__(self, video: Path, weights: Path, prop: Path, sched: Path, *extra: str) -> None:
        cmd = [sys.executable, "-m", "lowlatseg.cli", "view", str(video), "--port", "0", "--weights", str(weights),
               "--propagation", str(prop), "--scheduler", str(sched), "--threads", "1", "--size", "96", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if "http://" not in line:
            self.proc.kill()
            raise AssertionError(f"the server did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = line.split(" at ", 1)[1].split()[0].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status.json")
        assert code == 200
        return json.loads(body)

    def post(self, path: str, body: object = None, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else json.dumps(body or {}).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def until(self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.status()
            if check(s):
                return s
            time.sleep(0.05)
        raise AssertionError(f"{what} did not happen within {timeout} s; last status: {s}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"the server did not stop within {timeout} s after signal {sig}: {err}") from None
        return self.proc.returncode, err


class Stream:
    """A raw client of /stream.mjpg that reads one JPEG part at a time."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", "/stream.mjpg")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.getheader("Content-Type", "").startswith("multipart/x-mixed-replace")

    def part(self) -> np.ndarray:
        length = None
        while True:
            line = self.resp.readline()
            assert line, "the stream ended"
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif line in (b"\r\n", b"\n") and length is not None:
                break
        jpeg = self.resp.read(length)
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        return image

    def abort(self) -> None:
        """Goes away mid-stream without a goodbye (a reset, as a closed browser tab may do)."""
        sock = self.conn.sock
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.close()

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def looping(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server, shared by the tests below, playing a 2 s clip in a loop."""
    video = _video(tmp_path_factory.mktemp("view") / "clip.mp4", 40)
    server = Server(video, tiny_weights, tiny_prop, tiny_sched, "--loop")
    yield server
    rc, err = server.stop()
    assert rc in (0, 130) and "Traceback" not in err, err


# ---------------------------------------------------------------- a live server
def test_page_status_and_frames(looping: Server) -> None:
    code, page = looping.get("/")
    html = page.decode()
    assert code == 200 and "<canvas" in html and "/stream.mjpg" in html and "/status.json" in html
    assert "://" not in html  # nothing from the network: no CDN, no external script or font
    info = json.loads(looping.get("/info.json")[1])
    assert [c["name"] for c in info["classes"]] == list(CAMVID.classes)
    assert info["modes"] == ["per-frame", "fixed", "adaptive", "low-latency"]
    first = looping.until(lambda s: s["frames"] > 0, "a first frame")
    assert first["mode"] == "low-latency" and first["source"].endswith("clip.mp4")
    assert set(first["latency_ms"]) >= {"mean", "p95", "max"} and 0 <= first["keyframe_fraction"] <= 1
    later = looping.until(lambda s: s["frames"] >= first["frames"] + 5, "more frames")
    assert isinstance(later["frames"], int) and later["latency_ms"]["max"] >= later["latency_ms"]["mean"] > 0
    code, jpeg = looping.get("/frame.jpg")
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert code == 200 and image is not None and image.shape == (96, 128, 3)
    stream = Stream(looping.port)
    try:
        assert stream.part().shape == (96, 128, 3)
    finally:
        stream.close()


def test_a_client_that_goes_away_and_a_second_client(looping: Server) -> None:
    a, b = Stream(looping.port), Stream(looping.port)
    try:
        a.part()
        b.part()
        a.resp.readline()  # mid-part
        a.abort()
        n = looping.status()["frames"]
        for _ in range(3):  # the other client is still served, new frames keep coming
            assert b.part().shape == (96, 128, 3)
        looping.until(lambda s: s["frames"] > n, "frames after a client left")
        c = Stream(looping.port)  # and a new one can come
        c.part()
        c.close()
    finally:
        b.close()
    assert looping.get("/")[0] == 200


def test_mode_switch_and_bad_requests(looping: Server) -> None:
    code, body = looping.post("/mode", {"mode": "bogus"})
    assert code == 400 and "unknown mode 'bogus'" in body["error"] and "per-frame" in body["error"]
    for bad in ({"mode": 3}, {"nomode": "fixed"}):
        code, body = looping.post("/mode", bad)
        assert code == 400 and body["error"]
    code, body = looping.post("/mode", raw=b"not json")
    assert code == 400 and "not JSON" in body["error"]
    code, body = looping.post("/alpha", {"alpha": 2})
    assert code == 400 and "[0, 1]" in body["error"]
    assert looping.post("/alpha", {"alpha": 0.7}) == (200, {"alpha": 0.7})

    assert looping.post("/mode", {"mode": "per-frame"})[0] == 200
    s = looping.until(lambda s: s["mode"] == "per-frame" and s["mode_frames"] >= 3, "the switch to per-frame")
    assert s["keyframe_fraction"] == 1.0  # the statistics are the new mode's
    assert looping.post("/mode", {"mode": "fixed"})[0] == 200
    looping.until(lambda s: s["mode"] == "fixed" and s["mode_frames"] >= 6, "the switch to fixed")
    assert looping.post("/mode", {"mode": "low-latency"})[0] == 200
    looping.until(lambda s: s["mode"] == "low-latency" and s["mode_frames"] >= 1, "the switch back")


def test_pause_and_resume(looping: Server) -> None:
    assert looping.post("/pause") == (200, {"paused": True})
    s = looping.until(lambda s: s["state"] == "paused", "the pause")
    time.sleep(0.3)  # (a frame in hand may still finish)
    n = looping.status()["frames"]
    time.sleep(0.4)
    assert looping.status()["frames"] == n
    stream = Stream(looping.port)  # a paused stream still shows its frame
    stream.part()
    stream.close()
    assert looping.post("/resume") == (200, {"paused": False})
    looping.until(lambda s: s["state"] == "playing" and s["frames"] > n + 2, "frames after resuming")
    assert s["mode"] == "low-latency"


# ---------------------------------------------------------------- a source that ends, stopping
def test_a_source_that_ends_leaves_it_answering_and_sigint_stops_it(tiny_weights: Path, tiny_prop: Path,
                                                                    tiny_sched: Path, tmp_path: Path) -> None:
    server = Server(_video(tmp_path / "short.mp4", 10), tiny_weights, tiny_prop, tiny_sched, "--mode", "fixed")
    try:
        s = server.until(lambda s: s["state"] == "ended", "the end of the video")
        assert s["frames"] == 10 and s["mode"] == "fixed" and "ended" in s["message"]
        assert server.get("/")[0] == 200 and server.get("/frame.jpg")[0] == 200
        stream = Stream(server.port)  # the last frame is still shown, to a new client too
        assert stream.part().shape == (96, 128, 3)
        assert server.status()["frames"] == 10
        t0 = time.monotonic()
        rc, err = server.stop(signal.SIGINT)  # with a client still connected
        assert rc in (0, 130), err
        assert "Traceback" not in err and time.monotonic() - t0 < 15
        stream.close()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


# ---------------------------------------------------------------- bad input: one sentence, status 2
def test_port_in_use(small_video: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        rc = main(["view", str(small_video), "--port", str(port), "--weights", str(tiny_weights), "--threads", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"port {port}" in err and "already in use" in err


@pytest.mark.parametrize("make", ["missing", "not_video"])
def test_source_that_cannot_be_opened(make: str, tmp_path: Path, tiny_weights: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "clip.mp4"
    if make == "not_video":
        source.write_text("this is not a video")
    rc = main(["view", str(source), "--port", "0", "--weights", str(tiny_weights)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err and "clip.mp4" in err


def test_non_loopback_host_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    rc = main(["view", str(tmp_path / "missing.mp4"), "--host", "0.0.0.0", "--port", "0"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 2
    assert "warning" in lines[0] and "0.0.0.0" in lines[0] and "not a loopback" in lines[0]
    assert "does not exist" in lines[1]


# ---------------------------------------------------------------- the page in a browser
def _chromium(tmp_path: Path, url: str, *mode: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,800", "--virtual-time-budget=8000",
         *mode, url], capture_output=True, text=True, timeout=90)


@pytest.mark.slow
def test_page_in_headless_chromium(tiny_weights: Path, tiny_prop: Path, tiny_sched: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'); the page's screenshot test needs it")
    video = _video(tmp_path / "clip.mp4", 10)
    server = Server(video, tiny_weights, tiny_prop, tiny_sched)
    try:
        server.until(lambda s: s["state"] == "ended", "the end of the video")
        shot = tmp_path / "page.png"
        run = _chromium(tmp_path, server.url + "/", f"--screenshot={shot}")
        assert shot.is_file(), run.stderr[-2000:]
        page = cv2.imread(str(shot), cv2.IMREAD_COLOR)
        assert page is not None and page.shape[:2] == (800, 1280) and page.std() > 20  # not blank
        # the segmented frame the server shows (the video ended: its last frame) is on the page,
        # scaled to the image's 640 px width
        frame = cv2.imdecode(np.frombuffer(server.get("/frame.jpg")[1], np.uint8), cv2.IMREAD_COLOR)
        assert frame is not None
        small = cv2.resize(frame, (160, 120), interpolation=cv2.INTER_AREA)
        score = cv2.matchTemplate(cv2.resize(page, (320, 200), interpolation=cv2.INTER_AREA), small, cv2.TM_CCOEFF_NORMED).max()
        assert score > 0.9, f"the segmented frame is not on the page (best match {score:.2f})"
        # ... and it is an overlay: the frame's pixels blended half and half with the class colours
        # (2 x shown - frame is a palette colour, up to JPEG's error)
        raw = _last_frame(video)
        residual = 2 * frame[..., ::-1].astype(int) - raw.astype(int)
        palette = np.array(CAMVID.colors)
        dist = np.abs(residual[:, :, None, :] - palette[None, None]).max(-1).min(-1)
        assert np.median(dist) < 25, f"no class colours in the frame (median distance {np.median(dist)})"
        # an unknown mode sent by the page (?mode=NAME) is shown on it, with the server's message
        dom = _chromium(tmp_path, server.url + "/?mode=bogus", "--dump-dom").stdout
        assert 'id="error"' in dom and "unknown mode 'bogus'" in dom
        assert server.status()["mode"] == "low-latency"
    finally:
        rc, err = server.stop()
    assert rc in (0, 130) and "Traceback" not in err, err


def _last_frame(video: Path) -> np.ndarray:
    from lowlatseg.io.video import VideoReader

    with VideoReader(video) as r:
        *_, last = r
    return last
