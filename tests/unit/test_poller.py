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
