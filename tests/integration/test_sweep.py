"""Hyperparameter sweeps: real controller and trial processes on the local compute, real store."""
from __future__ import annotations

import itertools
import os
import re
import signal
import time

import pytest
from IPython.core.error import UsageError

from aml_magics.core.errors import InvalidInput
from aml_magics.sweep.policies import Policy
from aml_magics.sweep.space import choice, loguniform, normal, parse_cell, qlognormal, quniform, randint, trial_code

from ..conftest import wait_until

TRIAL = """
import time
from aml_magics import Run
run = Run.get_context()
quality = choice(0.3, 0.95, 1.0)
for step in range(8):
    run.log("acc", quality)
    time.sleep(0.15)
"""


def sweep(ip, options: str, cell: str):
    return ip.run_cell_magic("aml", f"sweep {options}", cell)


def test_expressions_map_to_optuna_and_back():
    import optuna

    for expr, value in ((choice(0.1, "a", 3), "a"), (randint(5), 3), (quniform(0, 10, 2), 4),
                        (loguniform(-5, 0), 0.01), (normal(0, 1), 0.5), (qlognormal(0, 1, 0.5), 1.5)):
        dist = expr.distribution()
        internal = expr.internal(value)
        assert dist._contains(dist.to_internal_repr(internal))
        assert expr.value(internal) == pytest.approx(value)
    with pytest.raises(Exception, match="low < high"):
        quniform(5, 1, 1)
    space, spans = parse_cell("a = 1\nC = choice(0.1, 1)\nlr = loguniform(-3,\n   -1)\nprint(C)\n")
    assert set(space) == {"C", "lr"} and spans == [("C", 2, 2), ("lr", 3, 4)]
    code = trial_code("a = 1\nC = choice(0.1, 1)\nlr = loguniform(-3,\n   -1)\nprint(C)\n", spans, {"C": 1, "lr": 0.1})
    assert code.splitlines() == ["a = 1", "C = 1  # sweep parameter", "lr = 0.1  # sweep parameter", "print(C)"]
    assert optuna  # the controller's dependency is importable
    # choice(range(…)) as Azure ML's documentation writes it (it was refused: "must be literals"); a range too big,
    # of non-whole numbers, beside other options, or in another expression is one line
    assert parse_cell("n = choice(range(1, 9, 3))\n")[0]["n"].args == (1, 4, 7)
    for bad, says in [("choice(range(10**12))", "must be literals"), ("choice(range(1000000000))", "more than 100,000"),
                      ("choice(range(1.5))", "or one range"), ("choice(range(0, 5, 0))", "or one range"),
                      ("choice(range(3), 7)", "or one range"), ("uniform(range(3))", "must be literals (numbers"),
                      ("choice(range(0))", "at least one option")]:
        with pytest.raises(InvalidInput, match=re.escape(says)):
            parse_cell(f"n = {bad}\n")


def test_bandit_policy_on_a_synthetic_objective():
    policy = Policy("bandit", slack_factor=0.1).validate()
    values = {"good": [0.5, 0.8, 1.0], "close": [0.5, 0.78, 0.95], "bad": [0.5, 0.6, 0.3]}
    judged: dict = {}
    stop = policy.evaluate(values, True, {"good", "close", "bad"}, judged)
    assert set(stop) == {"bad"} and "at interval 2" in stop["bad"] and "bandit" in stop["bad"]  # 0.6 < 0.8/1.1
    assert policy.evaluate(values, True, {"good", "close", "bad"}, judged) == {}  # judged once per interval
    median = Policy("median").validate()
    assert set(median.evaluate({"a": [1, 1], "b": [0.2, 0.1], "c": [0.9, 0.9]}, True, {"b"}, {})) == {"b"}
    trunc = Policy("truncation", truncation_percentage=34).validate()
    assert set(trunc.evaluate({"a": [3], "b": [1], "c": [2]}, True, {"a", "b", "c"}, {})) == {"b"}


def test_a_trial_running_ahead_is_judged_once_another_reaches_its_interval():
    """The bad trial started first and has logged 4 values while the others have 1, then 3: it is judged at
    each interval as soon as a comparison exists (not skipped for having been alone there)."""
    policy = Policy("bandit", slack_factor=0.1).validate()
    judged: dict = {}
    bad = [0.3, 0.3, 0.3, 0.3]
    assert policy.evaluate({"bad": bad, "good": []}, True, {"bad", "good"}, judged) == {}  # alone: nothing to judge
    stop = policy.evaluate({"bad": bad, "good": [0.9]}, True, {"bad", "good"}, judged)
    assert set(stop) == {"bad"} and "at interval 1" in stop["bad"]
    judged = {}
    steady = {"lead": [0.9, 0.9, 0.9, 0.9], "late": [0.95]}  # the leader is within the slack at 1: goes on
    assert policy.evaluate(steady, True, {"lead", "late"}, judged) == {} and judged["lead"] == 1
    steady["late"] += [0.95, 2.0]
    stop = policy.evaluate(steady, True, {"lead", "late"}, judged)
    assert set(stop) == {"lead"} and "at interval 3" in stop["lead"]
    delayed = Policy("bandit", slack_factor=0.1, evaluation_interval=2, delay_evaluation=2).validate()
    j: dict = {}
    assert delayed.evaluate({"a": [0.1] * 3, "b": [1.0] * 3}, True, {"a"}, j) == {}  # k=2 is within the delay
    assert "at interval 4" in delayed.evaluate({"a": [0.1] * 4, "b": [1.0] * 4}, True, {"a"}, j)["a"]


def test_a_seeded_policy_decides_the_same_whatever_the_timing():
    """With an order (a seeded sweep), a trial is compared only with the trials before it, once they have reached
    its interval or ended: the same decisions however the values arrive."""
    policy = Policy("bandit", slack_factor=0.1).validate()
    order = {"a": 1, "b": 2, "c": 3}
    final = {"a": [0.9, 0.9, 0.9], "b": [0.5, 0.5, 0.5], "c": [0.95, 0.96, 0.97]}

    def play(steps):
        judged, stopped_at, decisions = {}, {}, {}
        for seen, ended in steps:
            values = {t: final[t][:n] for t, n in seen.items()}
            running = {t for t in values if t not in ended}
            decisions.update(policy.evaluate(values, True, running, judged, order, set(ended), stopped_at))
        return stopped_at, {t: r.split(":")[0] for t, r in decisions.items()}

    # b races ahead before a has logged anything; then a catches up; c comes last
    racing = play([({"a": 0, "b": 3}, ()), ({"a": 1, "b": 3}, ()), ({"a": 3, "b": 3, "c": 3}, ("a", "b", "c"))])
    # a finishes, then b (seen only once it has ended), then c
    steady = play([({"a": 3}, ("a",)), ({"a": 3, "b": 3}, ("a", "b")), ({"a": 3, "b": 3, "c": 3}, ("a", "b", "c"))])
    assert racing[0] == steady[0] == {"b": 1}  # b is stopped at interval 1 both times; c never (it leads)
    assert racing[1] == {"b": "early terminated by the bandit policy at interval 1"}
    assert steady[1] == {}  # b had ended before its stop: nothing to cancel, recorded as stopped all the same


def test_a_seeded_bayesian_sweep_repeats_its_trials(ip, client):
    """Two runs of the same seeded Bayesian sweep with early termination and 3 trials at a time, whose trials
    take random times: the same parameters, trial by trial (before seeded sweeps were ordered, 3 in 4 such pairs differed)."""
    cell = ("import os, time\nfrom aml_magics import Run\nrun = Run.get_context()\nx = uniform(0, 1)\n"
            "for i in range(3):\n    time.sleep(os.urandom(1)[0] / 255 * 0.2)\n    run.log('score', x * (i + 1))\n")
    options = "--metric score --trials 10 --parallel 3 --sampling bayesian --seed 7 --early-stop bandit " \
              "--slack-factor 0.2 -e seeded --wait"
    runs = []
    for _ in range(2):
        parent = sweep(ip, options, cell)
        children = client.runs.children(parent.id).infos
        runs.append({int(c.tags["sweep.trial"]): c.params["x"] for c in children})
    assert len(runs[0]) == 10 and runs[0] == runs[1]


def test_grid_sweep_covers_the_grid_and_records_every_trial(ip, client, capsys):
    cell = "from aml_magics import Run\nrun = Run.get_context()\na = choice(1, 2)\nb = choice('x', 'y', 'z')\n" \
           "run.log('score', a * {'x': 1, 'y': 2, 'z': 3}[b])\n"
    parent = sweep(ip, "--metric score --sampling grid --parallel 2 -e grid --wait", cell)
    assert "never reads" not in capsys.readouterr().err  # both are read
    # a declared parameter the cell never reads: said (the trials would all run alike)
    idle = ip.run_cell_magic("aml", "sweep --metric score --trials 1 -e grid", cell + "c = choice(1, 2)\n")
    assert "Note: the cell never reads c after declaring it: the trials would not differ in it." in \
        capsys.readouterr().err
    client.runs.wait(idle.id, timeout=60)
    info = client.runs.get(parent.id)
    assert info.status == "Completed" and info.kind == "sweep"
    children = client.runs.children(parent.id).infos
    combos = {(c.params["a"], c.params["b"]) for c in children}
    assert combos == {(str(a), b) for a, b in itertools.product((1, 2), "xyz")}
    assert all(c.status == "Completed" and c.latest_metrics["score"] > 0 for c in children)
    assert client.runs.get_metrics(parent.id)["trial_score"] and info.latest_metrics["score"] == 6
    best = parent.get_best_run_by_primary_metric()
    assert client.runs.get(best.id).params == {"a": "2", "b": "z"}


def test_a_grid_of_a_hundred_million_points_runs_its_first_trials(ip, client, capsys):
    """The grid is walked, not built: as a list of 10⁸ points it took the controller's memory until the OOM killer
    ended it (80 s, "killed by SIGKILL"). A --trials above a small grid's size is said, not silently cut."""
    names = [f"p{i}" for i in range(8)]
    cell = "".join(f"{n} = choice(range(10))\n" for n in names) + \
        "from aml_magics import Run\nRun.get_context().log('m', p6 * 10 + p7 + 0 * (p0 + p1 + p2 + p3 + p4 + p5))\n"
    parent = sweep(ip, "--metric m --sampling grid --trials 3 -e biggrid --wait", cell)
    info = client.runs.get(parent.id)
    assert info.status == "Completed", client.runs.get_logs(parent.id)[-2000:]
    children = client.runs.children(parent.id).infos
    assert sorted(c.latest_metrics["m"] for c in children) == [0, 1, 2]  # the grid's first points, in order
    assert "Note:" not in capsys.readouterr().err

    parent = sweep(ip, "--metric m --sampling grid --trials 9 -e smallgrid --wait",
                   "a = choice(1, 2)\nfrom aml_magics import Run\nRun.get_context().log('m', a)\n")
    assert "the grid has 2 points, so the sweep runs 2 trials, not 9" in capsys.readouterr().err
    assert len(client.runs.children(parent.id).infos) == 2


def test_a_space_longer_than_a_param_holds_is_shown_cut_and_the_sweep_runs(ip, client):
    """The sweep run records its space as params; ``choice(range(3000))`` reads as 16,896 characters, over MLflow's
    6,000 that params now keep to (an error for the user's own params): the sweep's own is cut, and it runs."""
    parent = sweep(ip, "--metric m --trials 2 -e widespace --wait",
                   "n = choice(range(3000))\nfrom aml_magics import Run\nRun.get_context().log('m', n)\n")
    info = client.runs.get(parent.id)
    assert info.status == "Completed", client.runs.get_logs(parent.id)[-2000:]
    shown = info.params["n"]
    assert len(shown) == 6000 and shown.startswith("choice(0, 1, 2, ") and shown.endswith("…")
    children = client.runs.children(parent.id).infos
    assert len(children) == 2 and all(0 <= int(c.params["n"]) < 3000 for c in children)


def test_tied_trials_have_one_best_everywhere(ip, client):
    """Every trial scores the same, and later trials end first: the sweep's log and tags,
    get_best_run_by_primary_metric() and the dashboard's highlighted row all name the first trial."""
    from aml_magics.widgets.run_details import RunDetails

    cell = ("import time\nfrom aml_magics import Run\nk = choice(1, 2, 3, 4)\ntime.sleep(0.6 / k)\n"
            "Run.get_context().log('acc', 0.94889)\n")
    parent = sweep(ip, "--metric acc --sampling grid --parallel 4 -e ties --wait", cell)
    children = sorted(client.runs.children(parent.id).infos, key=lambda c: c.created)
    assert len(children) == 4 and {c.latest_metrics["acc"] for c in children} == {0.94889}
    first = children[0].run_id
    assert parent.get_tags()["best_run"] == first
    assert parent.get_best_run_by_primary_metric().id == first
    assert f"({first})" in client.runs.get_logs(parent.id)
    assert RunDetails(parent.id, client, live=False).children_table.highlight == first


def test_bandit_cancels_trials_below_the_slack(ip, client):
    client.computes.create("pool", max_concurrent=3)
    parent = sweep(ip, "--metric acc --sampling grid --parallel 3 -c pool --early-stop bandit --slack-factor 0.1 "
                       "-e bandit --wait", TRIAL)
    children = {c.params["quality"]: c for c in client.runs.children(parent.id).infos}
    assert children["0.3"].status == "Canceled"
    history = client.backend.store.status_history(children["0.3"].run_id)
    assert "bandit" in (history[-1]["reason"] or "")
    assert children["1.0"].status == "Completed" and children["0.95"].status == "Completed"
    assert client.runs.get(parent.id).status == "Completed"


def test_parallel_trials_respect_the_compute_limit(ip, client):
    client.computes.create("single", max_concurrent=1)
    cell = "import time\nfrom aml_magics import Run\nx = uniform(0, 1)\ntime.sleep(0.3)\nRun.get_context().log('x', x)\n"
    parent = sweep(ip, "--metric x --trials 3 --parallel 3 -c single -e limit --wait", cell)
    children = client.runs.children(parent.id).infos
    assert len(children) == 3 and all(c.status == "Completed" for c in children)
    spans = sorted((c.started, c.ended) for c in children)
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert s2 >= e1 - 0.05, "two trials ran at once on a compute limited to one"


def test_failing_trials_are_recorded_and_the_search_goes_on(ip, client):
    cell = "from aml_magics import Run\nC = choice(1, 2, 3, 4)\nif C == 2:\n    raise ValueError('C=2 diverges')\n" \
           "Run.get_context().log('acc', C)\n"
    parent = sweep(ip, "--metric acc --sampling grid -e fails --wait", cell)
    children = {c.params["C"]: c for c in client.runs.children(parent.id).infos}
    assert children["2"].status == "Failed" and "diverges" in children["2"].error
    assert all(children[k].status == "Completed" for k in ("1", "3", "4"))
    assert client.runs.get(parent.id).status == "Completed"

    always = "C = choice(1, 2, 3, 4, 5)\nraise RuntimeError('broken')\n"
    parent = sweep(ip, "--metric acc --sampling grid --max-failures 2 -e broken --wait", always)
    info = client.runs.get(parent.id)
    assert info.status == "Failed" and "2 consecutive failed trials" in info.error and "broken" in info.error
    assert len(client.runs.children(parent.id).infos) == 2
    # fewer trials than --max-failures, every one failed: the sweep ended Completed, among the successes
    parent = sweep(ip, "--metric acc --sampling grid -e broken --wait",
                   "C = choice(1, 2)\nraise RuntimeError('broken')\n")
    info = client.runs.get(parent.id)
    assert info.status == "Failed" and info.error == "all 2 trials failed; the last error: RuntimeError: broken"
    # --metric misspelt (the script logs "acc"): every trial completed, none could be ranked, and the sweep ended
    # Completed with no best, each trial's line saying only "did not log 'accuracy'"
    parent = sweep(ip, "--metric accuracy --sampling grid -e misspelt --wait",
                   "from aml_magics import Run\nC = choice(1, 2)\nRun.get_context().log('acc', C)\n"
                   "Run.get_context().log('loss', -C)\n")
    info = client.runs.get(parent.id)
    assert info.status == "Failed", info.status
    assert info.error == ("no trial logged 'accuracy' as a finite number, so none can be ranked; they logged acc, "
                          "loss — give --metric one of those (the name passed to run.log)")
    assert "no accuracy — the trial did not log 'accuracy' as a number; it logged acc, loss — is --metric one of " \
           "them?" in client.runs.get_logs(parent.id)


def test_a_trial_that_logged_nan_or_text_is_said_as_it_is(ip, client):
    """A trial that logged NaN or an infinity (a loss that diverged) was reported as "the trial did not log 'acc'";
    it is left out of the best, and the log says why."""
    cell = ("from aml_magics import Run\nC = choice(1, 2, 3, 4)\n"
            "Run.get_context().log('acc', {1: float('nan'), 2: 0.5, 3: 'text', 4: float('inf')}[C])\n")
    parent = sweep(ip, "--metric acc --goal max --sampling grid -e nan-trials --wait", cell)
    log = client.runs.get_logs(parent.id)
    assert "acc = nan — it cannot be ranked, so it is left out of the best" in log
    assert "acc = inf — it cannot be ranked, so it is left out of the best" in log
    assert "no acc — the trial did not log 'acc' as a number (it logged acc = 'text')" in log
    assert client.runs.get(parent.id).latest_metrics["acc"] == 0.5


def test_script_sweep_templates_arguments(ip, client, project):
    (project / "train.py").write_text(
        "import argparse\nfrom aml_magics import Run\np = argparse.ArgumentParser()\np.add_argument('--lr', type=float)\n"
        "p.add_argument('--layers', type=int)\na = p.parse_args()\nRun.get_context().log('loss', a.lr * a.layers)\n")
    parent = ip.run_line_magic(
        "aml", 'sweep train.py --param "lr=choice(0.1,0.2)" --param "layers=randint(3)" --metric loss --goal min '
               '--trials 3 --seed 3 -e script --wait -- --lr {lr} --layers {layers}')
    children = client.runs.children(parent.id).infos
    assert len(children) == 3 and all(c.status == "Completed" for c in children), [c.error for c in children]
    for c in children:
        assert c.latest_metrics["loss"] == pytest.approx(float(c.params["lr"]) * int(c.params["layers"]))
        assert c.spec["args"] == ["--lr", c.params["lr"], "--layers", c.params["layers"]]
    # a parameter the arguments never name (a forgotten {layers}, a literal written for it) did not reach the script:
    # every trial ran the same, and the sweep "found" a best value of it
    before = len(client.runs.list(limit=None).infos)
    for args, missing in (("-- --lr {lr} --layers 2", "{layers}"), ("-- --lr 0.1 --layers 2", "{lr}, {layers}")):
        with pytest.raises(UsageError, match=f"^the script's arguments never name {re.escape(missing)}, so the trials "
                                             "would not differ in"):
            ip.run_line_magic("aml", f'sweep train.py --param "lr=choice(0.1,0.2)" --param "layers=randint(3)" '
                                     f'--metric loss --trials 3 {args}')
    assert len(client.runs.list(limit=None).infos) == before


def test_a_template_reaches_the_trials_untouched(ip, client, project):
    """`{a}` after `--` is the trial's parameter, never the notebook's variable of the same name; `${{inputs.d}}`
    passes through to become the input's path."""
    (project / "d.txt").write_text("data")
    client.datastores.upload(project / "d.txt", "tpl/d.txt")
    (project / "train.py").write_text(
        "import argparse\nfrom aml_magics import Run\np = argparse.ArgumentParser()\np.add_argument('--data')\n"
        "p.add_argument('--a', type=int)\nargs = p.parse_args()\nrun = Run.get_context()\n"
        "run.log('a', args.a)\nrun.log('data_ok', int(open(args.data).read() == 'data'))\n")
    ip.user_ns["a"] = 999  # the notebook has an `a` too
    parent = ip.run_line_magic(
        "aml", 'sweep train.py --param "a=choice(1,2)" --metric a --sampling grid -e tpl --wait '
               '--input d=datastore:tpl/d.txt -- --data ${{inputs.d}} --a {a}')
    children = client.runs.children(parent.id).infos
    assert sorted(c.latest_metrics["a"] for c in children) == [1, 2], [c.error for c in children]
    assert all(c.latest_metrics["data_ok"] == 1 for c in children)
    with pytest.raises(UsageError, match=r"names \{b\}, which is not a sweep parameter"):
        ip.run_line_magic("aml", 'sweep train.py --param "a=choice(1,2)" --metric a -- --a {b}')
    # before `--` the notebook's variables still expand, as in any magic line
    ip.user_ns["runs_to_compare"] = [c.run_id for c in children]
    assert ip.run_line_magic("aml", "compare {runs_to_compare[0]} {runs_to_compare[1]}").run_ids == \
        ip.user_ns["runs_to_compare"]


def test_resume_after_killing_the_controller(ip, client):
    # trials of 1 s: the kill must come while some are left, on a loaded machine too
    cell = "import time\nfrom aml_magics import Run\nk = randint(1000)\ntime.sleep(1.0)\nRun.get_context().log('k', k)\n"
    parent = sweep(ip, "--metric k --trials 6 --seed 1 -e resume", cell)
    wait_until(lambda: sum(c.status == "Completed" for c in client.runs.children(parent.id).infos) >= 2,
               timeout=60, what="two trials")
    row = client.backend.store.get_run(parent.id)
    os.killpg(row["user_pid"], signal.SIGKILL)  # the controller, at a random point of its loop
    info = client.runs.wait(parent.id, timeout=30)
    assert info.status == "Failed"
    before = client.runs.children(parent.id).infos
    assert 2 <= len(before) < 6
    ip.run_line_magic("aml", f"resume {parent.id} --wait")
    info = client.runs.wait(parent.id, timeout=60)
    assert info.status == "Completed"
    after = client.runs.children(parent.id).infos
    assert len(after) == 6, "the resumed sweep runs exactly the trials that were missing"
    assert {c.run_id for c in before} <= {c.run_id for c in after}
    assert all(c.status in ("Completed", "Canceled") for c in after)
    with pytest.raises(UsageError, match="Completed"):
        ip.run_line_magic("aml", f"resume {parent.id}")


@pytest.mark.parametrize("options, cell, message", [
    ("--metric acc", "x = 1\n", "no parameters"),
    ("--metric acc --sampling grid", "x = uniform(0, 1)\n", "grid sampling takes only choice"),
    ("--metric acc --slack-factor 0.2", "x = choice(1, 2)\n", "need --early-stop bandit"),
    ("--metric acc --trials 0", "x = choice(1, 2)\n", "at least 1"),
    ("--metric acc", "x = choice()\n", "at least one option"),
    ("--metric acc --param \"y=gauss(1)\"", "x = choice(1, 2)\n", "use one of choice"),
    ("--metric acc --trial-timeout 0", "x = choice(1, 2)\n", "out of range"),
    ("--metric acc --trial-timeout soon", "x = choice(1, 2)\n", "is not a duration"),
    # ranges whose values are no finite float: the sweep failed with OverflowError, or its trials got inf
    ("--metric acc", "x = loguniform(-1, 1000)\n", "are natural logs"),
    ("--metric acc", "x = lognormal(0, 200)\n", "exp.. of mu ± 6.2 sigma is beyond a float"),
    ("--metric acc", "x = uniform(-1e308, 1e308)\n", "its range is beyond a float"),
    ("--metric acc", "x = normal(1e308, 1e308)\n", "its range is beyond a float"),
    ("--metric acc", "x = quniform(0, 1, 1e-320)\n", "q is too small for the range"),
    # an option a trial cannot be given: a TypeError from inside as the sweep's spec was stored
    ("--metric acc", "x = choice(1, b'x')\n", "choice.. option b'x' cannot be passed to a trial: bytes is not JSON"),
    ("--metric acc --param 'y=choice(1j)'", "x = choice(1, 2)\n",
     "option 1j cannot be passed to a trial: complex is not"),
])
def test_bad_sweep_settings_fail_before_anything_starts(ip, client, options, cell, message):
    with pytest.raises(UsageError, match=message):
        sweep(ip, options, cell)
    assert client.runs.list(limit=None).infos == []
    time.sleep(0)


def test_every_accepted_range_samples_finite_values_at_its_edges():
    """At the edges of what ``_check`` accepts, the values trials get (at Optuna's lowest, middle and highest draws)
    are finite numbers — the same ranges a little wider are refused (test_bad_sweep_settings_…)."""
    import math

    from aml_magics.sweep.space import parse_param

    for text in ("x=loguniform(-700, 709)", "x=qloguniform(-700, 709, 1)", "x=lognormal(0, 114)",
                 "x=qlognormal(-300, 65, 1)", "x=uniform(-8e307, 8e307)", "x=normal(1e307, 1e306)",
                 "x=quniform(0, 1, 1e-300)", "x=qnormal(0, 1e10, 1e-290)"):
        expression = parse_param(text)[1]
        d = expression.distribution()
        for u in (0.0, 0.5, 1.0):
            internal = d.low + u * d.high - u * d.low
            value = expression.value(internal)
            assert math.isfinite(value), (text, u, value)
            assert expression.internal(value) == expression.internal(value)  # replays into Optuna


def test_choice_options_are_what_the_trials_get_through_json():
    """A set or tuple option is the list the trials get (the spec stores the space as JSON); text with a lone
    surrogate is one line (a UnicodeEncodeError from Python's parser)."""
    from aml_magics.sweep.space import parse_cell, parse_param

    space, _ = parse_cell("x = choice({1, 2}, (3, 4), {'a': None}, -0.0)\n")
    assert space["x"].args == ([1, 2], [3, 4], {"a": None}, -0.0)
    for call in (lambda: parse_param("x=choice('\ud800')"), lambda: parse_cell("x = choice('\ud800')\n")):
        with pytest.raises(InvalidInput, match="lone surrogate"):
            call()


def test_a_choice_of_a_huge_range_is_one_line_at_once():
    """``choice(range(10**9))`` (v1 notebooks write choice(range(...))): refused before a billion-item tuple is made."""
    from aml_magics.core.errors import InvalidInput
    from aml_magics.sweep.space import choice

    started = time.monotonic()
    with pytest.raises(InvalidInput, match="use quniform"):
        choice(range(10 ** 9))
    assert time.monotonic() - started < 1
    assert choice(range(100_000)).args[-1] == 99_999


def test_notebook_sweep_passes_parameters(ip, client, project):
    import json

    cells = [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [], "execution_count": None,
         "source": "C = 1.0\nlabel = 'x'"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "from aml_magics import Run\nRun.get_context().log('score', C * (2 if label == 'fixed' else 1))"},
    ]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (project / "tune.ipynb").write_text(json.dumps(nb))
    parent = ip.run_line_magic("aml", 'sweep tune.ipynb --param "C=choice(3, 5)" -p label=fixed --metric score '
                                      "--sampling grid --parallel 2 -e nb-sweep --wait")
    children = client.runs.children(parent.id).infos
    assert sorted(c.latest_metrics.get("score") for c in children) == [6, 10], [c.error for c in children]
    # a notebook that sets a swept parameter again after where the sweep sets it ran every trial with its own value
    # and reported a "best" of something that changed nothing
    from IPython.core.error import UsageError

    cells[0]["metadata"] = {}  # no parameters cell: the trial's values come first, and this cell sets C again
    (project / "untagged.ipynb").write_text(json.dumps(nb))
    before = len(client.runs.list(limit=None))
    with pytest.raises(UsageError, match=r"^cell 1 of untagged.ipynb sets C after where the sweep sets it, so every "
                                         r"trial would run with the notebook's own value: tag the cell"):
        ip.run_line_magic("aml", 'sweep untagged.ipynb --param "C=choice(3, 5)" --metric score -e nb-sweep')
    assert len(client.runs.list(limit=None)) == before  # nothing started


def test_timeout_stops_the_sweep_and_cancels_running_trials(ip, client):
    cell = "import time\nfrom aml_magics import Run\nx = uniform(0, 1)\nRun.get_context().log('x', x)\ntime.sleep(30)\n"
    parent = sweep(ip, "--metric x --trials 5 --parallel 2 --timeout 2 -e timeout --wait", cell)
    info = client.runs.get(parent.id)
    assert info.status == "Completed" and info.duration < 15
    children = client.runs.children(parent.id).infos
    assert len(children) == 2 and all(c.status == "Canceled" for c in children)
    reasons = [client.backend.store.status_history(c.run_id)[-1]["reason"] for c in children]
    assert all("--timeout" in r for r in reasons), reasons


def test_a_trial_past_its_time_limit_is_canceled_and_the_search_goes_on(ip, client):
    """``--trial-timeout`` (HyperDrive's trial ``max_run_duration_seconds``, Azure's ``limits.trialTimeout``): a trial
    that hangs is canceled at its limit, with why; the other trials run and the sweep completes."""
    cell = ("import time\nfrom aml_magics import Run\nC = choice(1, 2, 3)\nif C == 2:\n    time.sleep(60)\n"
            "Run.get_context().log('acc', C)\n")
    parent = sweep(ip, "--metric acc --sampling grid --trial-timeout 2 -e hangs --wait", cell)
    children = {c.params["C"]: c for c in client.runs.children(parent.id).infos}
    assert children["2"].status == "Canceled"
    assert children["2"].error == "the run exceeded its time limit of 2 s and was canceled"
    assert children["1"].status == children["3"].status == "Completed"
    info = client.runs.get(parent.id)
    assert info.status == "Completed" and info.duration < 30


def test_a_primary_metric_too_long_to_log_as_a_trial_metric_is_refused_before_anything_starts(ip, client):
    """The sweep logs its primary metric as ``trial_METRIC``, a metric name over MLflow's 250 characters when the
    metric's own is over 244: unchecked, the sweep would start and then fail at its first trial's report. Refused at
    submission, with nothing started."""
    metric = "m" * 245
    before = len(client.runs.list(limit=None).infos)
    with pytest.raises(UsageError, match="the primary metric 'm+… is 245 characters long; use at most 244"):
        sweep(ip, f"--metric {metric} --trials 2 -e longmetric --wait",
              f"x = choice(1, 2)\nfrom aml_magics import Run\nRun.get_context().log({metric!r}, x)\n")
    assert len(client.runs.list(limit=None).infos) == before
