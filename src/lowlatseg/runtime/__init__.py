"""Per-stream runtimes: objects with ``reset()`` and ``step(frame) -> FrameResult``.

The networks stay stateless; a runtime owns everything that lives from one frame to the next
(:class:`lowlatseg.runtime.state.StreamState`).
"""

from lowlatseg.runtime.frames import FrameResult, network_size, parse_size, prepare
from lowlatseg.defaults import MODES
from lowlatseg.runtime.stream import StreamRuntime, WorkerError

__all__ = ["FrameResult", "MODES", "StreamRuntime", "WorkerError", "network_size", "parse_size", "prepare"]
