"""The SQLite store: schema, migrations, state transitions, concurrency settings."""
from __future__ import annotations

import sqlite3

import pytest

from aml_magics.backends.local.store import MIGRATIONS, Store
from aml_magics.core.errors import BackendUnavailable


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "aml.db")
    yield s
    s.close()


def test_new_store_is_wal_with_current_schema_and_busy_timeout(store):
    assert store.query_one("PRAGMA journal_mode")[0] == "wal"
    assert store.schema_version() == len(MIGRATIONS)
    assert store.query_one("PRAGMA busy_timeout")[0] >= 30_000
    assert store.integrity_check() == ["ok"]


def test_migration_is_idempotent_and_newer_schema_is_refused(tmp_path, store):
    again = Store(store.path)
    assert again.schema_version() == len(MIGRATIONS)
    again.close()
    conn = sqlite3.connect(store.path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(BackendUnavailable, match="upgrade aml-magics"):
        Store(store.path)


def test_terminal_states_are_final_and_only_from_is_respected(store):
    store.create_run("r1", "exp", "cell", compute="local", status="NotStarted")
    assert not store.transition("r1", "Running", only_from=("Starting",))
    assert store.transition("r1", "Starting")
    assert store.transition("r1", "Running", only_from=("Starting",))
    assert store.transition("r1", "Completed")
    assert not store.transition("r1", "Running")
    assert store.get_run("r1")["status"] == "Completed"
    assert [r["status"] for r in store.status_history("r1")] == ["NotStarted", "Starting", "Running", "Completed"]
    row = store.get_run("r1")
    assert row["started"] is not None and row["ended"] >= row["started"]


def test_claim_slot_respects_the_compute_limit(store):
    store.ensure_compute("pool", "local", 2)
    for i in range(4):
        store.create_run(f"r{i}", "exp", "cell", compute="pool", status="NotStarted")
    assert [store.claim_slot(f"r{i}", "pool", 2) for i in range(4)] == [True, True, False, False]
    for i in (2, 3):
        store.transition(f"r{i}", "Queued")
    assert store.claim_next_queued("pool", 2) is None
    store.transition("r0", "Completed")
    assert store.claim_next_queued("pool", 2) == "r2"  # oldest first
    assert store.claim_next_queued("pool", 2) is None


def test_metrics_round_trip_with_kinds(store):
    pk = store.create_run("r1", "exp", "interactive", compute=None, status="Running")
    k = store.metric_key(pk, "loss", "scalar")
    assert store.metric_key(pk, "loss", "scalar") == k
    store.append_metrics([(k, i, 1.0 + i, float(i)) for i in range(5)], [(store.metric_key(pk, "s", "string"), 1.0, '"x"')])
    store.append_metrics([(k, 5, 6.0, float("nan")), (k, 6, 7.0, 6.0)])  # a second chunk
    steps, stamps, values, cursor = store.series(k)
    assert steps == list(range(7)) and stamps == [1.0 + i for i in range(7)]
    assert values[:5] == [0.0, 1.0, 2.0, 3.0, 4.0] and values[5] != values[5] and values[6] == 6.0
    assert cursor == 7
    assert store.series(k, since=3)[2][:2] == [3.0, 4.0]  # a cursor inside the first chunk
    assert store.series(k, since=7) == ([], [], [], 7)
    assert store.query_one("SELECT COUNT(*) FROM metric_chunks")[0] == 2
    latest = store.latest_values("r1")
    assert latest["loss"] == ("scalar", 6.0, 7) and latest["s"] == ("string", "x", 1)
