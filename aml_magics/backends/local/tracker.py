"""The local workspace's tracker: buffered logging from a run to its SQLite store.

``run.log`` only checks its arguments and appends a ready-made row to a deque (about a microsecond);
a daemon thread flushes the deque every ``FLUSH_INTERVAL`` seconds in one transaction, and so does
process exit. A SIGKILL loses at most what was logged since the last flush.

What can go wrong in a flush, and what happens then:

* **The store refuses the write** (a full disk, a read-only workspace, a lock held too long): every
  row stays in memory, in order, and is retried with backoff (0.2 s doubling to 5 s) until it is
  written — up to ``MAX_PENDING_POINTS`` scalar points and ``MAX_PENDING_RECORDS`` other values;
  past that the oldest are dropped and counted. A metric name first logged while the disk is full
  gets a provisional key that is made real at the first successful flush, and tags set meanwhile wait
  in the same way, so ``run.log``, ``run.tag`` and ``log_param`` never raise into a training loop
  because of the disk (``upload_file`` and ``log_image`` do: a file is not kept in memory).
* **A row cannot be written at all** (a value no check foresaw): the batch is split and retried
  until the offending rows are isolated; they are dropped and reported once, everything else is written.

The flush thread never dies: whatever a flush raises is reported once and the thread goes on. One
``LocalTracker`` serves every run of a process that logs to the same store (a run and its child runs), so
there is one flush thread per process, not one per run. ``from_environment`` is how ``Run.get_context()``
finds it inside a run (``core.registry``).

**Forked children** (a ``multiprocessing`` pool or process with the fork start method — Linux's default before
Python 3.14 —, ``os.fork``, data-loader workers) log through the tracker they inherited. At the fork the child
forgets the parent's buffered rows (the parent writes those: a child that flushed them wrote every pending value
twice) and its locks (a thread that held one does not exist there); on its first value it starts its own flush
thread, and its rows are written when it ends: at a normal exit, at the end of a ``multiprocessing`` process
(whose workers leave with ``os._exit``), and on SIGTERM (``Pool.terminate()`` and leaving ``with Pool(...)``),
then calls the program's own SIGTERM handler, if it has one (``core.children``, which the Azure job tracker shares).
A worker of the spawn or forkserver start methods makes its own tracker when it imports the main module, and
flushes at the same moments. A child that ends with ``os._exit`` of its own calls ``run.flush()`` first.
(Before this, every value logged in a forked or forkserver pool worker was lost.)
"""
from __future__ import annotations

import atexit
import bisect
import itertools
import json
import os
import shutil
import sqlite3
import sys
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

from ...core import checks, children
from ...core.contract import Tracker
from ...core.errors import InvalidInput, InvalidType, StorageError, storage_reason
from .store import recovery as _recovery
from .store.connection import file_identity
from .store.metrics import pack_points

FLUSH_INTERVAL = 0.2
MAX_BACKOFF_S = 5.0
#: what waits in memory while the store refuses writes; past this the oldest values are dropped (and counted)
MAX_PENDING_POINTS = 1_000_000
MAX_PENDING_RECORDS = 100_000

#: errors that say "this row cannot be stored" (split the batch and drop the row); anything else that a
#: write raises is the store refusing writes for now (keep the rows and retry)
_DATA_ERRORS = (TypeError, ValueError, OverflowError, UnicodeError, sqlite3.IntegrityError, sqlite3.DataError,
                sqlite3.InterfaceError, sqlite3.ProgrammingError)

ENV_RUN_ID = "AML_MAGICS_RUN_ID"
ENV_TRACKING_URI = "AML_MAGICS_TRACKING_URI"
ENV_EXPERIMENT = "AML_MAGICS_EXPERIMENT"
SCHEME = "sqlite://"

_trackers: dict[str, "LocalTracker"] = {}
_trackers_lock = threading.Lock()


class _Names(dict):
    """One writer's cache of its series (name -> counter), listed weakly so that a forked child can empty it."""

    __slots__ = ("__weakref__",)


def _after_fork_in_child() -> None:
    global _trackers_lock
    _trackers_lock = threading.Lock()
    for tracker in list(_trackers.values()):
        tracker._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _flushing_here() -> bool:
    me = threading.get_ident()
    return any(me in tracker._flushing for tracker in list(_trackers.values()))


def _logs() -> bool:
    return any(tracker._thread is not None and not tracker._closed for tracker in list(_trackers.values()))


def tracking_uri(db_path) -> str:
    return SCHEME + str(db_path)


def tracker_for(uri: str) -> "LocalTracker":
    """The process-wide tracker for a tracking URI (``sqlite://`` + the database's absolute path) — a new one when
    the database at that path is another file than the one the tracker opened (a workspace deleted and made again
    at the same path in the same kernel: the old tracker would write into the deleted file)."""
    with _trackers_lock:
        tracker = _trackers.get(uri)
        if tracker is not None and tracker.identity != file_identity(tracker.db_path):
            stale, tracker = tracker, None
            try:
                stale.close()
            except Exception:  # noqa: BLE001 - what it still held belonged to the deleted workspace
                pass
        if tracker is None:
            if not uri.startswith(SCHEME):
                raise ValueError(f"unsupported tracking URI {uri!r}")
            tracker = _trackers[uri] = LocalTracker(uri[len(SCHEME):])
        return tracker


def flush_here(db_path) -> None:
    """Before this process reads a workspace's metrics: what it logged there and still buffers is written first, so
    it reads its own values (``key``: a name first logged is stored with its first values, by the flush). Best effort:
    a store that refuses writes keeps them buffered, and the read shows what is stored."""
    tracker = _trackers.get(SCHEME + str(db_path))
    if tracker is None or tracker._closed or not (tracker._points or tracker._records or tracker._provisional):
        return
    try:
        tracker.flush(timeout=2)
    except Exception:  # noqa: BLE001 - kept and retried by the flush thread
        pass


def from_environment(environ) -> "tuple[LocalTracker, str, str | None] | None":
    """Inside a run of a local workspace: its tracker, run id and experiment (the run host sets these)."""
    run_id, uri = environ.get(ENV_RUN_ID), environ.get(ENV_TRACKING_URI)
    if not (run_id and uri and uri.startswith(SCHEME)):
        return None
    return tracker_for(uri), run_id, environ.get(ENV_EXPERIMENT) or None


def discard(uri: str) -> None:
    """Forget the tracker of a store that was replaced (a recovered workspace): its connection reads the old file."""
    with _trackers_lock:
        tracker = _trackers.pop(uri, None)
    if tracker is not None:
        tracker._closed = True
        tracker._wake.set()
        try:
            tracker.store.close()
        except Exception:  # noqa: BLE001
            pass


def _store_replaced(db_path) -> None:
    discard(tracking_uri(db_path))


_recovery.ON_REPLACED.append(_store_replaced)


def flush_all(timeout: float = -1) -> None:
    """The last flush of a process that is ending (``core.children``: a ``multiprocessing`` worker's exit, SIGTERM):
    what the store refuses now is lost with the process, and said so — not "kept and retried"."""
    for tracker in list(_trackers.values()):
        try:
            tracker.flush(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - the process ends next
            left = tracker.pending()
            if left:
                print(f"aml-magics: {left} metric values or tags could not be saved before this process (pid "
                      f"{os.getpid()}) ended: {exc}", file=sys.stderr)


children.register(flush_all, _flushing_here, _logs)


def _is_storage_error(exc: BaseException) -> bool:
    return not isinstance(exc, _DATA_ERRORS) or isinstance(exc, (StorageError, sqlite3.OperationalError))


class LocalTracker(Tracker):
    """Writes the metrics, tags and files of runs to one local workspace."""

    def __init__(self, db_path: str):
        from .store import Store  # stdlib-only: the one place the schema lives

        self.db_path = db_path
        self.workspace_dir = Path(db_path).parent
        self.store = Store(db_path, migrate=False)
        self.identity = file_identity(db_path)  # the file it opened (tracker_for replaces a tracker of a deleted one)
        self._points: deque = deque()  # (key_id, step, ts, value)
        self._records: deque = deque()  # (key_id, ts, json)
        self._tags: deque = deque()  # (run_id, table, {key: value}) refused once by the store: written in order
        self._keys: dict[tuple[int, str], list] = {}  # (run_pk, name) -> [key_id, kind]
        self._counters: dict[tuple[int, str], list] = {}  # (run_pk, name) -> [key_id, next_step, steps]: counter()
        self._provisional: dict[int, tuple[int, str, str]] = {}  # negative key id -> (run_pk, name, kind)
        self._resolved: dict[int, int] = {}  # provisional key id -> the real one
        self._next_provisional = -1
        self._waited: set[int] = set()  # provisional keys a flush has passed over (made by the next one)
        self._keys_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        # the writers' name caches, emptied in a forked child (a weak dict: a writer's cache goes with its run)
        self._writers: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._writer_ids = itertools.count()
        self._wake = threading.Event()
        self._flushing: set[int] = set()  # the threads inside flush(), from before they take its lock
        self._closed = False
        self._failing: str | None = None  # why the store refuses writes, while it does
        self._dropped_pending = 0  # values dropped past the in-memory bound during this failure
        self._reported: set[str] = set()
        self._last_storage_error: BaseException | None = None
        self._thread: threading.Thread | None = threading.Thread(target=self._loop, name="aml-metrics-flush",
                                                                  daemon=True)
        self._thread.start()
        atexit.register(self.close)
        children.watch_multiprocessing()

    def _forked(self) -> None:
        """In a forked child, inside ``os.fork()``: only the forking thread exists, and the parent writes what was
        buffered. No SQLite and no thread here: the store opens its own handle on first use (``Connection``) and
        the child's first value starts its flush thread (``_start_in_child``)."""
        self._points.clear()  # in place: the writers hold these deques' append
        self._records.clear()
        self._tags.clear()
        for names in list(self._writers.values()):
            names.clear()  # so that the next value of each name goes through counter(), which starts the thread
        self._keys_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._flushing = set()
        self._failing = None
        self._dropped_pending = 0

    def _start_in_child(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._loop, name="aml-metrics-flush", daemon=True)
            self._thread.start()
        children.flush_when_child_ends()

    # -- keys and counters ---------------------------------------------------------------------

    def key(self, run_pk: int, name: str, kind: str) -> int:
        """The id of a run's metric ``name`` of ``kind``. A name not yet stored gets a provisional (negative) id: the
        flush makes it real in the transaction that writes its first values (``_append``), so that another process never
        reads the new name without them — created here, it stood empty (``[]``) until the next flush, 200 ms later."""
        found = self._keys.get((run_pk, name))
        if found is None:
            checks.metric_name(name)
            row = self.store.metric_key_row(run_pk, name)
            if row is None:
                with self._keys_lock:
                    kid = self._next_provisional
                    self._next_provisional -= 1
                    self._provisional[kid] = (run_pk, name, kind)
                row = (kid, kind)
            found = self._keys[(run_pk, name)] = [row[0], row[1]]
        if found[1] != kind:
            raise InvalidType(f"metric {checks.shown(name)} was logged as {found[1]}; log {kind} values under "
                              "another name")
        return found[0]

    def counter(self, run_pk: int, name: str) -> list:
        """``[key_id, next_step, steps]`` of a scalar series, shared by every writer in this process. ``steps`` (an
        ``itertools.count``) hands out the default steps: ``next()`` on it is atomic, so threads logging one metric
        at once never get the same step (reading and then bumping ``next_step`` gave 5,003 duplicates in 80,000
        points from 8 threads); ``next_step`` follows it for explicit steps and ``log_list``."""
        if self._thread is None:
            self._start_in_child()
        c = self._counters.get((run_pk, name))
        if c is None:
            kid = self.key(run_pk, name, "scalar")
            stored = self.store.series_length(kid) if kid > 0 else 0
            c = self._counters.setdefault((run_pk, name), [kid, stored, itertools.count(stored)])  # (one per name)
        return c

    def run_pk(self, run_id: str) -> int:
        pk = self.store.run_pk(run_id)
        if pk is None:
            from ...core.errors import NotFound

            raise NotFound(f"run {run_id!r} is not in this workspace")
        return pk

    # -- buffering (hot path) ------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"LocalTracker({str(self.workspace_dir)!r})"

    def describe(self) -> str:
        return f"the workspace at {self.workspace_dir}"

    def client_options(self) -> dict[str, Any]:
        return {"workspace": str(self.workspace_dir)}

    def scalar_writer(self, run_id: str) -> Callable[..., None]:
        """A fast ``write(name, value, step=None)`` for one run: the hot path of ``run.log``.

        ``value`` has been checked by the caller; ``step`` is checked here (an int in SQLite's range)."""
        run_pk = self.run_pk(run_id)
        counters = _Names()
        self._writers[next(self._writer_ids)] = counters
        append = self._points.append
        now = time.time
        counter = self.counter
        count = itertools.count
        low, high = checks.INT64_MIN, checks.INT64_MAX

        def write(name: str, value: float, step: int | None = None) -> None:
            if step is not None and (type(step) is not int or not low <= step <= high):
                step = checks.step(name, step)  # before the metric is made: a refused call leaves no empty metric
            try:
                c = counters.get(name)
            except TypeError:  # a list or dict as the name: refused by the name's check (here a TypeError)
                checks.metric_name(name)
                raise
            if c is None:
                c = counters[name] = counter(run_pk, name)
            if step is None:
                step = next(c[2])
                if step > high:
                    raise InvalidInput(f"metric {checks.shown(name)} has reached the largest step (2**63-1); "
                                       "log under another name")
                if step >= c[1]:
                    c[1] = step + 1
            elif step >= c[1]:
                c[1] = step + 1
                c[2] = count(step + 1)
            append((c[0], step, now(), value))

        return write

    def log_scalars(self, run_id: str, name: str, values: list[float]) -> None:
        c = self.counter(self.run_pk(run_id), name)
        start = c[1]
        if start + len(values) - 1 > checks.INT64_MAX:
            raise InvalidInput(f"metric {checks.shown(name)} has reached the largest step; log under another name")
        c[1] = start + len(values)
        c[2] = itertools.count(c[1])
        now = time.time()
        kid = c[0]
        self._points.extend([(kid, start + i, now, v) for i, v in enumerate(values)])

    def log_record(self, run_id: str, name: str, kind: str, payload: Any) -> None:
        try:
            text = json.dumps(payload, default=_json_default)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(f"metric {checks.shown(name)}: its value cannot be stored ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - a value whose str() raises: one line that says so
            raise InvalidInput(f"metric {checks.shown(name)}: its value cannot be stored ({type(exc).__name__}: "
                               f"{checks.shown(str(exc), 120)}); log numbers or strings") from None
        if self._thread is None:
            self._start_in_child()
        kid = self.key(self.run_pk(run_id), name, kind)
        self._records.append((kid, time.time(), text))

    def set_tags(self, run_id: str, values: dict[str, Any], *, params: bool = False) -> None:
        """Tags (or params) of a run: written now, or — while the store refuses writes — kept and written in
        order by the flush thread, so a training loop never stops for them."""
        table = "run_params" if params else "run_tags"
        clean = checks.tags("params" if params else "tags", values)
        if self._thread is None:
            self._start_in_child()
        if self._tags:  # earlier ones wait: keep the order
            self._tags.append((run_id, table, clean))
            self._wake.set()
            return
        try:
            self.store.set_tags(run_id, clean, table=table)
        except StorageError as exc:
            self._tags.append((run_id, table, clean))
            self._storage_failed(exc, "tags")

    # -- child runs and states -------------------------------------------------------------------

    def start_child(self, run_id: str, name: str | None) -> str:
        from .ids import new_run_id

        row = self.store.get_run(run_id)
        child = new_run_id(row["experiment"])
        self.store.create_run(child, row["experiment"], "child", compute=row["compute"], status="Running",
                              display_name=name, parent_run_id=run_id)
        return child

    def record_child(self, run_id: str, name: str, *, params: dict | None = None, tags: dict | None = None,
                     metrics: dict[str, float] | None = None, started: float | None = None,
                     ended: float | None = None, status: str = "Completed") -> str:
        from .ids import new_run_id

        row = self.store.get_run(run_id)
        ended = time.time() if ended is None else ended
        child = new_run_id(row["experiment"])
        self.store.insert_finished_run(
            child, row["experiment"], "child", parent_run_id=run_id, display_name=name, compute=row["compute"],
            status=status, started=ended if started is None else started, ended=ended, params=params, tags=tags,
            scalars=dict(metrics or {}))
        return child

    def started(self, run_id: str) -> None:
        self.store.transition(run_id, "Running", only_from=("Starting",))

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        if status == "Completed":
            self.store.transition(run_id, "Completed", only_from=("NotStarted", "Starting", "Running"))
        else:
            self.store.transition(run_id, "Failed", only_from=("NotStarted", "Queued", "Starting", "Running",
                                                               "Finalizing"),
                                  reason="run.fail()", error=error or "run.fail() was called")

    # -- files ---------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.workspace_dir / "runs" / run_id

    def store_file(self, run_id: str, name: str, source: str | os.PathLike) -> str:
        """Copy ``source`` into the run's artifacts as ``name`` (``outputs/…``, ``logs/…`` or other).

        A file is not kept in memory: on a full disk this raises one ``StorageError`` and keeps nothing."""
        from .layout import artifact_path, uploading_beside

        target = artifact_path(self.run_dir(run_id), name)
        stream = hasattr(source, "read")
        if not stream and not os.path.isfile(source):
            raise InvalidInput(f"upload_file: {source} is not a file")
        if target.is_dir():
            raise InvalidInput(f"artifact name {name!r} is a folder of the run's files; give a file's name in it")
        tmp = uploading_beside(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if stream:  # an open file (v1's path_or_stream): bytes as they are, text as UTF-8
                with open(tmp, "wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException as exc:  # a full disk, and Ctrl-C too: no hidden half-written file is left
            try:
                tmp.unlink()
            except OSError:
                pass
            reason = storage_reason(exc) if isinstance(exc, OSError) else None
            if reason is None:
                raise
            raise StorageError(f"cannot keep {name} with the run: {reason}; nothing was kept — free space or make "
                               "the workspace writable, then upload it again") from None
        return name

    # -- flushing ------------------------------------------------------------------------------

    def _loop(self) -> None:
        children.leave_signals_to_the_main_thread()
        delay = FLUSH_INTERVAL
        while not self._closed:
            self._wake.wait(delay)
            self._wake.clear()
            if not (self._points or self._records or self._tags or self._provisional):
                continue
            try:
                self.flush(background=True)
                delay = FLUSH_INTERVAL
            except BaseException as exc:  # noqa: BLE001 - this thread must never die; the rows are kept
                delay = min(max(delay * 2, FLUSH_INTERVAL), MAX_BACKOFF_S)
                if not _is_storage_error(exc):
                    self._report_once(f"flush:{type(exc).__name__}",
                                      f"aml-magics: a metric flush failed unexpectedly ({type(exc).__name__}: {exc}); "
                                      "the values are kept and retried")

    def pending(self) -> int:
        return len(self._points) + len(self._records) + len(self._tags)

    def flush(self, timeout: float = -1, *, background: bool = False) -> None:
        """Write everything buffered now (``timeout``: give up when another flush holds on longer than that;
        ``background``: the flush thread's, which leaves a name logged after it took the rows for the next one).

        Raises the store's error when it refuses writes (disk full, read-only, locked); nothing is lost then:
        every row stays buffered, in order, and the flush thread retries.

        The thread counts as inside from before it takes the lock: a SIGTERM handled in the main thread just after
        its flush took the lock (and before it wrote) waited 5 s on that lock, gave up and ended the process with
        the values unwritten — one ``with Pool(...)`` in 200 lost a worker's values on a loaded machine."""
        me = threading.get_ident()
        if me in self._flushing:  # a signal handler run inside this thread's own flush: that flush writes it all
            return
        self._flushing.add(me)
        try:
            if not self._flush_lock.acquire(timeout=timeout):
                left = self.pending()
                if left:
                    self._report_once("flush-timeout", f"aml-magics: {left} metric values were not saved: another "
                                                       f"write held the workspace for {timeout:g} s while this "
                                                       "process was ending")
                return
            try:
                self._flush_locked(background)
            finally:
                self._flush_lock.release()
        finally:
            self._flushing.discard(me)
            children.flush_ended()

    def _flush_locked(self, background: bool = False) -> None:
        try:
            self._flush_tags()
            points, records = self._drain(self._points), self._drain(self._records)
            # the names to make: those these rows use, and — so that names are stored in the order they were first
            # logged — those logged before them (with no values yet: ``log_list(name, [])``); the flush thread leaves
            # a name first logged after it took the rows for the next flush (which writes its values with it)
            make = list(self._provisional)
            if background and make:  # (provisional ids count down: the newest is the smallest; min() of the rows
                # compares their first field, the key, in C)
                newest = min(min(points)[0] if points else 0, min(records)[0] if records else 0, 0)
                make = [k for k in make if k >= newest or k in self._waited]
            if not points and not records and not make:
                self._waited = set(self._provisional)  # made by the next flush
                self._recovered()
                return
            rows = points + records if records else points  # one transaction: scalars (4 fields) and records (3)
            if rows:
                left = self._write_isolating(rows, lambda chunk: self._append(chunk, make))
                if left:
                    self._requeue([r for r in left if len(r) == 4], [r for r in left if len(r) == 3])
                    raise self._last_storage_error
            if any(k in self._provisional for k in make):
                self._append([], make)
            self._waited = set(self._provisional)
        except BaseException as exc:
            if isinstance(exc, Exception) and _is_storage_error(exc):
                self._storage_failed(exc, "metric values")
            raise
        self._recovered()

    def _flush_tags(self) -> None:
        while self._tags:
            run_id, table, tags = self._tags[0]
            self.store.set_tags(run_id, tags, table=table)
            self._tags.popleft()

    def _append(self, rows: Sequence, extra: Sequence[int] = ()) -> None:
        """Write rows — scalar points ``(key, step, ts, value)`` and records ``(key, ts, json)`` — in one transaction
        with the names first logged in them and ``extra``'s: a provisional key (``key``) is made in the store together
        with its first values, so no other process reads the name empty."""
        if not rows or len(rows[-1]) == 4:  # (rows: the points, then the records)
            points, records = rows, []
        else:
            i = bisect.bisect_left(rows, -3, key=lambda r: -len(r))  # the first record
            points, records = rows[:i], rows[i:]
        chunks = pack_points(points) if points else []  # (one series per name: ids are mapped per series)
        used = {ch[0] for ch in chunks if ch[0] <= 0}
        if records:
            used.update(r[0] for r in records if r[0] <= 0)
        keys: dict[int, tuple[int, str, str]] = {}
        if used or extra:
            provisional = self._provisional
            keys = {k: provisional[k] for k in sorted(used.union(extra), reverse=True) if k in provisional}
        made = self.store.append_packed(chunks, records, keys, self._resolved if used else None)
        for kid, (real, stored_kind) in made.items():
            self._made(kid, real, stored_kind)
        if used:
            m = self._resolved
            lost = sum(ch[1] for ch in chunks if ch[0] <= 0 and not m.get(ch[0]))
            lost += sum(1 for r in records if r[0] <= 0 and not m.get(r[0]))
            if lost:  # another process made the name first, with another kind (0)
                self._report_once("kind-clash", f"aml-magics: {lost} metric values were not saved: their name was "
                                                "logged with another kind of value by another process")

    def _made(self, kid: int, real: int, stored_kind: str) -> None:
        """A provisional key is in the store now: the caches and counters take its real id (or, when another process
        made the name with another kind first, this process's next value of it is refused)."""
        run_pk, name, kind = self._provisional.pop(kid)
        self._resolved[kid] = real if stored_kind == kind else 0
        entry = self._keys.get((run_pk, name))
        if entry is not None and entry[0] == kid:
            entry[:] = [real, stored_kind]
        c = self._counters.get((run_pk, name))
        if c is not None and c[0] == kid:
            if stored_kind == kind:
                c[0] = real
            else:  # the writers ask counter() again, and key() refuses the name's other kind
                del self._counters[(run_pk, name)]
                for names in list(self._writers.values()):
                    names.pop(name, None)

    def _write_isolating(self, rows: list, write: Callable[[list], None]) -> list:
        """Write ``rows``; a row that cannot be stored is isolated by splitting the batch, dropped and reported.
        When the store refuses writes, the rows not yet written are returned (in order)."""
        if not rows:
            return []
        stack = [rows]
        while stack:
            chunk = stack.pop()
            try:
                write(chunk)
            except BaseException as exc:  # noqa: BLE001
                if _is_storage_error(exc):
                    self._last_storage_error = exc
                    rest = list(chunk)
                    for later in reversed(stack):
                        rest.extend(later)
                    return rest
                if len(chunk) == 1:
                    self._report_once(f"bad:{type(exc).__name__}",
                                      f"aml-magics: a metric value could not be stored and was dropped "
                                      f"({type(exc).__name__}: {exc}); every other value was written")
                    continue
                half = len(chunk) // 2
                stack.append(chunk[half:])
                stack.append(chunk[:half])
        return []

    def _requeue(self, points: list, records: list) -> None:
        self._points.extendleft(reversed(points))
        self._records.extendleft(reversed(records))
        dropped = 0
        while len(self._points) > MAX_PENDING_POINTS:
            self._points.popleft()
            dropped += 1
        while len(self._records) > MAX_PENDING_RECORDS:
            self._records.popleft()
            dropped += 1
        if dropped:
            self._dropped_pending += dropped
            self._report_once("bound", f"aml-magics: the store has refused writes for so long that more than "
                                       f"{MAX_PENDING_POINTS:,} metric values waited; the oldest are being dropped")

    def _storage_failed(self, exc: BaseException, what: str) -> None:
        if self._failing is None:
            self._failing = str(exc)
            n = len(self._points) + len(self._records) + len(self._tags)
            print(f"aml-magics: could not save {n} {what} yet ({exc}); they are kept in memory and retried",
                  file=sys.stderr)

    def _recovered(self) -> None:
        if self._failing is not None and not self._tags and not self._provisional:
            self._failing = None
            if self._dropped_pending:
                print(f"aml-magics: metric logging recovered; {self._dropped_pending} values waited past the limit "
                      "and were dropped", file=sys.stderr)
            else:
                print("aml-magics: metric logging recovered; nothing was lost", file=sys.stderr)
            self._dropped_pending = 0

    def _report_once(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            print(message, file=sys.stderr)

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
        except Exception:  # noqa: BLE001
            lost = self.pending()
            print(f"aml-magics: {lost} metric values could not be saved at exit", file=sys.stderr)


def _json_default(value: Any) -> Any:
    for attr in ("tolist", "item"):  # numpy arrays and scalars without importing numpy
        if hasattr(value, attr):
            return getattr(value, attr)()
    return str(value)
