"""The shared poller paces dashboards of remote workspaces (every 2 s, backing off to 10 s)."""
from __future__ import annotations

import time

from aml_magics.widgets.poller import Poller


class Member:
    """A dashboard as the poller sees it: poll() answers what happened."""

    def __init__(self, remote_pace=None, answer="idle"):
        self.remote_pace = remote_pace
        self.answer = answer
        self.times: list[float] = []

    def poll(self) -> str:
        self.times.append(time.monotonic())
        return self.answer


def test_remote_members_are_polled_at_their_own_pace():
    poller = Poller()
    local, remote = Member(answer="changed"), Member(remote_pace=(0.5, 2.0), answer="idle")
    poller.register(local)
    poller.register(remote)
    time.sleep(3.2)
    poller.unregister(local)
    poller.unregister(remote)
    assert len(local.times) >= 10  # local: every 0.2 s while it changes
    gaps = [b - a for a, b in zip(remote.times, remote.times[1:])]
    assert 2 <= len(remote.times) <= 5, remote.times
    assert all(g >= 0.45 for g in gaps) and gaps[-1] > gaps[0]  # never faster than its pace, backing off


class Flaky(Member):
    """A dashboard whose poll raises ``failures`` times (the network to Azure ML was down), then works."""

    def __init__(self, failures: int):
        super().__init__(answer="changed")
        self.failures = failures

    def poll(self) -> str:
        self.times.append(time.monotonic())
        if len(self.times) <= self.failures:
            raise ConnectionError("the network is down")
        return self.answer


def test_a_dashboard_whose_poll_fails_for_a_while_tries_again_and_updates(capfd):
    """One failed poll stopped a dashboard for good ("stopped updating"), though most failures pass (a dropped
    connection to Azure ML). It is said once, tried again after 1 s, then 2 s, and the dashboard goes on; the others
    are polled meanwhile."""
    poller = Poller()
    flaky, other = Flaky(failures=2), Member(answer="changed")
    poller.register(flaky)
    poller.register(other)
    time.sleep(4.5)
    poller.unregister(flaky)
    poller.unregister(other)
    assert len(flaky.times) >= 5, flaky.times  # two failures, then every 0.2 s again
    gaps = [b - a for a, b in zip(flaky.times, flaky.times[1:])]
    assert 0.9 <= gaps[0] < 2.0 and 1.9 <= gaps[1] < 3.5, gaps  # 1 s, then 2 s after the failures
    assert len(other.times) >= 10  # never held up (every 0.2 s)
    err = capfd.readouterr().err
    assert err.count("could not update (ConnectionError: the network is down); trying again") == 1, err
    assert "stopped updating" not in err


def test_a_dashboard_that_always_fails_stops_after_its_tries(capfd):
    poller = Poller(max_failures=3)
    broken = Flaky(failures=10 ** 6)
    poller.register(broken)
    time.sleep(5.5)
    assert len(broken.times) == 3 and broken not in poller.members  # 1 s, 2 s, then it stops
    assert "stopped updating after 3 failed tries: ConnectionError" in capfd.readouterr().err


class MaskReader(Member):
    """A dashboard that notes which signals the thread polling it blocks."""

    def __init__(self):
        super().__init__(answer="changed")
        self.masks: list[set] = []

    def poll(self) -> str:
        import signal

        self.masks.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        return super().poll()


def test_the_poller_leaves_the_notebooks_interrupt_to_the_cell():
    """The notebook's interrupt is a SIGINT to the kernel, which the kernel hands to any thread that does not block
    it, and Python acts on it only in the main thread: the poller thread blocks it (and SIGTERM), so that a cell asleep
    in a lock is woken by it; the main thread keeps its own mask."""
    import signal

    import pytest

    if not hasattr(signal, "pthread_sigmask"):
        pytest.skip("no per-thread signal masks here")
    poller, member = Poller(), MaskReader()
    poller.register(member)
    deadline = time.monotonic() + 10
    while not member.masks and time.monotonic() < deadline:
        time.sleep(0.05)
    poller.unregister(member)
    assert member.masks and {signal.SIGINT, signal.SIGTERM} <= member.masks[0], member.masks
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
