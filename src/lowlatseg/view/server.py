"""The live view's web app (FastAPI): the page, its data, and the frames as MJPEG.

Routes (all JSON bodies and answers are UTF-8 JSON; errors are HTTP 400 with ``{"error": one
sentence}``, which the page shows):

* ``GET /``: the page (page.html, served from the package: no CDN, nothing from the network);
* ``GET /info.json``: ``classes`` [{name, color [r, g, b]}], ``modes``, ``source``, ``alpha``;
* ``GET /status.json``: ``frames``, ``mode``, ``latency_ms`` {mean, p95, max}, ``keyframe_fraction``,
  ``state``, ``message``, ``recent`` ... (see :meth:`LiveSegmenter.status`);
* ``GET /stream.mjpg``: ``multipart/x-mixed-replace`` JPEG parts, the newest frame each time
  (a slow client misses frames; without a new frame the current one is sent again every
  ``resend_s`` seconds, so a page opened after the video ended still shows its last frame);
* ``GET /frame.jpg``: the newest frame once (503 before the first);
* ``POST /mode`` {"mode": name}, ``POST /pause``, ``POST /resume``, ``POST /alpha`` {"alpha": 0..1}.

Every stream ends once ``stopping`` is set, so the server can shut down with a browser open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from lowlatseg.errors import UserError
from lowlatseg.defaults import MODES
from lowlatseg.view.render import OverlayRenderer, Segmented
from lowlatseg.view.slot import LatestFrame
from lowlatseg.view.stream import LiveSegmenter

BOUNDARY = "lowlatsegframe"
NO_CACHE = {"Cache-Control": "no-store"}


def page_html() -> str:
    """The page, as shipped in the package (package-data ``view/*.html``)."""
    return resources.files("lowlatseg.view").joinpath("page.html").read_text(encoding="utf-8")


def _error(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400, headers=NO_CACHE)


async def _body(request: Request, key: str) -> Any:
    """``key`` of the request's JSON object body; a one-sentence :class:`UserError` otherwise."""
    try:
        body = await request.json()
    except ValueError:
        raise UserError(f"the request body is not JSON; send {{\"{key}\": ...}}") from None
    if not isinstance(body, dict) or key not in body:
        raise UserError(f"the request body has no \"{key}\"; send {{\"{key}\": ...}}")
    return body[key]


def create_app(segmenter: LiveSegmenter, slot: LatestFrame[Segmented], renderer: OverlayRenderer, *,
               stopping: threading.Event, resend_s: float = 1.0) -> FastAPI:
    """The app for one segmenter; ``stopping`` set: every open frame stream ends."""
    app = FastAPI(title="lowlatseg view", docs_url=None, redoc_url=None, openapi_url=None)
    page = page_html()
    labelset = renderer.labelset
    # the frame streams wait on threads of their own, so that open streams never take the
    # threads the other routes run on (at most this many streams wait at once; more queue)
    waiters = anyio.CapacityLimiter(64)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=NO_CACHE)

    @app.get("/info.json")
    def info() -> JSONResponse:
        classes = [{"name": n, "color": list(c)} for n, c in zip(labelset.classes, labelset.colors)]
        return JSONResponse({"classes": classes, "modes": list(MODES), "source": segmenter.source,
                             "alpha": renderer.alpha, "labelset": labelset.name}, headers=NO_CACHE)

    @app.get("/status.json")
    def status() -> JSONResponse:
        return JSONResponse(segmenter.status(), headers=NO_CACHE)

    @app.get("/frame.jpg")
    def frame() -> Response:
        got = slot.jpeg()
        if got is None:
            return JSONResponse({"error": "no frame has been segmented yet; try again in a moment"}, status_code=503)
        return Response(got[1], media_type="image/jpeg", headers=NO_CACHE)

    @app.get("/stream.mjpg")
    def stream() -> StreamingResponse:
        return StreamingResponse(_parts(slot, stopping, resend_s, waiters), headers=NO_CACHE,
                                 media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")

    @app.post("/mode")
    async def mode(request: Request) -> JSONResponse:
        try:
            name = await _body(request, "mode")
            if not isinstance(name, str):
                raise UserError(f"mode {name!r} is not a name; choose one of: {', '.join(MODES)}")
            segmenter.request_mode(name)
        except UserError as e:
            return _error(str(e))
        return JSONResponse({"requested_mode": name})

    @app.post("/pause")
    def pause() -> JSONResponse:
        segmenter.pause()
        return JSONResponse({"paused": True})

    @app.post("/resume")
    def resume() -> JSONResponse:
        segmenter.resume()
        return JSONResponse({"paused": False})

    @app.post("/alpha")
    async def alpha(request: Request) -> JSONResponse:
        try:
            value = await _body(request, "alpha")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"opacity {value!r} is not a number; send one in [0, 1]")
            renderer.alpha = float(value)
        except UserError as e:
            return _error(str(e))
        slot.refresh()  # a paused or ended stream shows the new opacity too
        return JSONResponse({"alpha": renderer.alpha})

    return app


async def _parts(slot: LatestFrame[Segmented], stopping: threading.Event, resend_s: float,
                 waiters: anyio.CapacityLimiter) -> AsyncIterator[bytes]:
    """The multipart body: each part one JPEG, closed by the next boundary at once (so a browser
    shows it without waiting for the following frame)."""
    yield f"--{BOUNDARY}\r\n".encode()
    seen, sent_at = -1, 0.0
    while not stopping.is_set() and not slot.closed:
        # waits on a worker thread, at most a fraction of a second, so a stop is noticed soon
        got = await anyio.to_thread.run_sync(slot.wait_jpeg, seen, min(resend_s, 0.25), limiter=waiters)
        if got is None or stopping.is_set():
            continue  # nothing segmented yet, or stopping (the loop ends)
        version, jpeg = got
        if version == seen and time.monotonic() - sent_at < resend_s:
            continue
        seen, sent_at = version, time.monotonic()
        head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
        yield head + jpeg + f"\r\n--{BOUNDARY}\r\n".encode()
