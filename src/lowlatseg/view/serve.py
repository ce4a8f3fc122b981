"""``lowlatseg view``: open the source, start the segmentation thread, serve the page until stopped.

Order: the options are checked, the port is bound (held from then on, so nothing can take it
before the server starts), the source is opened and the model loaded; any of these failing is
a one-sentence :class:`UserError` before anything is served. Then the segmentation thread
starts and uvicorn serves on the bound socket until SIGINT / SIGTERM, which uvicorn re-raises
once every connection is closed (open frame streams end at once), as ``KeyboardInterrupt``
for SIGINT.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD
from lowlatseg.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ViewOptions:
    source: str  # video file, camera index ("0") or stream URL, as for `lowlatseg segment`
    host: str = DEFAULT_HOST  # a non-loopback address gets a warning: the stream is visible to the network
    port: int = DEFAULT_PORT  # 0: any free port (the URL printed says which)
    mode: str = "low-latency"  # the mode it starts in; the page can switch
    weights: Path | None = None  # None: the bundled default model
    propagation: Path | None = None
    scheduler: Path | None = None
    interval: int | None = None  # fixed mode's keyframe interval (default 5); low-latency: a fixed schedule
    size: str = "360"  # network input: 'HxW', a height keeping the aspect ratio, or 'native'
    alpha: float = 0.5  # opacity of the label colours (the page can change it)
    loop: bool = False  # a file that ends starts again
    spare_keyframes: bool = True  # low-latency: a keyframe on every frame while the stream leaves time for high
    propagation_method: str = DEFAULT_PROPAGATION_METHOD  # how non-key frames get their features (RuntimeConfig)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); a port in use or an address that is not this
    machine's is a one-sentence :class:`UserError`."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise UserError(f"--host {host} is not an address ({e.strerror}); use one such as 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (a port in use is still refused)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use; stop what uses it or pick another with --port") from None
        if e.errno == errno.EACCES:
            raise UserError(f"port {port} on {host} needs privileges; pick one above 1023 with --port") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UserError(f"--host {host} is not an address of this machine; use 127.0.0.1 or one of its own") from None
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --host or --port") from None
    return sock


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def serve(opts: ViewOptions, *, threads: int = 0, announce: Callable[[str], None] | None = None) -> None:
    """Serves the live view of ``opts.source`` until SIGINT / SIGTERM (see the module doc).

    ``threads``: torch threads of the segmentation thread (0: torch's current count);
    ``announce(url)``: called once the server is about to answer (default: print the URL)."""
    import torch

    from lowlatseg.checkpoint import load_model
    from lowlatseg.classes import CAMVID, LABEL_SETS
    from lowlatseg.io.video import VideoReader
    from lowlatseg.runtime import parse_size
    from lowlatseg.runtime.build import build_runtime
    from lowlatseg.runtime.config import RuntimeConfig
    from lowlatseg.runtime.stream import StreamRuntime
    from lowlatseg.view.render import OverlayRenderer, Segmented, check_alpha
    from lowlatseg.view.server import create_app
    from lowlatseg.view.slot import LatestFrame
    from lowlatseg.view.stats import LatencyStats
    from lowlatseg.view.stream import LiveSegmenter, check_mode

    check_mode(opts.mode)
    check_alpha(opts.alpha)
    size = parse_size(opts.size)
    if not 0 <= opts.port <= 65535:
        raise UserError(f"--port {opts.port} is not a port; use one in 1-65535 (0: any free one)")
    threads = threads or torch.get_num_threads()
    if not is_loopback(opts.host):
        print(f"lowlatseg: warning: --host {opts.host} is not a loopback address: anyone who can reach this "
              "machine can watch the stream and control it", file=sys.stderr)
    sock = bind_socket(opts.host, opts.port)
    segmenter: LiveSegmenter | None = None
    stopping = threading.Event()
    try:
        reader = VideoReader(opts.source)  # a source that cannot be opened fails here, before serving
        try:
            model = load_model(opts.weights)
            labelset = LABEL_SETS.get("cityscapes" if model.config.num_classes == 19 else "camvid", CAMVID)

            def make_runtime(mode: str) -> StreamRuntime:
                interval = opts.interval if mode in ("fixed", "low-latency") else None
                return build_runtime(model, RuntimeConfig(mode=mode, propagation=opts.propagation, scheduler=opts.scheduler,
                                                          interval=interval, size=size, threads=threads,
                                                          spare_keyframes=opts.spare_keyframes,
                                                          propagation_method=opts.propagation_method))

            runtime = make_runtime(opts.mode)
        except BaseException:
            reader.close()
            raise
        renderer = OverlayRenderer(labelset, alpha=opts.alpha)
        slot: LatestFrame[Segmented] = LatestFrame(renderer)
        segmenter = LiveSegmenter(reader, runtime, make_runtime, slot=slot, stats=LatencyStats(), loop=opts.loop,
                                  threads=threads)
        app = create_app(segmenter, slot, renderer, stopping=stopping)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3)
        server = _server(config, on_exit=stopping.set)
        segmenter.start()
        url = url_of(opts.host, sock.getsockname()[1])
        (announce or (lambda u: print(f"lowlatseg view: {opts.source} at {u} (Ctrl-C to stop)", flush=True)))(url)
        server.run(sockets=[sock])
    finally:
        stopping.set()
        if segmenter is not None:
            segmenter.slot.close()
            segmenter.stop()
        sock.close()


def _server(config: uvicorn.Config, on_exit: Callable[[], None]) -> uvicorn.Server:
    """uvicorn's server, which also calls ``on_exit`` on SIGINT / SIGTERM, so that the frame
    streams end and the shutdown does not wait for the browsers to go."""

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_exit()
            super().handle_exit(sig, frame)

    return Server(config)
