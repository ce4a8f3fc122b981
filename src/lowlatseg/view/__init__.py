"""``lowlatseg view``: a local web page showing a stream segmented live.

* :mod:`~lowlatseg.view.serve`: options, binding the port, running the server (``serve``);
* :mod:`~lowlatseg.view.stream`: the segmentation thread (``LiveSegmenter``);
* :mod:`~lowlatseg.view.stats`: its latency statistics (``LatencyStats``);
* :mod:`~lowlatseg.view.slot`: the latest-frame slot between it and the browsers (``LatestFrame``);
* :mod:`~lowlatseg.view.render`: a segmented frame as the page's JPEG (``OverlayRenderer``);
* :mod:`~lowlatseg.view.server`: the FastAPI app (``create_app``); ``page.html``: the page.

Python::

    from lowlatseg.view import ViewOptions, serve
    serve(ViewOptions("clip.mp4", port=8000))   # until Ctrl-C
"""

from lowlatseg.view.serve import ViewOptions, serve

__all__ = ["ViewOptions", "serve"]
