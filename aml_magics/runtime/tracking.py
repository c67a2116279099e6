"""Buffered metric logging from a run to its workspace.

``run.log`` only appends a ready-made row to a deque (about a microsecond); a daemon thread
flushes the deque every ``FLUSH_INTERVAL`` seconds in one transaction, and so does process
exit. A failed flush puts its rows back and says so once on stderr: nothing is dropped while
the process lives. A SIGKILL loses at most what was logged since the last flush.

One ``Tracker`` serves every run of a process that logs to the same store (a run and its
child runs), so there is one flush thread per process, not one per run.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

FLUSH_INTERVAL = 0.2

_trackers: dict[str, "Tracker"] = {}
_trackers_lock = threading.Lock()


def tracker_for(uri: str) -> "Tracker":
    """The process-wide tracker for a tracking URI (``sqlite://`` + the database's absolute path)."""
    with _trackers_lock:
        tracker = _trackers.get(uri)
        if tracker is None:
            if not uri.startswith("sqlite://"):
                raise ValueError(f"unsupported tracking URI {uri!r}")
            tracker = _trackers[uri] = Tracker(uri[len("sqlite://") :])
        return tracker


def flush_all() -> None:
    for tracker in list(_trackers.values()):
        tracker.flush()


class Tracker:
    """Writes the metrics of runs to one local workspace database."""

    def __init__(self, db_path: str):
        from ..backends.local.store import Store  # stdlib-only leaf module: the one place the schema lives

        self.db_path = db_path
        self.workspace_dir = Path(db_path).parent
        self.store = Store(db_path, migrate=False)
        self._points: deque = deque()
        self._records: deque = deque()
        self._keys: dict[tuple[int, str], tuple[int, str]] = {}
        self._counters: dict[int, list] = {}
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="aml-metrics-flush", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- buffering (hot path) ------------------------------------------------------------

    def key(self, run_pk: int, name: str, kind: str) -> int:
        found = self._keys.get((run_pk, name))
        if found is None:
            kid = self.store.metric_key(run_pk, name, kind)
            row = self.store.query_one("SELECT kind FROM metric_keys WHERE id=?", (kid,))
            found = self._keys[(run_pk, name)] = (kid, row[0])
        if found[1] != kind:
            raise TypeError(f"metric {name!r} was logged as {found[1]}; log {kind} values under another name")
        return found[0]

    def counter(self, run_pk: int, name: str) -> list:
        """``[key_id, next_step]`` of a scalar series, shared by every writer in this process."""
        kid = self.key(run_pk, name, "scalar")
        c = self._counters.get(kid)
        if c is None:
            stored = self.store.query_one(
                "SELECT COALESCE(MAX(first_index + n), 0) FROM metric_chunks WHERE key_id=?", (kid,))[0]
            c = self._counters[kid] = [kid, stored]
        return c

    def scalar_writer(self, run_pk: int):
        """A fast ``write(name, value, step=None)`` for one run: the hot path of ``run.log``."""
        counters: dict[str, list] = {}
        append = self._points.append
        now = time.time
        counter = self.counter

        def write(name: str, value: float, step: int | None = None) -> None:
            c = counters.get(name)
            if c is None:
                c = counters[name] = counter(run_pk, name)
            if step is None:
                step = c[1]
                c[1] = step + 1
            elif step >= c[1]:
                c[1] = step + 1
            append((c[0], step, now(), value))

        return write

    def scalars(self, run_pk: int, name: str, values: list[float]) -> None:
        c = self.counter(run_pk, name)
        start = c[1]
        c[1] = start + len(values)
        now = time.time()
        kid = c[0]
        self._points.extend([(kid, start + i, now, v) for i, v in enumerate(values)])

    def record(self, run_pk: int, name: str, kind: str, payload: Any) -> None:
        kid = self.key(run_pk, name, kind)
        self._records.append((kid, time.time(), json.dumps(payload, default=_json_default)))

    # -- files ---------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.workspace_dir / "runs" / run_id

    def store_file(self, run_id: str, name: str, source: str | os.PathLike) -> str:
        """Copy ``source`` into the run's artifacts as ``name`` (``outputs/…``, ``logs/…`` or other)."""
        from ..backends.local.layout import artifact_path

        target = artifact_path(self.run_dir(run_id), name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return name

    # -- flushing --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            if self._points or self._records:
                self.flush()

    def pending(self) -> int:
        return len(self._points) + len(self._records)

    def flush(self) -> None:
        with self._flush_lock:
            points, records = self._drain(self._points), self._drain(self._records)
            if not points and not records:
                return
            try:
                self.store.append_metrics(points, records)
            except Exception as exc:  # keep the rows: the next flush tries again
                self._points.extendleft(reversed(points))
                self._records.extendleft(reversed(records))
                if not self._warned:
                    self._warned = True
                    print(
                        f"aml-magics: could not save {len(points) + len(records)} metric values yet ({exc}); "
                        "they are kept in memory and retried",
                        file=sys.stderr,
                    )
                raise
            else:
                if self._warned:
                    self._warned = False
                    print("aml-magics: metric logging recovered; nothing was lost", file=sys.stderr)

    @staticmethod
    def _drain(dq: deque) -> list:
        # popleft is atomic, so rows appended concurrently are never lost
        return [dq.popleft() for _ in range(len(dq))]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        try:
            self.flush()
        except Exception:
            lost = self.pending()
            print(f"aml-magics: {lost} metric values could not be saved at exit", file=sys.stderr)


def _json_default(value: Any) -> Any:
    for attr in ("tolist", "item"):  # numpy arrays and scalars without importing numpy
        if hasattr(value, attr):
            return getattr(value, attr)()
    return str(value)
