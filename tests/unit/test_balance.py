"""The workers' shared connection counts (scoring/balance.py): one file, a slot each, written by its own worker;
a worker is over its share when another holds two connections fewer."""
from __future__ import annotations

import stat

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


def test_a_counts_file_cut_short_by_a_full_disk_is_not_left_behind(tmp_path):
    """A write that stops short (here: the file size limit, as a full disk would) raises and removes the file; the
    supervisor is told why and starts its workers unbalanced instead of not at all."""
    import subprocess
    import sys

    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from aml_magics.scoring.balance import shared_counts\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (12, 12))\n"  # room for one slot and a half
        "path, why = shared_counts(Path(sys.argv[1]), 4)\n"
        "print(path, why, sep='|')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    path, why = out.stdout.strip().split("|")
    assert path == "None" and "unbalanced" in why and "No space left" in why
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_cannot_hold_the_file_gives_the_reason(tmp_path):
    from aml_magics.scoring.balance import shared_counts

    (tmp_path / "file").write_text("")
    path, why = shared_counts(tmp_path / "file", 2)  # not a directory
    assert path is None and "Not a directory" in why
    path, why = shared_counts(tmp_path, 2)
    assert path is not None and path.parent == tmp_path and path.stat().st_size == 16 and why is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_counts_file_shorter_than_its_slots_is_refused(tmp_path):
    path = tmp_path / "connections"
    path.write_bytes(bytes(12))  # cut short: the worker falls back to accepting unbalanced (server.main)
    with pytest.raises(ValueError):
        Balance.parse(f"{path}:0:2")
    with pytest.raises(OSError):
        Balance.parse(f"{tmp_path / 'gone'}:0:2")
