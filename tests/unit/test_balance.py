"""The workers' shared connection counts (scoring/balance.py): one file, a slot each, written by its own worker;
a worker is over its share when another holds two connections fewer."""
from __future__ import annotations

import pytest

from aml_magics.scoring.balance import Balance, create_counts


def test_workers_see_each_others_counts(tmp_path):
    path = tmp_path / "connections"
    create_counts(path, 3)
    a, b, c = (Balance.parse(f"{path}:{i}:3") for i in range(3))
    assert not any(w.over_share() for w in (a, b, c))  # all equal: whoever wakes first takes the connection
    a.add(1)
    assert not a.over_share()  # one ahead: a connection per request must not make the workers wait on each other
    a.add(1)
    assert a.over_share() and not b.over_share() and not c.over_share()
    b.add(1)
    c.add(1)
    assert not a.over_share()
    a.add(4)
    b.add(-1)  # a connection of b's closed
    assert a.over_share() and not c.over_share() and not b.over_share()
    c.add(1)
    assert c.over_share()
    assert list(a.counts) == [6, 0, 2] == list(c.counts)



def test_a_worker_restarted_in_its_slot_starts_from_zero(tmp_path):
    path = tmp_path / "connections"
    create_counts(path, 2)
    first = Balance(path, 1, 2)
    first.add(4)
    again = Balance(path, 1, 2)  # the same slot, after a restart
    assert list(again.counts) == [0, 0]


@pytest.mark.parametrize("bad", ["{path}:2:2", "{path}:-1:2", "{path}:x:2"])
def test_a_slot_outside_the_file_is_refused(tmp_path, bad):
    path = tmp_path / "connections"
    create_counts(path, 2)
    with pytest.raises(ValueError):
        Balance.parse(bad.format(path=path))
