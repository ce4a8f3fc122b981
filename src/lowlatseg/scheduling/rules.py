"""The adaptive keyframe rules, one object each, and the one keyframe decision they share.

A rule turns this frame's deviation (predicted or true: the fraction of feature-grid pixels
whose propagated label differs from the per-frame network's) and the deviations summed over the
frames asked since the keyframe into a level, and fires when the level passes the rule's number:

* :data:`INSTANT` (``instant``, the paper's): the level is this frame's deviation; its number is
  a ``threshold`` in [0, 1];
* :data:`ACCUMULATED` (``accumulated``): the level is the sum since the keyframe, this frame
  included; its number is a ``budget`` >= 0 ("frames' worth of deviating pixels"). If deviation
  grows at rate ``a`` per frame, the instant rule gives intervals ~ 1/a, the accumulated rule
  ~ 1/sqrt(a), which minimises the mean deviation of all frames for a given keyframe rate
  (minimise a*L/2 + lambda/L over the interval L).

:func:`decide_keyframe` is the one decision: the runtime's policies (scheduling/policies.py),
the calibration replay (scheduling/calibrate.py) and the schedule replay of ``eval scheduling``
(evaluation/schedules.py) all decide through it. A rule's ``name`` is how files and flags spell
it (scheduler files store it); :func:`as_rule` reads it back.

Adding a rule: one more frozen subclass of :class:`AdaptiveRule` with its ``name``, ``number``,
``search_max``, ``search_extra_steps``, ``level``, ``check`` and ``sweep_top``, listed in
:data:`RULES`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lowlatseg.errors import ParameterError, UserError


def check_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"{{threshold}} {threshold} is outside [0, 1]; it is a fraction of pixels (e.g. 0.1)", "threshold")
    return threshold


def check_budget(budget: float) -> float:
    if not budget >= 0.0 or budget == float("inf"):
        raise ParameterError(f"{{budget}} {budget} is not valid; it is a sum of deviations since the keyframe, a finite "
                             "number >= 0 (e.g. 0.5)", "budget")
    return budget


@dataclass(frozen=True)
class AdaptiveRule:
    """What every rule declares (each rule is a subclass with its own values and methods)."""

    name: str  # the saved / command-line spelling
    number: str  # what the rule's number is called: the runtime's parameter and the saved key
    search_max: float  # upper end when searching the number for a keyframe rate
    search_extra_steps: int  # bisection steps beyond the instant rule's, for the same resolution relative to the range

    def level(self, deviation: float, deviation_sum: float) -> float:
        """What the rule compares with its number (it fires when the level is above it)."""
        raise NotImplementedError

    def check(self, value: float) -> float:
        """``value`` if it is a valid number for the rule, else a clear error."""
        raise NotImplementedError

    def sweep_top(self, max_deviation: float, max_gap: int) -> float:
        """The largest number worth sweeping: past it the rule never fires within ``max_gap``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Instant(AdaptiveRule):
    """A keyframe when this frame's deviation passes the threshold."""

    name: str = "instant"
    number: str = "threshold"
    search_max: float = 1.0
    search_extra_steps: int = 0

    def level(self, deviation: float, deviation_sum: float) -> float:
        return deviation

    def check(self, value: float) -> float:
        return check_threshold(value)

    def sweep_top(self, max_deviation: float, max_gap: int) -> float:
        return max_deviation


@dataclass(frozen=True)
class Accumulated(AdaptiveRule):
    """A keyframe when the deviations summed since the keyframe (this frame's included) pass the budget."""

    name: str = "accumulated"
    number: str = "budget"
    search_max: float = 64.0
    search_extra_steps: int = 6

    def level(self, deviation: float, deviation_sum: float) -> float:
        return deviation_sum + deviation

    def check(self, value: float) -> float:
        return check_budget(value)

    def sweep_top(self, max_deviation: float, max_gap: int) -> float:
        return max_deviation * (max_gap + 1)


INSTANT = Instant()
ACCUMULATED = Accumulated()
RULES: tuple[AdaptiveRule, ...] = (INSTANT, ACCUMULATED)  # in the order tables list them


def as_rule(rule: AdaptiveRule | str) -> AdaptiveRule:
    """The rule itself, or the rule a file or flag names."""
    if not isinstance(rule, str):
        return rule
    for r in RULES:
        if r.name == rule:
            return r
    raise UserError(f"unknown adaptive rule {rule!r}; choose one of: {', '.join(r.name for r in RULES)}")


def other_rules(rule: AdaptiveRule | str) -> list[AdaptiveRule]:
    """Every rule but ``rule``, in :data:`RULES` order."""
    own = as_rule(rule)
    return [r for r in RULES if r != own]


def decide_keyframe(rule: AdaptiveRule, value: float, deviation: float, deviation_sum: float, *,
                    forced: bool = False) -> tuple[bool, float]:
    """One frame's keyframe decision, pure: ``(keyframe, deviation sum after this frame)``.

    ``deviation``: this frame's; ``deviation_sum``: of the frames asked since the keyframe, this
    one not counted; ``forced``: a keyframe whatever the rule says (a gap at its limit). A
    keyframe starts the sum again (0.0); otherwise this frame's deviation joins it."""
    if rule.level(deviation, deviation_sum) > value or forced:
        return True, 0.0
    return False, deviation_sum + deviation
