"""Queries that must cost the same at a million runs: a page of runs by status and tag, counts that stop early, and
long series drawn from summaries — each checked against the plain computation it replaces."""
from __future__ import annotations

import math
import random

import pytest

from aml_magics.backends.local.store import Store
from aml_magics.core.client import Client
from aml_magics.core.errors import InvalidInput
from aml_magics.core.series import DownsampledSeries
from aml_magics.core.types import COUNT_CAP, AtLeast


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "aml.db")
    yield s
    s.close()


def _log(store, run_id, values, rng, chunk_max=3000):
    pk = store.create_run(run_id, "e", "cell", compute="local", status="Completed")
    key = store.metric_key(pk, "m", "scalar")
    return key, _append(store, key, 0, values, rng, chunk_max)


def _append(store, key, start, values, rng, chunk_max=3000):
    points = [(key, 3 * (start + i), 1.0 + start + i, v) for i, v in enumerate(values)]
    pos = 0
    while pos < len(points):  # flushes of random sizes, as a run's tracker makes them
        k = rng.randrange(1, chunk_max)
        store.append_metrics(points[pos:pos + k])
        pos += k
    return points


def _expected(points, limit):
    s = DownsampledSeries(limit=limit)
    s.extend([p[1] for p in points], [p[2] for p in points], [p[3] for p in points])
    u = s.full()
    return u.fixed[0] + u.tail[0], u.fixed[1] + u.tail[1], u.fixed[2] + u.tail[2]


def _same(a, b):
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))


def _values(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        out.append(math.nan if r < 0.05 else math.inf if r < 0.07 else -math.inf if r < 0.09
                   else float(rng.randrange(-5, 6)))  # few distinct values: ties everywhere
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_summarized_series_draws_exactly_what_the_python_downsampler_draws(store, seed):
    rng = random.Random(seed)
    n = rng.choice([1, 37, 4096, 5000, rng.randrange(1, 30_000)])
    limit, base = rng.choice([(8, 2), (20, 4), (50, 16), (2000, 1024), (64, 8)])
    values = _values(rng, n)
    key, points = _log(store, f"r{seed}", values, rng)
    for _ in range(2):  # the first read writes the summaries, the second reads them
        steps, stamps, vals, total, cursor = store.display_series(key, limit, base=base)
        exp_steps, exp_stamps, exp_vals = _expected(points, limit)
        assert steps == exp_steps and stamps == exp_stamps and _same(vals, exp_vals) and total == cursor == n
    # the series grows after its summaries were written: the next read extends them and still agrees
    more = _values(rng, rng.randrange(1, 5000))
    points += _append(store, key, n, more, rng)
    steps, stamps, vals, total, _ = store.display_series(key, limit, base=base)
    exp_steps, exp_stamps, exp_vals = _expected(points, limit)
    assert steps == exp_steps and stamps == exp_stamps and _same(vals, exp_vals) and total == len(points)


def test_summaries_are_a_cache_a_store_that_cannot_be_written_still_draws(tmp_path):
    rng = random.Random(9)
    store = Store(tmp_path / "aml.db")
    key, points = _log(store, "r", [float(i % 97) for i in range(20_000)], rng)
    store._conn.execute("PRAGMA query_only=ON")  # every write now fails, as on a read-only or full workspace
    try:
        for _ in range(2):
            *drawn, total, _ = store.display_series(key, 50, base=16)
            assert tuple(drawn) == _expected(points, 50) and total == 20_000
        assert store.query_one("SELECT COUNT(*) FROM metric_summaries")[0] == 0
    finally:
        store._conn.execute("PRAGMA query_only=OFF")
        store.close()


def test_the_metrics_route_of_a_long_series_is_the_min_max_of_every_bucket(tmp_path):
    client = Client(tmp_path / "ws")
    rng = random.Random(3)
    store = client.backend.store
    values = [math.sin(i / 500) + (5.0 if i == 1_234_567 else 0.0) for i in range(1_300_000)]
    key, points = _log(store, "long", values, rng, chunk_max=200_000)
    steps, stamps, vals, total, cursor = client.runs.display_series("long", "m", 2000)
    assert len(steps) <= 2000 and total == cursor == len(values)
    assert max(vals) == 5.0 + math.sin(1_234_567 / 500) and steps[vals.index(max(vals))] == 3 * 1_234_567
    assert (steps, stamps, vals) == _expected(points, 2000)
    assert store.query_one("SELECT COUNT(*) FROM metric_summaries")[0] >= 1  # the second read is cheap


def _seed_runs(store, n):
    for i in range(n):
        pk = store.create_run(f"run_{i:04d}", f"exp-{i % 3}", "cell", compute="local",
                              status=("Completed", "Failed", "Running")[i % 3 if i % 7 else 0])
        store.set_tags(f"run_{i:04d}", {"team": "abc"[i % 3], "seed": str(i % 5), **({"flag": ""} if i % 11 == 0 else {})})
        store.append_metrics([(store.metric_key(pk, "loss", "scalar"), 0, 1.0, 1.0 / (i + 1))])


def _brute(store, experiment=None, status=None, tags=None):
    rows = store.query("SELECT r.id, r.run_id, r.status, e.name FROM runs r JOIN experiments e ON e.id=r.experiment_id "
                       "WHERE r.parent_id IS NULL ORDER BY r.id DESC")
    out = []
    for r in rows:
        t = store.get_tags(r["run_id"])
        if experiment and r["name"] != experiment or status and r["status"] not in status:
            continue
        if all(k in t and (v is None or t[k] == v) for k, v in (tags or {}).items()):
            out.append(r["run_id"])
    return out


@pytest.mark.parametrize("query", [
    {}, {"status": ["Failed"]}, {"tags": {"team": "b"}}, {"tags": {"team": "b", "seed": "3"}},
    {"tags": {"flag": None}}, {"tags": {"flag": None, "team": "a"}}, {"status": ["Running"], "tags": {"seed": "0"}},
    {"experiment": "exp-1", "tags": {"team": "b"}}, {"tags": {"team": "zz"}}, {"tags": {"flag": ""}},
])
def test_run_pages_by_status_and_tag_match_a_brute_force_filter(tmp_path, query):
    client = Client(tmp_path / "ws")
    _seed_runs(client.backend.store, 240)
    expected = _brute(client.backend.store, **query)
    for offset, limit in ((0, 50), (50, 50), (0, 1000), (len(expected), 10), (len(expected) + 5, 10)):
        page = client.runs.list(limit=limit, offset=offset, **query)
        assert [i.run_id for i in page.infos] == expected[offset:offset + limit]
        assert page.total == len(expected) and not page.more
        assert all(i.latest_metrics.get("loss") == 1.0 / (int(i.run_id[4:]) + 1) for i in page.infos)


def test_a_count_past_the_cap_says_at_least(tmp_path, monkeypatch):
    import aml_magics.backends.local.runs as runs_mod

    client = Client(tmp_path / "ws")
    _seed_runs(client.backend.store, 60)
    monkeypatch.setattr(runs_mod, "COUNT_CAP", 5)  # a smaller cap, the same code path as 10,000 of a million
    page = client.runs.list(limit=10)
    assert isinstance(page.total, AtLeast) and page.more and page.total == 16
    assert "10 of 16+ runs shown" in repr(page)
    assert COUNT_CAP == 10_000


def test_a_bad_tag_filter_is_one_clear_error(tmp_path):
    client = Client(tmp_path / "ws")
    for bad in ({"": "x"}, {"k": [3]}, ["team=a"], {3: "x"}):
        with pytest.raises(InvalidInput, match="tags filter"):
            client.runs.list(tags=bad)
    _seed_runs(client.backend.store, 40)  # a number finds the tag it set (tags are kept as text: 0 is "0")
    assert [i.run_id for i in client.runs.list(tags={"seed": 0}, limit=None).infos] == \
        [i.run_id for i in client.runs.list(tags={"seed": "0"}, limit=None).infos] != []


def test_experiment_counts_kept_between_calls_follow_every_writer(tmp_path, store):
    """The experiments list counts top-level runs from the runs added since its last call — including runs another
    process (another connection) wrote, children (not counted) and new experiments — and matches a full count."""
    other = Store(tmp_path / "aml.db")
    try:
        def full():
            return {r["name"]: (r["n"], r["last"]) for r in store.query(
                """SELECT e.name, (SELECT COUNT(*) FROM runs r WHERE r.experiment_id=e.id AND r.parent_id IS NULL) n,
                          (SELECT created FROM runs WHERE id=(SELECT MAX(id) FROM runs r WHERE r.experiment_id=e.id))
                          last FROM experiments e""")}

        def listed():
            return {r["name"]: (r["run_count"], r["last_run"]) for r in store.list_experiments()}

        assert listed() == {}
        store.ensure_experiment("empty")
        assert listed() == full() == {"empty": (0, None)}
        for i in range(5):
            store.create_run(f"a{i}", "a", "cell", compute="local", status="Completed")
        assert listed() == full() and listed()["a"][0] == 5
        other.create_run("b0", "b", "cell", compute="local", status="Running")
        other.create_run("b0_child", "b", "cell", compute="local", status="Running", parent_run_id="b0")
        other.create_run("a5", "a", "cell", compute="local", status="Queued")
        got = listed()
        assert got == full() and got["a"][0] == 6 and got["b"][0] == 1
        assert got["b"][1] == other.get_run("b0_child")["created"]  # the last run of any level
        assert listed() == got  # nothing added: the same answer
        with store.write() as c:  # another store in its place (as doctor --recover puts one): counted afresh
            c.execute("PRAGMA foreign_keys=OFF")
            c.execute("DELETE FROM status_history")
            c.execute("DELETE FROM runs")
        store._run_pks.clear()
        store.create_run("c0", "a", "cell", compute="local", status="Completed")
        assert listed() == full() and listed()["a"][0] == 1 and listed()["b"] == (0, None)
    finally:
        other.close()
