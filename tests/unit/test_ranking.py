"""The one rule for "best": the better finite value of a completed run; on a tie, the run created first."""
from __future__ import annotations

import math

from aml_magics.core import ranking
from aml_magics.core.types import RunInfo


def child(run_id: str, value, created: float, status: str = "Completed") -> RunInfo:
    return RunInfo(run_id=run_id, experiment="e", status=status, kind="child", created=created,
                   latest_metrics={} if value is None else {"acc": value})


def test_the_better_value_wins_under_either_goal():
    runs = [child("a", 0.5, 1), child("b", 0.7, 2), child("c", 0.6, 3)]
    assert ranking.best_child(runs, "acc", "max").run_id == "b"
    assert ranking.best_child(runs, "acc", "min").run_id == "a"


def test_a_tie_goes_to_the_run_created_first_whatever_the_order_given():
    runs = [child("late", 0.94889, 30), child("early", 0.94889, 10), child("middle", 0.94889, 20)]
    assert ranking.best_child(runs, "acc", "max").run_id == "early"
    assert ranking.best_child(list(reversed(runs)), "acc", "min").run_id == "early"


def test_only_completed_runs_with_a_finite_number_take_part():
    runs = [child("failed", 0.99, 1, "Failed"), child("nan", math.nan, 2), child("inf", math.inf, 3),
            child("text", "high", 4), child("flag", True, 5), child("none", None, 6), child("ok", 0.1, 7)]
    assert ranking.best_child(runs, "acc", "max").run_id == "ok"
    assert ranking.best_child(runs[:-1], "acc", "max") is None


def test_is_better_keeps_the_incumbent_on_a_tie():
    assert ranking.is_better(1.0, None, "max") and ranking.is_better(1.0, None, "min")
    assert not ranking.is_better(1.0, 1.0, "max") and not ranking.is_better(1.0, 1.0, "min")
    assert ranking.is_better(2.0, 1.0, "max") and ranking.is_better(0.5, 1.0, "min")
