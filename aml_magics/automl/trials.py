"""The trials of an AutoML run. FLAML writes each trial to its log file; ``Trials.follow`` turns each line into a
child run (algorithm, hyperparameters, the task's whole metric set, duration) and charts the primary metric on the
parent. A resumed run reads the trials it already has back from the workspace (``Trials.rebuild``).

Which trial is best follows the workspace's one rule (``core.ranking``): the better finite value, and on a tie the
earlier trial.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import ranking
from ..core.config import env_number
from ..core.errors import StorageError, storage_reason
from .ensemble import CAPPED_KEY
from .settings import algorithm_name


@dataclass
class Trial:
    learner: str  # FLAML's estimator name
    config: dict
    value: float | None  # of the primary metric
    run_id: str
    time: float  # seconds it took
    number: int

    @property
    def score(self) -> float | None:
        return ranking.score(self.value)


class Trials:
    def __init__(self, run, task: str, metric: str, goal: str):
        self.run, self.task, self.metric, self.goal = run, task, metric, goal
        self.items: list[Trial] = []
        self.lock = threading.Lock()
        self.tracking_s = 0.0  # time spent recording: the overhead the benchmark reports

    def __len__(self) -> int:
        return len(self.items)

    def best(self) -> Trial | None:
        with self.lock:
            return ranking.best(list(self.items), lambda t: t.value, self.goal)

    def best_per_learner(self, limit: int | None = None) -> list[Trial]:
        """Each algorithm's best trial, best first (ties: the earlier trial first)."""
        firsts: dict[str, Trial] = {}
        with self.lock:
            for t in self.items:
                cur = firsts.get(t.learner)
                if t.score is not None and (cur is None or ranking.is_better(t.score, cur.score, self.goal)):
                    firsts[t.learner] = t
        ordered = sorted(firsts.values(), key=lambda t: t.number)
        ordered.sort(key=lambda t: t.score, reverse=self.goal == "max")  # stable: ties keep the earlier first
        return ordered[:limit] if limit else ordered

    # -- recording -----------------------------------------------------------------------------------

    def record(self, learner: str, config: dict, values: dict, trial_time: float, ended: float) -> Trial:
        t = time.perf_counter()
        algo = algorithm_name(learner, self.task)
        number = len(self.items) + 1
        config = {k: v for k, v in config.items() if not k.startswith("FLAML_")}
        values = dict(values)
        capped = values.pop(CAPPED_KEY, None)  # (averaged over folds by FLAML)
        if isinstance(capped, (int, float)) and math.isfinite(capped) and "max_iter" in config:
            config["max_iter"] = max(1, min(int(config["max_iter"]), int(capped)))  # what was fitted, and refit
        scalars = {k: float(v) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        scalars["trial_time_s"] = float(trial_time)
        child_id = self.run.record_child(
            f"{algo} {number}", params={"algorithm": algo, **{k: _short(v) for k, v in config.items()}},
            tags={"automl.learner": learner, "automl.config": json.dumps(config, default=float),
                  "automl.trial": str(number)},
            metrics=scalars, started=ended - (trial_time if 0 <= trial_time < ended else 0.0), ended=ended,
        )
        trial = Trial(learner, config, values.get(self.metric), child_id, float(trial_time), number)
        with self.lock:
            self.items.append(trial)
        best = self.best()
        if trial.score is not None:
            self.run.log(f"trial_{self.metric}", trial.score, step=number)
            self.run.log(self.metric, best.score, step=number)  # the parent's value: the best so far
        self.tracking_s += time.perf_counter() - t
        return trial

    def follow(self, path: Path, started: float, stop: threading.Event) -> None:
        """Record each trial FLAML appends to ``path`` until ``stop`` is set (then reads what is left). A trial the
        workspace cannot take while its disk is full waits in memory and is recorded when space returns — at the
        search's end the follower waits for it (up to ``AML_MAGICS_FINISH_WAIT_S``), so the final choice has it:
        it was lost, and with it perhaps the best trial."""
        offset, pending, reported = 0, b"", set()
        waiting: list[dict] = []  # trials the full disk refused, in order
        deadline: float | None = None  # after the search: how long trials wait for space
        delay = 0.5
        while True:
            done = stop.is_set()
            try:
                with open(path, "rb") as f:  # bytes: only whole lines are decoded
                    f.seek(offset)
                    chunk = f.read()
                    offset += len(chunk)
            except FileNotFoundError:
                chunk = b""
            except OSError as exc:  # this thread must not end quietly: the trials would stop being recorded
                chunk = b""
                if type(exc) not in reported:
                    reported.add(type(exc))
                    print(f"aml-magics: cannot read FLAML's trial log ({type(exc).__name__}: {exc}); retrying",
                          flush=True)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            recs = waiting
            waiting = []
            for line in lines:
                try:
                    rec = json.loads(line)  # bytes: json detects UTF-8
                except ValueError:
                    continue
                if not isinstance(rec, dict) or "learner" not in rec or "config" not in rec:
                    continue  # FLAML's checkpoint lines
                recs.append(rec)
            for rec in recs:
                if waiting:  # in order: after one the disk refused, the rest wait too
                    waiting.append(rec)
                    continue
                logged = rec.get("logged_metric") or {}
                try:
                    self.record(rec["learner"], rec["config"], logged if isinstance(logged, dict) else {},
                                float(rec.get("trial_time") or 0.0), started + float(rec.get("wall_clock_time") or 0))
                except StorageError as exc:
                    if storage_reason(exc) != "the disk is full":
                        print(f"aml-magics: could not record a trial: {exc}", flush=True)
                        continue
                    if "full" not in reported:
                        reported.add("full")
                        print("aml-magics: the disk is full: trials wait in memory and are recorded when space "
                              "returns", flush=True)
                    waiting.append(rec)
                except Exception as exc:  # noqa: BLE001 - never let bookkeeping stop the search
                    print(f"aml-magics: could not record a trial: {type(exc).__name__}: {exc}", flush=True)
            if done and not waiting:
                if deadline is not None:
                    print("Space returned: the trials are recorded.", flush=True)
                return
            if done:
                if deadline is None:
                    deadline = time.monotonic() + env_number("AML_MAGICS_FINISH_WAIT_S", 3600)
                    print(f"The disk is full: {len(waiting)} trial(s) wait to be recorded before the final choice; "
                          f"free some space (they are given up in {deadline - time.monotonic():.0f} s).", flush=True)
                elif time.monotonic() > deadline:
                    print(f"aml-magics: {len(waiting)} trial(s) could not be recorded: the disk stayed full",
                          flush=True)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            stop.wait(0.2)

    def rebuild(self) -> None:
        """The completed trials already in the workspace (a resumed run)."""
        children = self.run.client.runs.list(parent_run_id=self.run.id, limit=None).infos
        for info in sorted(children, key=lambda i: (i.created or 0, i.run_id)):
            learner = info.tags.get("automl.learner")
            if not learner or learner == "VotingEnsemble" or info.status != "Completed":
                continue
            try:
                config = json.loads(info.tags.get("automl.config", "{}"))
            except ValueError:
                continue
            self.items.append(Trial(learner, config, info.latest_metrics.get(self.metric), info.run_id,
                                    float(info.latest_metrics.get("trial_time_s") or 0), len(self.items) + 1))
        if self.items:
            print(f"Resuming with {len(self.items)} trials already in the store.", flush=True)

    # -- summary ---------------------------------------------------------------------------------------

    def summary(self) -> dict[str, list]:
        """Per algorithm: trials, best value, time spent; best algorithm first."""
        by_algo: dict[str, list[Trial]] = {}
        for t in self.items:
            by_algo.setdefault(algorithm_name(t.learner, self.task), []).append(t)
        rows = []
        for algo, ts in by_algo.items():
            top = ranking.best(ts, lambda t: t.value, self.goal)
            rows.append((algo, len(ts), top.score if top else math.nan, sum(t.time for t in ts)))
        worst = -math.inf if self.goal == "max" else math.inf
        rows.sort(key=lambda r: r[2] if r[2] == r[2] else worst, reverse=self.goal == "max")
        return {"algorithm": [r[0] for r in rows], "trials": [r[1] for r in rows],
                f"best {self.metric}": [round(r[2], 6) for r in rows], "time s": [round(r[3], 2) for r in rows]}


def _short(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}")
    return v
