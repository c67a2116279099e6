"""Which child run is best: one rule, used by ``get_best_run_by_primary_metric()``, the sweep controller, the
AutoML engine and every leaderboard.

Only completed runs with a finite value of the primary metric take part. The better value wins (higher for
``max``, lower for ``min``); on a tie, the run that was created first wins — the one a sweep's log announced as
best when it finished.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")


def is_better(a: float, b: float | None, goal: str) -> bool:
    """Whether ``a`` beats ``b`` (a tie does not: the earlier one keeps its place)."""
    if b is None:
        return True
    return a > b if goal == "max" else a < b


def score(value: Any) -> float | None:
    """A value that can be ranked, or None (missing, text, NaN, infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def best(items: Iterable[T], value: Callable[[T], Any], goal: str, *,
         eligible: Callable[[T], bool] = lambda _: True, order: Callable[[T], Any] | None = None) -> T | None:
    """The best of ``items`` by ``value`` under ``goal``; ties go to the first by ``order`` (default: as given)."""
    ranked = sorted(items, key=order) if order is not None else list(items)
    winner, winning = None, None
    for item in ranked:
        v = score(value(item)) if eligible(item) else None
        if v is not None and is_better(v, winning, goal):
            winner, winning = item, v
    return winner


def best_child(children: Iterable[Any], metric: str, goal: str) -> Any:
    """The best of a sweep's or AutoML run's children (``RunInfo``): completed, ranked by ``metric``."""
    return best(children, lambda c: c.latest_metrics.get(metric), goal,
                eligible=lambda c: c.status == "Completed",
                order=lambda c: (c.created or 0.0, c.run_id))
