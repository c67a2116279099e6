"""The sweep controller: the process of a sweep's parent run.

It asks Optuna for parameters (ask/tell, in-memory study rebuilt from the store on every start, so
``%aml resume`` continues where a killed controller stopped), submits each trial as a child run on
the sweep's compute target (at most ``parallel`` at once, and queued by the compute's own limit),
watches the primary metric the trials log, stops trials an early termination policy rules out
(Canceled, with the reason), and records each finished trial on the parent: the primary metric per
trial and the best so far, so the parent's dashboard charts the search.

Grid sampling enumerates the grid itself (every point once, in order); random and bayesian use
Optuna's ``RandomSampler`` and ``TPESampler``.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import EngineStopped, NotFound
from ..core.ranking import is_better
from ..core.specs import SweepSpec, format_args, trial_code
from ..core.states import ACTIVE_STATES as ACTIVE
from ..core.types import RunSubmission
from .policies import Policy
from .space import space_from_json

TICK_S = 0.01
CANCEL_WAIT_S = 30  # at most this long for canceled trials to end (a trial gets its grace period, then SIGKILL)


class Controller:
    def __init__(self, run, spec: dict, client=None):
        self.run = run
        self.spec = spec
        self.settings = SweepSpec.from_settings(spec["settings"])
        self.client = client or run.client
        self.space = space_from_json(self.settings.space)
        self.metric = self.settings.primary_metric
        self.goal = self.settings.goal
        self.maximize = self.goal == "max"
        self.policy = Policy.from_settings(self.settings.policy)
        self.max_trials = int(self.settings.max_trials)
        self.parallel = int(self.settings.parallel)
        self.max_failures = int(self.settings.max_failures)
        self.timeout = self.settings.timeout_s
        self.template = self.settings.template
        self.trials: dict[str, dict] = {}  # run id → {"n", "params", "optuna", "values", "cursor", "status"}
        self.judged: dict[str, int] = {}  # trial → the last interval the policy judged it at
        self.consecutive_failures = 0
        self.last_error = ""
        self.accounted: set[str] = set()
        self.best: tuple[float, str] | None = None
        self.logged_instead: set[str] = set()  # metrics the trials logged that are not the primary one
        self.in_values: dict[str, Any] = {}
        self.study = None
        # A seeded sweep is repeatable: the same trials (parameters, in order) on every run, whatever the timing.
        # The policy compares each trial with the ones before it only (policies.Policy.evaluate's ``order``),
        # a trial's outcome is final once it is judged, and Bayesian sampling asks for trial n having been told
        # exactly trials 1 … n - parallel, in order.
        self.ordered = self.settings.seed is not None
        self.stopped_at: dict[str, int] = {}
        self.waiting: dict[str, None] = {}  # ended trials whose outcome waits for the policy's last judgement
        self.outcomes: dict[int, tuple] = {}  # trial number → (optuna trial, state, value), not yet told
        self.told = 0  # trials 1 … told are in Optuna's history
        # grid sampling: the grid's points, walked lazily in order (a grid of 8 parameters × 10 choices is 10⁸
        # points: built as a list it took the controller's memory until the OOM killer ended it), and the next one
        self.grid: Iterator[tuple] | None = None
        self.grid_point: dict | None = None
        self.grid_tried: set[tuple] | None = None  # the points trials took, read once, then kept as trials start

    # -- setup ---------------------------------------------------------------------------------

    def _sampler(self):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = self.settings.seed
        sampling = self.settings.sampling
        if sampling == "grid":
            self.grid = itertools.product(*(self.space[n].grid() for n in self.space))
            self.grid_point, self.grid_tried = None, None
            return None
        if sampling == "bayesian":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, max(2, self.max_trials // 4)))
        return optuna.samplers.RandomSampler(seed=seed)

    def _distributions(self) -> dict:
        return {k: e.distribution() for k, e in self.space.items()}

    def rebuild(self) -> None:
        """Read the trials the store already holds (a resumed sweep) into Optuna and our books."""
        import optuna
        from optuna.trial import TrialState, create_trial

        sampler = self._sampler()
        self.study = optuna.create_study(direction="maximize" if self.maximize else "minimize",
                                         sampler=sampler or optuna.samplers.RandomSampler())
        dists = self._distributions()
        children = self.client.runs.list(parent_run_id=self.run.id, limit=None).infos
        for info in sorted(children, key=lambda i: i.created or 0):
            n = int(info.tags.get("sweep.trial", len(self.trials) + 1))
            params = {k: _parse_value(info.params.get(k)) for k in self.space}
            values = [v for _, _, v in self.client.runs.metric_series(info.run_id, self.metric)[0]]
            entry = {"n": n, "params": params, "values": values, "cursor": 0, "status": info.status, "optuna": None}
            self.trials[info.run_id] = entry
            if info.status in ACTIVE:
                entry["values"] = []  # read again, incrementally, by the loop
                continue
            self.accounted.add(info.run_id)
            value = values[-1] if values else None
            try:
                internal = {k: self.space[k].internal(v) for k, v in params.items()}
                if info.status == "Completed" and value is not None and math.isfinite(value):
                    self.study.add_trial(create_trial(params=internal, distributions=dists, value=value))
                elif info.status == "Canceled" and value is not None:
                    self.study.add_trial(create_trial(params=internal, distributions=dists, state=TrialState.PRUNED,
                                                      intermediate_values=dict(enumerate(values))))
                else:
                    self.study.add_trial(create_trial(params=internal, distributions=dists, state=TrialState.FAIL))
            except (ValueError, TypeError):
                pass  # a value outside today's space: keep the trial, do not teach Optuna with it
            if info.status == "Completed" and value is not None:
                self._note_best(value, info.run_id)
        self.told = max((t["n"] for r, t in self.trials.items() if r in self.accounted), default=0)
        if self.trials:
            print(f"Resuming: {len(self.trials)} trials in the store "
                  f"({sum(1 for t in self.trials.values() if t['status'] in ACTIVE)} still active).", flush=True)

    def load_inputs(self) -> None:
        path = Path(os.environ.get("AML_MAGICS_RUN_SPEC", "")).parent / "in.pkl"
        if self.spec.get("in_vars") and path.is_file():
            import pickle

            import cloudpickle  # noqa: F401

            with open(path, "rb") as f:
                self.in_values = pickle.load(f)

    # -- trials --------------------------------------------------------------------------------

    def _next_params(self) -> tuple[dict, Any] | None:
        if self.grid is not None:
            if self.grid_tried is None:  # (a resumed sweep: the trials the store holds)
                self.grid_tried = {_grid_key(t["params"], self.space) for t in self.trials.values()}
            tried = self.grid_tried
            # the point offered last stays offered until a trial takes it (a submission that failed is tried again)
            while self.grid_point is None or _grid_key(self.grid_point, self.space) in tried:
                combo = next(self.grid, None)
                if combo is None:
                    return None
                self.grid_point = dict(zip(self.space, combo))
            return dict(self.grid_point), None
        trial = self.study.ask(self._distributions())
        return {k: self.space[k].value(v) for k, v in trial.params.items()}, trial

    def submit_trial(self) -> bool:
        nxt = self._next_params()
        if nxt is None:
            return False
        params, optuna_trial = nxt
        n = max((t["n"] for t in self.trials.values()), default=0) + 1
        t = self.template
        code = trial_code(t.code, t.spans or [], params) if t.kind == "cell" else None
        sub = RunSubmission(
            kind=t.kind, experiment=self.spec["experiment"], source_dir=Path.cwd(), entry=t.entry,
            compute=self.settings.compute, code=code, args=format_args(t.args or [], params),
            parameters={**(t.parameters or {}), **params} if t.kind == "notebook" else {},
            tags={"sweep.trial": str(n)}, display_name=f"trial {n}", in_values=self.in_values,
            inputs=self.settings.inputs or {}, environment_variables=self.spec.get("environment_variables") or {},
            environment=self.spec.get("environment"), parent_run_id=self.run.id, params=params,
            timeout_s=getattr(self.settings, "trial_timeout_s", None),
        )
        handle = self.client.runs.submit(sub)
        self.trials[handle.id] = {"n": n, "params": params, "values": [], "cursor": 0, "status": "NotStarted",
                                  "optuna": optuna_trial}
        if self.grid_tried is not None:
            self.grid_tried.add(_grid_key(params, self.space))
        print(f"trial {n}: {_fmt(params)} → {handle.id}", flush=True)
        return True

    def refresh(self) -> list[str]:
        """Update statuses and primary-metric series; return trials that ended since the last call.
        Only the trials still in play are asked about (at most --parallel of them), not every trial so far."""
        ended = []
        for run_id in self.active():
            if run_id in self.waiting:
                continue  # ended already: waits for the policy's judgement of earlier trials
            t = self.trials[run_id]
            try:
                info = self.client.runs.get(run_id, with_metrics=False)
            except NotFound:
                continue
            points, t["cursor"] = self.client.runs.metric_series(run_id, self.metric, t["cursor"])
            t["values"].extend(v for _, _, v in points)
            t["status"] = info.status
            if info.status not in ACTIVE:
                t["error"] = info.error
                ended.append(run_id)
        return ended

    def apply_policy(self) -> None:
        if self.policy is None:
            return
        running = {r for r, t in self.trials.items() if t["status"] == "Running" and r not in self.accounted}
        values = {r: t["values"] for r, t in self.trials.items() if t["values"] or self.ordered}
        extra = {}
        if self.ordered:  # every trial counts, even one that has logged nothing yet: it is waited for
            extra = {"order": {r: t["n"] for r, t in self.trials.items()},
                     "ended": {r for r, t in self.trials.items() if t["status"] not in ACTIVE},
                     "stopped_at": self.stopped_at}
        already = set(self.stopped_at)
        decisions = self.policy.evaluate(values, self.maximize, running, self.judged, **extra)
        for run_id in sorted(set(self.stopped_at) - already - set(decisions), key=lambda r: self.trials[r]["n"]):
            # a seeded sweep judges in order: this trial ended before its turn came; Optuna hears it was stopped
            print(f"trial {self.trials[run_id]['n']}: ruled out by the {self.policy.kind} policy at interval "
                  f"{self.stopped_at[run_id]} (it had ended before it could be stopped)", flush=True)
        for run_id, reason in decisions.items():
            try:
                self.client.runs.cancel(run_id, reason=reason)
                print(f"trial {self.trials[run_id]['n']}: {reason}", flush=True)
            except Exception:  # it ended meanwhile
                pass

    def account(self, run_id: str) -> None:
        """Tell Optuna and the parent run how a trial ended."""
        from optuna.trial import TrialState

        t = self.trials[run_id]
        self.accounted.add(run_id)
        self.waiting.pop(run_id, None)
        value = t["values"][-1] if t["values"] else None
        status = t["status"]
        ot = t.get("optuna")
        if self.ordered:  # told in order, when the sampler's turn comes (_history_ready)
            if run_id in self.stopped_at or status == "Canceled":
                self.outcomes[t["n"]] = (ot, TrialState.PRUNED, None)
            elif status == "Completed" and value is not None and math.isfinite(value):
                self.outcomes[t["n"]] = (ot, TrialState.COMPLETE, value)
            else:
                self.outcomes[t["n"]] = (ot, TrialState.FAIL, None)
            ot = None
        if status == "Completed" and value is not None and math.isfinite(value):
            self.consecutive_failures = 0
            if ot is not None:
                self.study.tell(ot, value)
            self._note_best(value, run_id)
            step = len([1 for r in self.accounted if self.trials[r]["status"] == "Completed" and self.trials[r]["values"]])
            self.run.log(f"trial_{self.metric}", value, step=step)
            self.run.log(self.metric, self.best[0], step=step)  # the parent's value: the best so far
            print(f"trial {t['n']}: {self.metric} = {value:.6g} (best {self.best[0]:.6g})", flush=True)
            return
        if status == "Canceled":
            if ot is not None:
                self.study.tell(ot, state=TrialState.PRUNED)
            return
        # Failed, or completed without logging the primary metric
        if ot is not None:
            self.study.tell(ot, state=TrialState.FAIL)
        self.consecutive_failures += 1
        self.last_error = (t.get("error") or "").strip().splitlines()[-1:] or [""]
        if status == "Failed":
            self.last_error = self.last_error[0]
            line = f"Failed — {self.last_error}"
        elif value is None:  # (a text value is not in the numeric series)
            self.last_error = f"the trial did not log {self.metric!r} as a number{self._what_it_logged(run_id)}"
            line = f"no {self.metric} — {self.last_error}"
        else:  # NaN or an infinity: logged, but it cannot be ranked
            self.last_error = f"the trial logged {self.metric} = {value}, which cannot be ranked"
            line = f"{self.metric} = {value} — it cannot be ranked, so it is left out of the best"
        print(f"trial {t['n']}: {line}", flush=True)

    def _what_it_logged(self, run_id: str) -> str:
        """"; it logged acc, loss — is --metric one of them?": a misspelt --metric is named where the user looks."""
        try:
            latest = self.client.runs.get(run_id).latest_metrics
        except Exception:  # (the line is a courtesy: a store that cannot say leaves it out)
            return ""
        if self.metric in latest:
            return f" (it logged {self.metric} = {str(latest[self.metric])[:40]!r})"
        names = list(latest)
        if not names:
            return " (it logged no metric)"
        self.logged_instead.update(names)
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        return f"; it logged {shown} — is --metric one of them?"

    def settle(self, ended: list[str]) -> None:
        """Account for the trials that ended; in a seeded sweep, once the policy has judged all they logged."""
        for run_id in ended:
            self.waiting.setdefault(run_id)
        for run_id in sorted(self.waiting, key=lambda r: self.trials[r]["n"]):
            t = self.trials[run_id]
            if not self.ordered or self.policy is None or self.policy.judging_done(run_id, t["values"], self.judged):
                self.account(run_id)

    def _history_ready(self, n: int) -> bool:
        """A seeded Bayesian sweep asks for trial n once trials 1 … n - parallel are told to Optuna, in order
        (and no others), so the sampler sees the same history on every run."""
        if not (self.ordered and self.settings.sampling == "bayesian"):
            return True
        numbers = {t["n"] for t in self.trials.values()}
        while self.told < n - self.parallel:
            nxt = self.told + 1
            if nxt in numbers and nxt not in self.outcomes:
                return False  # still running (or being judged)
            ot, state, value = self.outcomes.pop(nxt, (None, None, None))
            if ot is not None:
                self.study.tell(ot, value) if value is not None else self.study.tell(ot, state=state)
            self.told = nxt
        return True

    def _note_best(self, value: float, run_id: str) -> None:
        """The best trial by ``core.ranking``'s rule, as every leaderboard ranks them: the better value wins, and on a
        tie the trial created first (the lower trial number) — whichever of them happened to end first."""
        if self.best is not None and value == self.best[0]:
            if self.trials[run_id]["n"] < self.trials[self.best[1]]["n"]:
                self.best = (value, run_id)
        elif is_better(value, None if self.best is None else self.best[0], self.goal):
            self.best = (value, run_id)

    def active(self) -> list[str]:
        return [r for r, t in self.trials.items() if r not in self.accounted]

    def cancel_active(self, reason: str, wait_s: float = 0) -> None:
        """Cancel the running trials; with ``wait_s``, wait (that long at most) until they have ended, so
        the sweep never ends while one of its trials still runs."""
        for run_id in self.active():
            try:
                self.client.runs.cancel(run_id, reason=reason)
            except Exception:
                pass
        deadline = time.monotonic() + wait_s
        while self.active() and time.monotonic() < deadline:
            for run_id in [*self.refresh(), *self.waiting]:
                self.account(run_id)
            if self.active():
                time.sleep(TICK_S)

    # -- the loop ------------------------------------------------------------------------------------

    def main(self) -> int:
        self.load_inputs()
        self.rebuild()
        started = self.client.runs.get(self.run.id).started or time.time()
        stopped_by = None
        try:
            while True:
                ended = self.refresh()
                self.apply_policy()
                self.settle(ended)
                if self.consecutive_failures >= self.max_failures:
                    stopped_by = "failures"
                    break
                timed_out = self.timeout is not None and time.time() - started > self.timeout
                if timed_out:
                    stopped_by = "timeout"
                    break
                exhausted = False
                while len(self.active()) < self.parallel and len(self.trials) < self.max_trials:
                    if not self._history_ready(max((t["n"] for t in self.trials.values()), default=0) + 1):
                        break
                    if not self.submit_trial():
                        exhausted = True
                        break
                if not self.active() and (len(self.trials) >= self.max_trials or exhausted):
                    break
                time.sleep(TICK_S)
        except BaseException:
            self.cancel_active("the sweep was canceled")
            raise
        if stopped_by == "timeout":
            self.cancel_active(f"the sweep reached its --timeout of {self.timeout:g} s", wait_s=CANCEL_WAIT_S)
        elif stopped_by == "failures":
            self.cancel_active("the sweep stopped after consecutive failures", wait_s=CANCEL_WAIT_S)
        self.finish(stopped_by)
        if stopped_by == "failures":
            raise EngineStopped(f"the sweep stopped after {self.consecutive_failures} consecutive failed trials; "
                                f"the last error: {self.last_error}")
        statuses = [t["status"] for t in self.trials.values()]
        if "Failed" in statuses and "Completed" not in statuses:  # (it ended Completed, listed among the successes)
            said = "the only trial failed" if len(statuses) == 1 else f"all {len(statuses)} trials failed"
            raise EngineStopped(f"{said}; the last error: {self.last_error}")
        if self.best is None and "Completed" in statuses:
            # every trial ran and none gave a value to rank: a sweep without a best is a failed sweep, not a success
            # to be read trial by trial (most often --metric is not the name the script logs)
            logged = sorted(self.logged_instead)
            more = " …" if len(logged) > 8 else ""
            said = (f"; they logged {', '.join(logged[:8])}{more} — give --metric one of those (the name passed to "
                    f"run.log)") if logged else ""
            raise EngineStopped(f"no trial logged {self.metric!r} as a finite number, so none can be ranked{said}")
        return 0

    def finish(self, stopped_by: str | None) -> None:
        counts: dict[str, int] = {}
        for t in self.trials.values():
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        summary = {"trials": len(self.trials), **{k.lower(): v for k, v in counts.items()}}
        if self.best is not None:
            value, run_id = self.best
            best = self.trials[run_id]
            summary.update(best_run=run_id, best_value=value, best_params=best["params"])
            self.run.set_tags({"best_run": run_id, f"best_{self.metric}": f"{value:.6g}"})
        os.makedirs("outputs", exist_ok=True)
        with open("outputs/sweep_summary.json", "w") as f:
            json.dump(summary, f, indent=1, default=str)
        print("Sweep done: " + ", ".join(f"{v} {k}" for k, v in counts.items())
              + (f"; best {self.metric} {self.best[0]:.6g} ({self.best[1]})" if self.best else ""), flush=True)


def _parse_value(text: Any) -> Any:
    import ast

    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _grid_key(params: dict, names) -> tuple:
    """A grid point as its trial's parameters are stored (text), for telling tried points apart."""
    return tuple(str(params.get(k)) for k in names)


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items())


def run_sweep(spec: dict, run) -> int:
    return Controller(run, spec).main()
