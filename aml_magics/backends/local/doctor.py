"""``%aml doctor`` / ``python -m aml_magics doctor``: check a local workspace and repair what is safe.

SQLite's own integrity check; runs and services whose processes are gone (marked Failed with the
reason); records without their files and files without a record; registrations interrupted
mid-copy (their staging folders are removed) and datastore uploads whose process was killed (their half-written
files). Nothing the user logged or registered is deleted.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from ...core.contract import DoctorBackend
from ...core.render import counted
from ..common.doctor import DoctorReport
from . import layout, procs


class LocalDoctor(DoctorBackend):
    def __init__(self, backend):
        self.backend = backend

    def check(self, recover: bool = False) -> DoctorReport:
        return run_doctor(self.backend, recover=recover)


def run_doctor(backend, recover: bool = False) -> DoctorReport:
    from ...core.errors import StoreDamaged

    store, root = backend.store, backend.path
    report = DoctorReport(str(root))
    try:
        problems = [r for r in store.integrity_check() if r != "ok"]
    except StoreDamaged as exc:
        problems = [str(exc)]
    if problems:  # bad pages: nothing else can be trusted; keep a copy and save what can be saved
        from .store.recovery import examine_damaged

        damaged = examine_damaged(store.path, recover=recover)
        damaged.checks.insert(0, ("SQLite integrity_check", "problem", "; ".join(problems[:3])))
        return damaged
    report.add("SQLite integrity_check", "ok", "")
    report.add(*_free_space(root))

    # a run whose host is gone cannot be cancelled or finished properly: stop its process, then repair it
    unsupervised = []
    for r in store.hosted_in_slots():
        if r["host_pid"] and not procs.is_alive(r["host_pid"], r["host_start"]) and r["user_pid"] \
                and procs.runs_for(r["user_pid"], r["user_start"], r["run_id"]):
            procs.signal_group(r["user_pid"], r["user_start"], procs.SIGKILL)
            unsupervised.append((r["user_pid"], r["user_start"]))
    deadline = time.monotonic() + 5
    while any(procs.is_alive(pid, token) for pid, token in unsupervised) and time.monotonic() < deadline:
        time.sleep(0.02)
    repaired = backend.runs.reconcile()
    report.add("active runs have live processes", "repaired" if repaired else "ok",
               f"marked Failed: {', '.join(repaired)}" if repaired else "")

    orphans = []
    for r in store.ended_with_processes():
        if procs.runs_for(r["user_pid"], r["user_start"], r["run_id"]):  # the run ended but its code still runs
            procs.signal_group(r["user_pid"], r["user_start"], procs.SIGKILL)
            orphans.append(r["run_id"])
    report.add("no orphaned run processes", "repaired" if orphans else "ok",
               f"stopped the processes of ended runs: {', '.join(orphans[:5])}" if orphans else "")

    before = {d.name: d.state for d in backend.deployments.list()}  # listing marks dead services Failed
    restarted, dead = [], []
    for name, state in before.items():
        if state != "Failed":
            continue
        try:
            (restarted if backend.deployments.restart(name) else dead).append(name)
        except Exception as exc:  # noqa: BLE001 - reported, the check goes on
            dead.append(f"{name} ({exc})")
    if restarted and not dead:
        report.add("services have live processes", "repaired", f"restarted: {', '.join(restarted)}")
    else:
        report.add("services have live processes", "problem" if dead else "ok",
                   f"not running: {', '.join(dead)} (redeploy with --update or delete)" if dead else "")

    rows = store.every_run()
    known = {r["run_id"] for r in rows}
    runs_dir = root / "runs"
    missing = [r["run_id"] for r in rows if r["kind"] not in ("interactive", "child")
               and not (r["status"] == "Canceled" and r["started"] is None)  # canceled before it was prepared
               and not (layout.run_dir(root, r["run_id"]) / "snapshot").is_dir()]
    report.add("runs have their snapshot", "problem" if missing else "ok", ", ".join(missing[:5]))
    strays = sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and p.name not in known) if runs_dir.is_dir() else []
    report.add("run folders have a record", "problem" if strays else "ok",
               f"folders without a run: {', '.join(strays[:5])}" if strays else "")

    lost = [f"{r['name']}:{r['version']}" for r in backend.model_rows.files()
            if not (Path(r["path"]) / r["entry"]).exists()]
    report.add("model versions have their files", "problem" if lost else "ok", ", ".join(lost[:5]))
    staging = root / "models" / ".staging"
    leftovers = [p for p in staging.iterdir()] if staging.is_dir() else []
    for p in leftovers:
        shutil.rmtree(p, ignore_errors=True)
    report.add("no half-copied registrations", "repaired" if leftovers else "ok",
               f"removed {len(leftovers)} interrupted copy(ies)" if leftovers else "")
    stopped = _stopped_uploads(backend)
    freed = 0
    for f in stopped:
        try:
            freed += f.stat().st_size
            f.unlink()
        except OSError:
            pass
    report.add("no half-written uploads", "repaired" if stopped else "ok",
               f"removed {counted(len(stopped), 'file')}, {freed / 1e6:,.1f} MB, of uploads whose kernel was stopped"
               if stopped else "")
    return report


MIN_FREE_BYTES = 100 * 1024 * 1024


def _free_space(root: Path) -> tuple[str, str, str]:
    """The space left on the workspace's disk: a problem under 100 MB, where a run's snapshot, its logging and a
    registration start to fail (each says so then, but a user asking the doctor wants to know before)."""
    try:
        usage = shutil.disk_usage(root)
    except OSError as exc:
        return "free disk space", "problem", f"cannot be read: {exc.strerror or exc}"
    shown = f"{usage.free / 1e9:,.1f} GB" if usage.free >= 1e9 else f"{usage.free / 1e6:,.1f} MB"
    if usage.free < MIN_FREE_BYTES:
        return ("free disk space", "problem", f"only {shown} free on the workspace's disk: runs, logging and "
                "registrations will fail — free space, or move the workspace (%aml workspace use PATH)")
    return "free disk space", "ok", f"{shown} free"


def _stopped_uploads(backend) -> list[Path]:
    """Files an upload was writing when its process was killed (``.NAME.PID-HEX.uploading``), to a datastore or into a
    run's folder (``run.upload_file``): hidden from every listing, they kept their space for ever. One whose process
    still runs (or whose pid was reused) stays."""
    import re

    pattern = re.compile(r"^\..*\.(\d+)-[0-9a-f]{8}" + re.escape(layout.UPLOADING) + "$")
    found = []
    for f in _candidates([Path(ds.path) for ds in backend.datastores.list()], Path(backend.path) / "runs"):
        m = pattern.match(f.name)
        if m and f.is_file() and not f.is_symlink() and not procs.is_alive(int(m.group(1))):
            found.append(f)
    return sorted(set(found))  # (a datastore folder inside another is walked twice)


def _candidates(datastores: list[Path], runs: Path):
    """The ``*.uploading`` files in the datastores and in the runs' folders, where ``upload_file`` writes (``outputs/``
    in the snapshot, ``logs/``, ``artifacts/``): not the rest of the snapshots, a copy of each run's source folder
    and most of the files of a workspace of many runs."""
    pattern = "*" + layout.UPLOADING
    for base in datastores:
        if base.is_dir():
            yield from base.rglob(pattern)
    for run in (runs.iterdir() if runs.is_dir() else ()):
        for entry in (run.iterdir() if run.is_dir() and not run.is_symlink() else ()):
            if entry.name == "snapshot":
                entry = entry / "outputs"
            if entry.is_dir() and not entry.is_symlink():
                yield from entry.rglob(pattern)
            elif entry.name.endswith(layout.UPLOADING):
                yield entry
