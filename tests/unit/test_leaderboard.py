"""The trials' leaderboard: what columns, in what order, sorted how, and what a static export shows."""
from __future__ import annotations

from aml_magics.core.types import RunInfo
from aml_magics.widgets import leaderboard


def trial(n: int, acc: float, params: dict, name: str | None = None, **metrics) -> RunInfo:
    return RunInfo(run_id=f"sweep_{n:06d}", experiment="e", status="Completed", kind="child", created=float(n),
                   started=float(n), ended=n + 1.5, display_name=name or f"trial {n}", params=params,
                   latest_metrics={"acc": acc, "tracking_overhead_s": 0.01, "trial_time_s": 1.0, **metrics})


def test_the_primary_metric_is_second_and_sorts_best_first():
    infos = [trial(1, 0.8, {"lr": "0.1", "layers": "3"}), trial(2, 0.9, {"lr": "0.01", "layers": "3"}),
             trial(3, 0.7, {"lr": "0.001", "layers": "3"}, loss=0.2)]
    board = leaderboard.build(infos, "acc", "max", "sweep")
    keys = [c["key"] for c in board.columns]
    assert keys[:3] == ["name", "m.acc", "status"]
    assert "p.lr" in keys and "p.layers" not in keys  # only what varies
    assert "m.tracking_overhead_s" not in keys and "m.trial_time_s" not in keys  # bookkeeping hidden
    assert keys[-2:] == ["m.loss", "duration"]
    assert board.sort == {"key": "m.acc", "desc": True} and board.best == "sweep_000002"
    assert leaderboard.build(infos, "acc", "min", "sweep").sort == {"key": "m.acc", "desc": False}


def test_automl_shows_the_algorithm_third_and_categories_spread_on_their_axis():
    infos = [trial(1, 0.8, {"algorithm": "LightGBM", "num_leaves": "4"}),
             trial(2, 0.9, {"algorithm": "RandomForest", "num_leaves": "4"}),
             trial(3, 0.85, {"algorithm": "LightGBM", "num_leaves": "31"})]
    board = leaderboard.build(infos, "acc", "max", "automl")
    assert [c["key"] for c in board.columns][:5] == ["name", "m.acc", "status", "p.algorithm", "p.num_leaves"]
    algo = next(d for d in board.dims if d["name"] == "algorithm")
    assert algo["categories"] == ["LightGBM", "RandomForest"] and algo["values"] == [0.0, 1.0, 0.0]
    leaves = next(d for d in board.dims if d["name"] == "num_leaves")
    assert "categories" not in leaves and leaves["values"] == [4.0, 4.0, 31.0]
    assert board.dims[-1]["name"] == "acc"

    assert "log" not in leaves  # 4 to 31: under two decades, a linear axis


def test_a_parameter_spanning_decades_gets_a_log_axis():
    infos = [trial(1, 0.8, {"alpha": "0.0001", "kernel": "rbf"}), trial(2, 0.9, {"alpha": "0.1", "kernel": "rbf"}),
             trial(3, 0.7, {"alpha": "10", "kernel": "linear"})]
    dims = {d["name"]: d for d in leaderboard.build(infos, "acc", "max", "sweep").dims}
    assert dims["alpha"]["log"] is True and dims["alpha"]["values"] == [0.0001, 0.1, 10.0]
    assert "log" not in dims["kernel"] and "log" not in dims["acc"]
    negative = [trial(1, 0.8, {"shift": "-5"}), trial(2, 0.9, {"shift": "500"})]
    assert "log" not in leaderboard.build(negative, "acc", "max", "sweep").dims[0]


def test_equal_display_names_are_told_apart():
    infos = [trial(1, 0.8, {"a": "1"}, name="same"), trial(2, 0.9, {"a": "2"}, name="same"),
             trial(3, 0.7, {"a": "3"}, name="other")]
    names = [row["name"] for row in leaderboard.build(infos, "acc", "max").rows]
    assert names == ["same (000001)", "same (000002)", "other"]


def test_the_static_export_shows_the_top_ten_best_first_with_names_as_text():
    infos = [trial(n, n / 100, {"k": str(n)}, name=f"<b>t{n}</b>") for n in range(1, 13)]
    html = leaderboard.static_html(leaderboard.build(infos, "acc", "max"))
    assert "top 10 of 12" in html and "overflow-x:auto" in html
    assert html.index("&lt;b&gt;t12&lt;/b&gt;") < html.index("&lt;b&gt;t3&lt;/b&gt;") and "t2&lt;" not in html
    assert "<b>t12</b>" not in html
