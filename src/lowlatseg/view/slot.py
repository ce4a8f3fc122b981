"""The latest-frame slot between the segmentation thread and the browsers.

The segmentation thread :meth:`~LatestFrame.put`\\ s every segmented frame and never waits for
a reader: a put replaces whatever was there, so a browser slower than the stream simply misses
frames (only the page drops frames, never the segmentation). Readers ask for the JPEG of the
newest frame; it is rendered (blended and encoded) at most once per frame, on the reader's
thread, and only if some reader asks, so a server nobody watches spends nothing on display.
Versions count puts from 1; 0 means nothing has been put yet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestFrame(Generic[T]):
    """One slot holding the newest item and its version; ``render`` turns an item into JPEG bytes."""

    def __init__(self, render: Callable[[T], bytes]) -> None:
        self._render = render
        self._cond = threading.Condition()
        self._item: T | None = None
        self._version = 0
        self._closed = False
        self._encode_lock = threading.Lock()
        self._cached: tuple[int, bytes] | None = None

    @property
    def version(self) -> int:
        return self._version

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> None:
        """Replaces the item (the segmentation thread; O(1), never blocks on a reader)."""
        with self._cond:
            self._item = item
            self._version += 1
            self._cond.notify_all()

    def refresh(self) -> None:
        """The same item is to be rendered anew (e.g. the overlay opacity changed)."""
        with self._cond:
            if self._item is not None:
                self._version += 1
                self._cond.notify_all()

    def close(self) -> None:
        """Wakes every waiting reader; :meth:`wait_jpeg` answers None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def jpeg(self) -> tuple[int, bytes] | None:
        """(version, JPEG) of the newest item, or None before the first put."""
        with self._encode_lock:
            with self._cond:
                item, version = self._item, self._version
            if item is None:
                return None
            if self._cached is None or self._cached[0] != version:
                self._cached = (version, self._render(item))
            return self._cached

    def wait_jpeg(self, seen: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest (version, JPEG) once its version differs from ``seen``; after ``timeout``
        seconds without a new item, the current one again (or None if there is none, or the slot
        is closed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._version != seen and self._item is not None), timeout)
            if self._closed:
                return None
        return self.jpeg()
