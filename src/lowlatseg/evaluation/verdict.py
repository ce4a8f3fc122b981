"""Does a video mode pay against the per-frame ladder? The trade-off's verdict, from its points.

A user who needs per-frame labels can always run a per-frame network instead, at one of the
ladder's sizes; a video mode is worth it only where it beats every such choice. For each point
``V`` that is not per-frame (mean latency ``t``, mIoU ``m``), against the per-frame points ``P``
of the same run:

* ``beats_as_fast``: ``m`` above every ``P`` with mean latency at most ``t`` (true when none is
  that fast);
* ``faster_than_as_accurate``: ``t`` below every ``P`` with mIoU at least ``m`` (true when none is
  that accurate);
* ``pareto``: both (``as_fast`` / ``as_accurate``: how many per-frame points each test met);
* ``cost_vs_fastest_as_accurate``: ``t`` over the mean latency of the fastest ``P`` with mIoU at
  least ``m`` (None when none is that accurate). For ``low-latency`` every frame is answered by
  propagation, so this is a propagated frame's cost against the per-frame network a user would
  pick for the same accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def verdicts(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per non-per-frame point of :func:`~lowlatseg.evaluation.tradeoff.tradeoff_points`
    (its ``model``, ``size``, ``method``, ``propagation``, ``interval``, ``miou`` and ``latency_ms`` mean), in the points' order."""
    ladder = [(p["latency_ms"]["mean"], p["miou"]) for p in points if p["method"] == "per-frame"]
    out = []
    for p in points:
        if p["method"] == "per-frame":
            continue
        t, m = p["latency_ms"]["mean"], p["miou"]
        as_accurate = [lt for lt, lm in ladder if lm >= m]
        beats = all(m > lm for lt, lm in ladder if lt <= t)
        faster = all(t < lt for lt in as_accurate)
        as_fast = sum(lt <= t for lt, _ in ladder)
        out.append({"model": p.get("model"), "size": p.get("size"), "method": p["method"], "propagation": p.get("propagation"),
                    "interval": p["interval"], "as_fast": as_fast, "as_accurate": len(as_accurate),
                    "beats_as_fast": beats,
                    "faster_than_as_accurate": faster, "pareto": beats and faster,
                    "cost_vs_fastest_as_accurate": round(t / min(as_accurate), 3) if as_accurate else None})
    return out
