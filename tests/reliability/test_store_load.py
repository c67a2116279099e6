"""The store under load: many writer processes, live readers, and a compressed soak."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from aml_magics.core.types import RunSubmission

from ..conftest import wait_until

WRITER = """
import os, sys, time
from aml_magics import Run
run = Run.get_context()
n, release = int(sys.argv[1]), sys.argv[2]
for i in range(n // 2):
    run.log("m", float(i))
deadline = time.time() + 120  # the second half once the readers are reading (the test says so with a file)
while not os.path.exists(release) and time.time() < deadline:
    time.sleep(0.01)
for i in range(n // 2, n):
    run.log("m", float(i))
"""


def rss_kb(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fd_count(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_sixteen_writers_with_live_readers_lose_and_duplicate_nothing(client, tmp_path):
    points = int(os.environ.get("AML_MAGICS_LOAD_POINTS", "50000"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "writer.py").write_text(WRITER)
    client.computes.create("load", max_concurrent=16)
    runs = [client.runs.submit(RunSubmission(kind="script", experiment="load", source_dir=tmp_path / "src",
                                             entry="writer.py", compute="load",
                                             args=[str(points), str(tmp_path / "release")]))
            for _ in range(16)]
    errors: list[BaseException] = []
    reads = {"polls": 0, "lists": 0}
    stop = threading.Event()

    def dashboard_poller():
        cursors: dict[tuple, int] = {}
        try:
            while not stop.is_set():
                for r in runs:
                    client.runs.version(r.id)
                    got, cursors[r.id] = client.runs.metric_series(r.id, "m", cursors.get(r.id, 0))
                    reads["polls"] += 1
                time.sleep(0.005)  # a dashboard polls; a loop without a pause starved the other reader of the
                # shared connection's lock (one round of polls in a whole CI run)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def runs_list():
        try:
            while not stop.is_set():
                client.runs.list(experiment="load", limit=50)
                reads["lists"] += 1
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=dashboard_poller), threading.Thread(target=runs_list)]
    for t in readers:
        t.start()
    try:
        # the writers' second halves start only once both readers are going round (writers can be quicker than
        # one round of reads of sixteen 25,000-point series: CI saw a single round)
        wait_until(lambda: reads["polls"] > 32 and reads["lists"] > 2 or errors, timeout=120, what="the readers")
        (tmp_path / "release").touch()
        infos = [client.runs.wait(r.id, timeout=240) for r in runs]
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors
    assert reads["polls"] > 32 and reads["lists"] > 2
    for info in infos:
        assert info.status == "Completed", info.error
        log = client.runs.get_logs(info.run_id)
        assert "locked" not in log.lower(), log[-500:]
        series, _ = client.runs.metric_series(info.run_id, "m")
        steps = [s for s, _, _ in series]
        values = [v for _, _, v in series]
        assert len(series) == points
        assert sorted(steps) == list(range(points)) and sorted(values) == [float(i) for i in range(points)]


SOAK = """
import sys, time
from aml_magics import Run
run = Run.get_context()
seconds, rate = float(sys.argv[1]), int(sys.argv[2])   # `rate` log calls per second, 10 metrics each
end = time.time() + seconds
step = 0
while time.time() < end:
    for _ in range(rate):
        for k in range(10):
            run.log(f"metric_{k}", step * 0.001 + k, step=step)
        step += 1
    time.sleep(0.01)
print("steps", step)
"""


def test_soak_memory_and_file_descriptors_stay_flat(client, tmp_path):
    """One hour of a busy run (10 metrics/s) and its dashboard (a poll every 0.6 s), compressed by rate
    into SOAK_S seconds: the run process and the dashboard's process keep flat memory and fds."""
    from aml_magics.widgets.run_details import RunDetails

    soak_s = float(os.environ.get("AML_MAGICS_SOAK_S", "40"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "soak.py").write_text(SOAK)
    # one hour of a busy run = 3,600 steps × 10 metrics (one step a second); 2 steps per 10 ms tick
    # compress about two hours into SOAK_S = 40 s
    run = client.runs.submit(RunSubmission(kind="script", experiment="soak", source_dir=tmp_path / "src",
                                           entry="soak.py", args=[str(soak_s), "2"]))
    pid = wait_until(lambda: client.backend.store.get_run(run.id)["user_pid"], what="the run's process")
    wait_until(lambda: client.runs.get(run.id).status == "Running", what="Running")
    dashboard = RunDetails(run.id, client, live=False)
    samples = []
    started = time.time()
    polls = 0
    while client.runs.get(run.id).status == "Running":
        dashboard.poll()
        polls += 1
        elapsed = time.time() - started
        if len(samples) < 10 and elapsed > soak_s * (len(samples) + 1) / 11:
            try:
                samples.append((rss_kb(pid), fd_count(pid), rss_kb(), fd_count()))
            except FileNotFoundError:
                break
        time.sleep(0.005)
    info = client.runs.wait(run.id, timeout=60)
    dashboard.close()
    assert info.status == "Completed", info.error
    total_steps = len(client.runs.metric_series(run.id, "metric_0")[0])
    assert total_steps >= 3600, f"only {total_steps} steps: the soak did not reach one hour's worth"
    assert polls >= 600
    assert len(samples) >= 6
    first, last = samples[1], samples[-1]  # after warm-up
    assert last[0] - first[0] < 30_000, f"run process RSS grew {first[0]} → {last[0]} kB"
    assert last[1] <= first[1] + 2, f"run process fds grew {first[1]} → {last[1]}"
    assert last[2] - first[2] < 40_000, f"dashboard process RSS grew {first[2]} → {last[2]} kB"
    assert last[3] <= first[3] + 2, f"dashboard process fds grew {first[3]} → {last[3]}"
