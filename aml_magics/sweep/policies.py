"""Early termination policies with HyperDrive's semantics, on the primary metric trials log.

A trial's *interval* k is the k-th value it has logged of the primary metric. A policy is applied
at intervals that are multiples of ``evaluation_interval`` and greater than ``delay_evaluation``, to
each running trial at each such interval once another trial has reached it too.

- ``bandit``: stop a trial whose value at k is worse than the best trial's value at k by more than
  the slack (``slack_factor``: ratio, ``slack_amount``: absolute).
- ``median``: stop a trial whose running average at k is worse than the median of the other
  trials' running averages at k.
- ``truncation``: at k, stop the trial if it is in the worst ``truncation_percentage`` % of the
  trials that reached k.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from ..core import checks
from ..core.errors import InvalidInput


STOPPED = -1  # in ``judged``: the trial has been stopped


@dataclass
class Policy:
    kind: str  # bandit | median | truncation
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    slack_factor: float | None = None
    slack_amount: float | None = None
    truncation_percentage: int = 20

    @classmethod
    def from_settings(cls, data: dict | None) -> "Policy | None":
        return cls(**data) if data else None

    def validate(self) -> "Policy":
        if self.kind not in ("bandit", "median", "truncation"):
            raise InvalidInput(f"--early-stop {self.kind!r}: use bandit, median or truncation")
        self.evaluation_interval = checks.whole("--evaluation-interval", self.evaluation_interval, 1)
        self.delay_evaluation = checks.whole("--delay-evaluation", self.delay_evaluation, 0)
        if self.kind == "bandit":
            if self.slack_factor is None and self.slack_amount is None:
                self.slack_factor = 0.1
            if self.slack_factor is not None and self.slack_amount is not None:
                raise InvalidInput("bandit takes --slack-factor or --slack-amount, not both")
            for what, slack in (("--slack-factor", self.slack_factor), ("--slack-amount", self.slack_amount)):
                if slack is not None and (isinstance(slack, bool) or not isinstance(slack, (int, float))
                                          or not slack >= 0 or slack == float("inf")):
                    raise InvalidInput(f"bandit slack must be ≥ 0 ({what} {checks.shown(slack)})")
        if self.kind == "truncation":
            self.truncation_percentage = checks.whole("--truncation-percentage", self.truncation_percentage, 1, 99)
        return self

    def evaluate(self, values: dict[str, list[float]], maximize: bool, running: set[str],
                 judged: dict[str, int], order: dict[str, int] | None = None, ended: set[str] | None = None,
                 stopped_at: dict[str, int] | None = None) -> dict[str, str]:
        """Trials to stop now, with the reason: ``values`` maps every trial (running or ended) to the
        primary metric values it has logged, in order; only ``running`` trials can be stopped. Each trial
        is judged once at each of its intervals, in order, and only when another trial has reached that
        interval too (a trial running ahead of the others is judged at k once one of them gets there);
        ``judged`` keeps, per trial, the last interval judged (``STOPPED`` once it has been stopped).

        With ``order`` (trial → its number; a seeded sweep), every decision is the same on every run whatever the
        timing: a trial is compared at k only with the trials numbered before it, once each of them has reached k
        or ended (``ended``), a stopped trial counts with its values up to where it was stopped (``stopped_at``),
        and ended trials are judged too (a trial that ended before its stop took effect is recorded as stopped,
        though nothing is left to cancel)."""
        if order is not None:
            return self._evaluate_in_order(values, maximize, running, judged, order, ended or set(),
                                           stopped_at if stopped_at is not None else {})
        stop: dict[str, str] = {}
        for trial, series in values.items():
            k = judged.get(trial, 0)
            if trial not in running or k == STOPPED:
                continue
            while k < len(series):
                k += 1
                if k % self.evaluation_interval or k <= self.delay_evaluation:
                    judged[trial] = k
                    continue
                if not any(t != trial and len(s) >= k for t, s in values.items()):
                    break  # nobody to compare with at k yet
                judged[trial] = k
                reason = self._judge(trial, k, values, maximize)
                if reason:
                    stop[trial] = f"early terminated by the {self.kind} policy at interval {k}: {reason}"
                    judged[trial] = STOPPED  # asked once: never judged again
                    break
        return stop

    def _evaluate_in_order(self, values: dict[str, list[float]], maximize: bool, running: set[str],
                           judged: dict[str, int], order: dict[str, int], ended: set[str],
                           stopped_at: dict[str, int]) -> dict[str, str]:
        stop: dict[str, str] = {}
        # a stopped trial counts with its values up to its stop (only those are sliced: this runs every tick)
        seen = {t: s if t not in stopped_at else s[:stopped_at[t]] for t, s in values.items()}
        for trial in sorted(values, key=lambda t: order.get(t, 0)):
            k = judged.get(trial, 0)
            series = seen[trial]
            if k == STOPPED or k >= len(series):
                continue  # nothing new to judge (most trials, most ticks): no work
            earlier = [t for t in values if order.get(t, 0) < order.get(trial, 0)]
            while k < len(series):
                k += 1
                if k % self.evaluation_interval or k <= self.delay_evaluation:
                    judged[trial] = k
                    continue
                if any(len(seen[t]) < k and t not in ended and judged.get(t) != STOPPED for t in earlier):
                    break  # an earlier trial has yet to get to k: judge later, against the same trials
                judged[trial] = k
                if not any(len(seen[t]) >= k for t in earlier):
                    continue  # nobody before it got to k: nothing to compare with, on every run
                reason = self._judge(trial, k, {t: seen[t] for t in (trial, *earlier)}, maximize)
                if reason:
                    judged[trial] = STOPPED
                    stopped_at[trial] = k
                    seen[trial] = series[:k]
                    if trial in running:
                        stop[trial] = f"early terminated by the {self.kind} policy at interval {k}: {reason}"
                    break
        return stop

    def judging_done(self, trial: str, series: list[float], judged: dict[str, int]) -> bool:
        """Whether an ended trial has been judged at every interval it logged (or stopped)."""
        k = judged.get(trial, 0)
        return k == STOPPED or k >= len(series)

    def _judge(self, trial: str, k: int, values: dict[str, list[float]], maximize: bool) -> str | None:
        at_k = {t: s[k - 1] for t, s in values.items() if len(s) >= k}
        mine = at_k[trial]
        if self.kind == "bandit":
            best = max(at_k.values()) if maximize else min(at_k.values())
            if self.slack_amount is not None:
                limit = best - self.slack_amount if maximize else best + self.slack_amount
            else:
                f = self.slack_factor or 0.0
                limit = best / (1 + f) if maximize else best * (1 + f)
            worse = mine < limit if maximize else mine > limit
            if worse:
                return f"{mine:.4g} is outside the slack of the best {best:.4g} (limit {limit:.4g})"
            return None
        if self.kind == "median":
            others = [sum(s[:k]) / k for t, s in values.items() if t != trial and len(s) >= k]
            if not others:
                return None
            mine_avg = sum(values[trial][:k]) / k
            m = median(others)
            if (mine_avg < m) if maximize else (mine_avg > m):
                return f"running average {mine_avg:.4g} is worse than the median {m:.4g}"
            return None
        # truncation
        if len(at_k) < 2:
            return None
        ranked = sorted(at_k, key=lambda t: at_k[t], reverse=not maximize)  # worst first
        cut = int(len(ranked) * self.truncation_percentage / 100)
        if trial in ranked[:cut]:
            return f"{mine:.4g} is in the worst {self.truncation_percentage} % of {len(ranked)} trials"
        return None
