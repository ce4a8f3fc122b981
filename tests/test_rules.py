"""The adaptive rules and the one keyframe decision: each rule's contract, the pure step, and the
rule names scheduler files store. (That the runtime, the calibration replay and the schedule
replay decide alike: tests/test_runtime.py and tests/test_schedules.py.)"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lowlatseg.errors import ParameterError, UserError
from lowlatseg.scheduling.rules import ACCUMULATED, INSTANT, RULES, as_rule, decide_keyframe, other_rules

DEVIATIONS = [0.05, 0.2, 0.01, 0.3, 0.3, 0.02, 0.5, 0.0, 0.1, 0.4]


def _replay(rule, value: float, devs: list[float]) -> list[bool]:
    out, acc = [], 0.0
    for d in devs:
        choose, acc = decide_keyframe(rule, value, d, acc)
        out.append(choose)
    return out


def test_names_are_the_saved_spelling_and_read_back() -> None:
    assert [r.name for r in RULES] == ["instant", "accumulated"]
    assert all(as_rule(r.name) is r and as_rule(r) is r for r in RULES)
    assert [r.number for r in RULES] == ["threshold", "budget"]
    assert other_rules("instant") == [ACCUMULATED] and other_rules(ACCUMULATED) == [INSTANT]
    with pytest.raises(UserError, match="unknown adaptive rule 'sometimes'; choose one of: instant, accumulated"):
        as_rule("sometimes")


def test_the_step_is_pure_and_restarts_the_sum_at_a_keyframe() -> None:
    assert decide_keyframe(ACCUMULATED, 1.0, 0.3, 0.5) == (False, 0.8)
    assert decide_keyframe(ACCUMULATED, 1.0, 0.6, 0.5) == (True, 0.0)
    assert decide_keyframe(INSTANT, 0.5, 0.3, 10.0) == (False, 10.3)  # instant ignores the sum, still carries it
    assert decide_keyframe(INSTANT, 0.5, 0.0, 0.0, forced=True) == (True, 0.0)
    assert _replay(ACCUMULATED, 0.5, DEVIATIONS) == _replay(ACCUMULATED, 0.5, DEVIATIONS)  # no hidden state


@pytest.mark.parametrize("value", [0.0, 0.15, 0.35, 1.0])
def test_instant_fires_on_this_frame_alone(value: float) -> None:
    assert _replay(INSTANT, value, DEVIATIONS) == [d > value for d in DEVIATIONS]


@pytest.mark.parametrize("budget", [0.0, 0.25, 0.6, 2.0])
def test_accumulated_fires_when_the_sum_since_the_keyframe_passes_the_budget(budget: float) -> None:
    want, acc = [], 0.0
    for d in DEVIATIONS:
        want.append(acc + d > budget)
        acc = 0.0 if want[-1] else acc + d
    assert _replay(ACCUMULATED, budget, DEVIATIONS) == want


@pytest.mark.parametrize("rule", RULES)
def test_more_number_never_more_keyframes_and_the_search_range_covers_both_ends(rule) -> None:
    counts = [sum(_replay(rule, v, DEVIATIONS)) for v in (0.0, 0.1, 0.3, 0.7, rule.search_max)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == sum(d > 0 for d in DEVIATIONS) and counts[-1] == 0
    top = rule.sweep_top(max(DEVIATIONS), len(DEVIATIONS))
    assert sum(_replay(rule, top, DEVIATIONS)) == 0


def test_each_rule_checks_its_own_number_and_names_the_parameter() -> None:
    assert INSTANT.check(0.5) == 0.5 and ACCUMULATED.check(5.0) == 5.0
    with pytest.raises(ParameterError, match=r"^threshold 1.5 is outside \[0, 1\]"):
        INSTANT.check(1.5)
    for bad in (-0.1, math.inf, math.nan):
        with pytest.raises(ParameterError, match=r"^budget .* is not valid"):
            ACCUMULATED.check(bad)


def test_scheduler_files_store_the_rule_by_name_and_old_files_still_load(tmp_path: Path, tiny_weights: Path,
                                                                         tiny_sched: Path) -> None:
    from lowlatseg.checkpoint import load_model
    from lowlatseg.scheduling.weights import load_scheduler

    model = load_model(tiny_weights)
    obj = torch.load(tiny_sched, map_location="cpu", weights_only=True)
    assert obj["default_rule"] in [r.name for r in RULES]
    _, defaults = load_scheduler(tiny_sched, model)
    assert defaults.value(defaults.rule) == obj[f"default_{as_rule(defaults.rule).number}"]
    old = dict(obj)
    del old["default_rule"]  # written before the accumulated rule existed
    torch.save(old, tmp_path / "old.pt")
    _, defaults = load_scheduler(tmp_path / "old.pt", model)
    assert defaults.rule == "instant" and defaults.value(INSTANT) == obj["default_threshold"]
