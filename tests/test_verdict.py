"""The trade-off's verdict against the per-frame ladder (evaluation/verdict.py), by its definition."""

from __future__ import annotations

from lowlatseg.evaluation.verdict import verdicts


def _p(method: str, miou: float, mean: float, interval: int | None = None) -> dict:
    return {"method": method, "interval": interval, "miou": miou, "latency_ms": {"mean": mean}}


LADDER = [_p("per-frame", 69.0, 40.0), _p("per-frame", 66.0, 25.0), _p("per-frame", 68.0, 27.0)]


def test_a_point_faster_than_the_whole_ladder_is_pareto_whatever_its_accuracy() -> None:
    (v,) = verdicts([*LADDER, _p("low-latency", 62.0, 18.0, 5)])
    assert v["pareto"] and v["beats_as_fast"] and v["faster_than_as_accurate"]
    assert v["cost_vs_fastest_as_accurate"] == round(18.0 / 25.0, 3)  # the fastest point with >= 62


def test_a_point_beaten_on_both_axes_is_not() -> None:
    (v,) = verdicts([*LADDER, _p("adaptive", 65.0, 26.0, 5)])
    assert not v["beats_as_fast"] and not v["faster_than_as_accurate"] and not v["pareto"]
    assert v["cost_vs_fastest_as_accurate"] == round(26.0 / 25.0, 3)


def test_more_accurate_than_every_per_frame_point_has_no_cost_ratio() -> None:
    (v,) = verdicts([*LADDER, _p("flow-guided", 70.0, 45.0, 5)])
    assert v["pareto"] and v["cost_vs_fastest_as_accurate"] is None
    # a tie in accuracy counts as "as accurate"; a tie in latency as "as fast"
    (tie,) = verdicts([*LADDER, _p("x", 66.0, 25.0, 5)])
    assert not tie["beats_as_fast"] and not tie["faster_than_as_accurate"]


def test_one_verdict_per_video_point_in_order() -> None:
    pts = [*LADDER, _p("a", 60.0, 10.0, 2), _p("b", 61.0, 11.0, 5)]
    assert [(v["method"], v["interval"]) for v in verdicts(pts)] == [("a", 2), ("b", 5)]
    assert verdicts(LADDER) == []


def test_counts_say_when_a_test_is_vacuous() -> None:
    (v,) = verdicts([*LADDER, _p("low-latency", 62.0, 18.0, 5)])
    assert v["as_fast"] == 0 and v["as_accurate"] == 3
    (w,) = verdicts([*LADDER, _p("adaptive", 67.0, 26.0, 5)])
    assert w["as_fast"] == 1 and w["as_accurate"] == 2


def test_a_verdict_names_its_point_by_model_and_size() -> None:
    pts = [*LADDER, {**_p("low-latency", 62.0, 18.0, 5), "model": "llnet-e", "size": "360x480"},
           {**_p("low-latency", 60.0, 12.0, 5), "model": "llnet-e", "size": "240x320"}]
    assert [(v["model"], v["size"]) for v in verdicts(pts)] == [("llnet-e", "360x480"), ("llnet-e", "240x320")]
