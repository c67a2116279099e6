"""Scale benchmark: a workspace of a year of runs — 1,000,000 runs and 100,000,000 points (--quick: 20,000 runs).

    python bench/scale.py [--quick] [--json PATH] [--keep DIR]

The workspace is written straight into the store's tables (a million runs through the API would take hours), in
the layout our writers produce: every run with a status, two tags, a parameter and a 90-point "loss" series, and
one run with a 10,000,000-point series (--quick: 1,000,000), logged in flushes of 10,000 points.
- runs_list_p50_ms: ``%aml runs --status Completed --tag team=c`` (a page of 50, newest first, rendered as HTML)
  in an IPython shell; anchor: the same page by one raw sqlite3 query on the same file;
- runs_list_mlflow_p50_ms: the anchor — MLflow's ``search_runs`` for the same page on its SQLite tracking store
  holding the same runs, statuses and tags (MLflow's virtualenv: ``AML_MAGICS_MLFLOW_PYTHON``);
- runs_route_p99_ms: the sidebar's ``GET /aml/api/runs?limit=50`` on a real Jupyter server, 300 requests;
  experiments_route_p99_ms: its ``GET /aml/api/experiments`` (run counts), the same number of requests after a
  first one (experiments_route_first_ms: the one that counts every run);
- open_workspace_s: ``%load_ext aml_magics`` + ``%aml`` in a fresh process on this workspace;
- doctor_s: ``python -m aml_magics doctor`` on it;
- series_first_paint_s: a run dashboard (RunDetails) of the long series, built and its chart pushed (warm: the
  second one); metrics_route_p99_ms: ``GET /aml/api/runs/RUN/metrics`` of it (≤ 2,000 points), 100 requests;
  anchor: reading the series' points with numpy straight from the file;
- sweep_overhead_per_trial_s: a sweep of 1,000 empty trials (--quick: 12) at --parallel = cores; wall × parallel /
  trials (each trial's process start included), and the same over the first and the last quarter of the trials
  (a controller whose tick grows with finished trials shows there); anchor: a quarter as many trials with every
  trial's host started cold (a new interpreter, AML_MAGICS_COLD_HOSTS=1), as before warm hosts;
- log_growth_*: a run logging 10 metrics a second for 24 h (--quick: 30 min), compressed to 2,000 steps a second,
  its dashboard polling and the server's metrics route read incrementally: RSS (kB) and file-descriptor growth of
  the run, the dashboard's and the server's processes over the second half of the day (and its last quarter: a
  leak keeps growing there, a cache filling up has stopped);
- scoring_scaling_efficiency: requests/s of a scoring service with ``--workers`` = cores over cores × one worker's
  (wrk, 8 connections, on the same cores); scoring_vs_azmlinfsrv: against azmlinfsrv with as many workers; each the
  median of 5 interleaved 5 s rounds (--quick: one of 3 s), every round's figure in scoring_rounds;
  scoring_null_vs_azmlinfsrv: the same with a run() that returns at once (what each server itself costs);
  scoring_ceiling_vs_azmlinfsrv: the ratio a server costing nothing would reach (``scoring_ceiling``): where it is
  near 4×, the digits model's run() alone, not the server, keeps scoring_vs_azmlinfsrv under it;
  scoring_close_scaling: ``--workers`` = cores over one worker when every request opens a new connection.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from _common import percentile, print_table, ratio, scratch, timed_gets, write_json  # noqa: E402

POINTS_PER_RUN = 90
FLUSH = 10_000


def seed(ws: Path, n_runs: int, long_points: int) -> str:
    """Fill a workspace through the store's own schema; returns the id of the run with the long series."""
    from aml_magics.core.client import Client

    client = Client(ws)
    store = client.backend.store
    conn = store._conn
    now = time.time()
    exps = [store.ensure_experiment(f"exp-{i}") for i in range(20)]
    statuses = ["Completed"] * 90 + ["Failed"] * 7 + ["Canceled"] * 3
    steps = array("q", range(POINTS_PER_RUN)).tobytes()
    batch = 20_000
    for start in range(0, n_runs, batch):
        runs, hist, tags, params, keys, chunks = [], [], [], [], [], []
        for i in range(start, min(n_runs, start + batch)):
            pk = i + 1
            status = statuses[i % 100]
            t = now - n_runs + i
            runs.append((pk, f"run_{i:07d}", exps[i % 20], f"run {i}", status, t, t, t + 1))
            hist += [(pk, "Running", t), (pk, status, t + 1)]
            tags += [(pk, "team", "abcdefghij"[i % 10]), (pk, "seed", str(i % 7))]
            params.append((pk, "lr", str(0.001 * (i % 13))))
            keys.append((pk, pk, "loss"))
            vals = array("d", (1.0 / (j + 1 + i % 5) for j in range(POINTS_PER_RUN))).tobytes()
            stamps = array("d", (t + j * 0.001 for j in range(POINTS_PER_RUN))).tobytes()
            chunks.append((pk, 0, POINTS_PER_RUN, steps, stamps, vals))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO runs(id, run_id, experiment_id, display_name, kind, compute, status, created, "
                         "started, ended, spec) VALUES(?,?,?,?,'cell','local',?,?,?,?,'{}')", runs)
        conn.executemany("INSERT INTO status_history(run, status, ts) VALUES(?,?,?)", hist)
        conn.executemany("INSERT INTO run_tags(run, key, value) VALUES(?,?,?)", tags)
        conn.executemany("INSERT INTO run_params(run, key, value) VALUES(?,?,?)", params)
        conn.executemany("INSERT INTO metric_keys(id, run, name, kind) VALUES(?,?,?,'scalar')", keys)
        conn.executemany("INSERT INTO metric_chunks VALUES(?,?,?,?,?,?)", chunks)
        conn.execute("COMMIT")
    long_id = "long_series"
    pk = store.create_run(long_id, "long", "cell", compute="local", status="Completed", display_name="long series")
    key = store.metric_key(pk, "curve", "scalar")
    import numpy as np

    for first in range(0, long_points, FLUSH):
        s = np.arange(first, first + FLUSH, dtype="<i8")
        v = np.sin(s / 5000.0) + (s % 997) * 1e-4
        with store.write() as c:
            c.execute("INSERT INTO metric_chunks VALUES(?,?,?,?,?,?)",
                      (key, first, FLUSH, s.tobytes(), (now + s * 1e-3).tobytes(), v.tobytes()))
    return long_id


def runs_list(ws: Path, repeats: int) -> tuple[float, float, int]:
    """(p50 ms of the magic, p50 ms of the raw sqlite3 page, rows) for a page of 50 by status and tag."""
    os.environ["AML_MAGICS_WORKSPACE"] = str(ws)
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "aml_magics")
    times, rows = [], 0
    for i in range(repeats + 2):
        t = time.perf_counter()
        page = ip.run_line_magic("aml", "runs --status Completed --tag team=c --limit 50")
        page._repr_html_()
        if i >= 2:
            times.append((time.perf_counter() - t) * 1000)
        rows = len(page.infos)
    raw = sqlite3.connect(ws / "aml.db")
    sql = ("SELECT r.run_id, r.status, r.created, r.ended FROM runs r JOIN run_tags t ON t.run=r.id AND t.key='team' "
           "AND t.value='c' WHERE r.status='Completed' AND r.parent_id IS NULL ORDER BY r.id DESC LIMIT 50")
    raw_times = []
    for i in range(repeats + 2):
        t = time.perf_counter()
        raw.execute(sql).fetchall()
        if i >= 2:
            raw_times.append((time.perf_counter() - t) * 1000)
    raw.close()
    return statistics.median(times), statistics.median(raw_times), rows


MLFLOW_SEARCH = """
import sqlite3, statistics, sys, time
from mlflow.tracking import MlflowClient

db, n_runs, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=f"sqlite:///{db}")
exps = [client.create_experiment(f"exp-{i}") for i in range(20)]  # MLflow's own migrations make the schema
conn = sqlite3.connect(db)
statuses = ["FINISHED"] * 90 + ["FAILED"] * 7 + ["KILLED"] * 3
now = int(time.time() * 1000)
for start in range(0, n_runs, 20000):
    runs, tags, params, metrics = [], [], [], []
    for i in range(start, min(n_runs, start + 20000)):
        rid, t = f"{i:032x}", now - (n_runs - i) * 1000
        runs.append((rid, f"run {i}", "LOCAL", "", "", "bench", statuses[i % 100], t, t + 1000, "", "active",
                     f"/tmp/mlruns/{rid}", exps[i % 20]))
        tags += [("team", "abcdefghij"[i % 10], rid), ("seed", str(i % 7), rid)]
        params.append(("lr", str(0.001 * (i % 13)), rid))
        metrics.append(("loss", 1.0 / (90 + i % 5), t, 89, 0, rid))
    conn.executemany("INSERT INTO runs(run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                     "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
                     "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
    conn.executemany("INSERT INTO tags(key, value, run_uuid) VALUES(?,?,?)", tags)
    conn.executemany("INSERT INTO params(key, value, run_uuid) VALUES(?,?,?)", params)
    conn.executemany("INSERT INTO latest_metrics(key, value, timestamp, step, is_nan, run_uuid) VALUES(?,?,?,?,?,?)",
                     metrics)
    conn.commit()
conn.close()
times = []
for i in range(repeats + 1):
    t = time.perf_counter()
    page = client.search_runs([str(e) for e in exps], "attributes.status = 'FINISHED' and tags.team = 'c'",
                              max_results=50, order_by=["attributes.start_time DESC"])
    if i:
        times.append((time.perf_counter() - t) * 1000)
    assert len(page) == 50, len(page)
print(statistics.median(times))
"""


def mlflow_search(n_runs: int, repeats: int) -> float | None:
    """The anchor of the runs page: MLflow's ``search_runs`` (its tracking store on SQLite, the same runs, statuses
    and tags written straight into its own tables) for the same page — 50 newest FINISHED runs with tag team=c
    across the 20 experiments; p50 ms, or None without MLflow's virtualenv (``AML_MAGICS_MLFLOW_PYTHON``) or when
    it does not finish in 20 minutes."""
    python = os.environ.get("AML_MAGICS_MLFLOW_PYTHON")
    if not python or not Path(python).exists():
        return None
    folder = Path(scratch("bench-scale-mlflow-"))
    try:
        out = subprocess.run([python, "-c", MLFLOW_SEARCH, str(folder / "mlflow.db"), str(n_runs), str(repeats)],
                             capture_output=True, text=True, timeout=1200, cwd=folder)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return float(out.stdout.strip().splitlines()[-1])


def open_workspace(ws: Path) -> float:
    code = ("import time\nfrom IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()\n"
            "t = time.perf_counter(); ip.run_line_magic('load_ext', 'aml_magics'); ip.run_line_magic('aml', '')\n"
            "print(time.perf_counter() - t)")
    best = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, AML_MAGICS_WORKSPACE=str(ws)))
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        best.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(best)


def doctor(ws: Path) -> float:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "aml_magics", "doctor"], capture_output=True, text=True, timeout=3600,
                         env=dict(os.environ, AML_MAGICS_WORKSPACE=str(ws)))
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
    return time.perf_counter() - t


def first_paint(ws: Path, run_id: str) -> tuple[float, float, int]:
    """(cold s, warm s, points charted) of a dashboard of the long series, and the raw read for the anchor."""
    from aml_magics.core.client import Client
    from aml_magics.widgets.run_details import RunDetails

    client = Client(ws)
    out = []
    for _ in range(2):
        t = time.perf_counter()
        d = RunDetails(run_id, client)
        d.update(force=True)
        out.append(time.perf_counter() - t)
        charted = len(d.chart.series("curve", "long series").values)  # points held, not logged
        d.close()
    return out[0], out[1], charted


def raw_series_read(ws: Path, run_id: str) -> float:
    import numpy as np

    db = sqlite3.connect(ws / "aml.db")
    t = time.perf_counter()
    vals = [np.frombuffer(v, "<f8") for (v,) in db.execute(
        "SELECT c.vals FROM metric_chunks c JOIN metric_keys k ON k.id=c.key_id JOIN runs r ON r.id=k.run "
        "WHERE r.run_id=? ORDER BY c.first_index", (run_id,))]
    np.concatenate(vals)
    db.close()
    return time.perf_counter() - t


def routes(root: Path, long_id: str, n_requests: int, growth_hours: float) -> tuple[float, float, float, dict]:
    """(runs route p99 ms, runs route p50 ms, metrics route p99 ms, log growth) on a real Jupyter server."""
    import requests

    from tests.browser.lab import jupyterlab

    with jupyterlab(root) as lab:
        s = requests.Session()
        headers = {"Authorization": f"token {lab['token']}"}
        url = f"{lab['base']}/aml/api"
        def a_page(r):
            assert r.status_code == 200 and len(r.json()["runs"]) == 50, r.text[:300]

        def the_curve(r):
            body = r.json()["series"]["curve"]
            assert len(body["values"]) <= 2000 and body["downsampled"], body.get("total")

        times = timed_gets(s, [f"{url}/runs?limit=50"] * n_requests, headers, a_page, warmup=10)
        # the sidebar's experiments list: the first request counts every run, the next only the runs added since
        def listed(r):
            assert r.status_code == 200 and r.json()["experiments"], r.text[:300]

        first = timed_gets(s, [f"{url}/experiments"], headers, listed, warmup=0)[0]
        experiments = timed_gets(s, [f"{url}/experiments"] * n_requests, headers, listed, warmup=0)
        # the first read writes the summaries (measured as series_first_paint cold): warm-up, not timed
        series = timed_gets(s, [f"{url}/runs/{long_id}/metrics"] * max(20, n_requests // 3), headers, the_curve,
                            warmup=1)
        growth = log_growth(lab, root / "ws", growth_hours)
    growth["experiments_route_first_ms"], growth["experiments_route_p99_ms"] = first, percentile(experiments, 99)
    return percentile(times, 99), statistics.median(times), percentile(series, 99), growth


SWEEP_CELL = """
from aml_magics import Run
x = uniform(0, 1)
Run.get_context().log("x", x)
"""


def sweep(trials: int, parallel: int, cold: bool = False) -> tuple[float, float, float]:
    """(overhead per trial, first quarter's, last quarter's), seconds: wall × parallel / trials. ``cold``: every
    trial's host a new interpreter (AML_MAGICS_COLD_HOSTS), as before warm hosts — the anchor."""
    if cold:
        os.environ["AML_MAGICS_COLD_HOSTS"] = "1"
        try:
            return sweep(trials, parallel)
        finally:
            del os.environ["AML_MAGICS_COLD_HOSTS"]
    from aml_magics.core.client import Client
    from aml_magics.core.types import RunSubmission
    from aml_magics.sweep.settings import sweep_submission
    from aml_magics.sweep.space import parse_cell

    client = Client(Path(scratch("bench-scale-sweep-")))
    client.computes.create("cores", max_concurrent=parallel)
    folder = Path(scratch("bench-scale-src-"))
    space, spans = parse_cell(SWEEP_CELL)
    trial = RunSubmission(kind="cell", experiment="scale-sweep", source_dir=folder, entry="__cell__.py",
                          code=SWEEP_CELL, compute="cores")
    sub = sweep_submission(trial, space, primary_metric="x", max_trials=trials, parallel=parallel, seed=0, spans=spans)
    t = time.time()
    run = client.runs.submit(sub)
    info = client.runs.wait(run.id)
    if info.status != "Completed":
        raise SystemExit(f"sweep {run.id} ended {info.status}: {info.error}")
    wall = info.ended - t
    ends = sorted(c.ended for c in client.runs.children(run.id).infos)
    q = max(1, len(ends) // 4)
    first = (ends[q - 1] - t) * parallel / q
    last = (ends[-1] - ends[-q - 1]) * parallel / q
    return wall * parallel / trials, first, last


GROWTH = """
import sys, time
from aml_magics import Run
run = Run.get_context()
steps, per_tick = int(sys.argv[1]), int(sys.argv[2])  # one step a second of the day, 10 metrics each
step = 0
while step < steps:
    for _ in range(per_tick):
        for k in range(10):
            run.log(f"metric_{k}", (step % 977) * 0.001 + k, step=step)
        step += 1
    time.sleep(0.01)
"""


def _rss_fds(pid) -> tuple[int, int]:
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def log_growth(lab: dict, ws: Path, hours: float) -> dict:
    """A run logging 10 metrics a second for ``hours`` (compressed: 2,000 steps a second), its dashboard polling
    and the server's metrics route read as the run view reads it (only new points): memory and file descriptors of
    the three processes over the second half of the day (after warm-up), in kB and count."""
    import requests

    from aml_magics.core.client import Client
    from aml_magics.core.types import RunSubmission
    from aml_magics.widgets.run_details import RunDetails

    client = Client(ws)
    src = Path(scratch("bench-scale-growth-"))
    (src / "growth.py").write_text(GROWTH)
    steps = int(hours * 3600)
    run = client.runs.submit(RunSubmission(kind="script", experiment="growth", source_dir=src, entry="growth.py",
                                           args=[str(steps), "20"]))
    deadline = time.time() + 120
    while not client.backend.store.get_run(run.id)["user_pid"] and time.time() < deadline:
        time.sleep(0.05)
    pid = client.backend.store.get_run(run.id)["user_pid"]
    dashboard = RunDetails(run.id, client, live=False)
    session = requests.Session()
    headers = {"Authorization": f"token {lab['token']}"}
    url = f"{lab['base']}/aml/api/runs/{run.id}/metrics"
    cursors: dict[str, int] = {}
    samples = []
    while client.runs.get(run.id).status in ("NotStarted", "Queued", "Starting", "Running"):
        dashboard.poll()
        body = session.get(url, params=[("since", f"{k}:{v}") for k, v in cursors.items()],
                           headers=headers).json()["series"]
        cursors.update({k: v["cursor"] for k, v in body.items()})
        try:
            samples.append((cursors.get("metric_0", 0), _rss_fds(pid), _rss_fds("self"), _rss_fds(lab["pid"])))
        except (FileNotFoundError, StopIteration):  # the run process has just ended
            break
        time.sleep(0.2)
    info = client.runs.wait(run.id, timeout=300)
    dashboard.close()
    if info.status != "Completed":
        raise RuntimeError(f"the logging run ended {info.status}: {info.error}")
    half = [s for s in samples if s[0] >= steps // 2] or samples[-1:]
    quarter = [s for s in samples if s[0] >= steps * 3 // 4] or samples[-1:]
    first, last = half[0], half[-1]
    out = {"steps": steps, "points": steps * 10}
    for i, who in ((1, "run"), (2, "dashboard"), (3, "server")):
        out[f"{who}_rss_growth_kb"] = last[i][0] - first[i][0]
        # a leak grows on: half as much again over the last quarter; a cache filling up (SQLite's page cache is
        # 2 MB a connection) has stopped by then
        out[f"{who}_rss_growth_last_quarter_kb"] = last[i][0] - quarter[0][i][0]
        out[f"{who}_fd_growth"] = last[i][1] - first[i][1]
    return out


NULL_SCORE = "def init():\n    pass\n\n\ndef run(raw_data):\n    return [0]\n"  # the servers' own cost per request


def scoring_workers(workers: int, seconds: int, rounds: int, score: str | None = None, close: bool = False) -> dict:
    """requests/s of a scoring service with 1 and ``workers`` workers, and of azmlinfsrv with ``workers`` (wrk, 8
    connections; the digits LogisticRegression of bench/scoring.py). The three are loaded in turn, ``rounds``
    times, and each figure is the median of its rounds: on a shared 2-core machine one window of load can be 30 %
    off, and interleaving gives every contender the same slow and fast moments. ``close``: every request on a new
    connection (a client without keep-alive)."""
    import signal
    import statistics

    from aml_magics.core.client import Client
    from scoring import free_port, register_digits, wait_http, wrk

    tmp = Path(scratch("bench-scale-scoring-"))
    client = Client(tmp / "ws")
    model_dir, body = register_digits(client, tmp)
    if score is not None:  # another score.py for the same model and body (NULL_SCORE)
        (tmp / "score.py").write_text(score)
    targets = {}  # name -> (url, key)
    for n in (1, workers):
        svc = client.deployments.create(f"scale-{n}", "digits", score=tmp / "score.py", workers=n)
        targets[f"ours_{n}"] = (svc.scoring_uri, svc.get_keys()[0])
    proc = None
    try:
        import azureml_inference_server_http  # noqa: F401
    except ImportError:
        pass
    else:
        (tmp / "wrapper.py").write_text(
            "import os, sys\nos.environ['AZUREML_ENTRY_SCRIPT'] = sys.argv[1]\n"
            "os.environ['AZUREML_MODEL_DIR'] = sys.argv[2]\n"
            "from azureml_inference_server_http import amlserver_linux\n"
            "amlserver_linux.run('127.0.0.1', int(sys.argv[3]), int(sys.argv[4]))\n")
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(tmp / "wrapper.py"), str(tmp / "score.py"), str(model_dir),
                                 str(port), str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, cwd=tmp)  # (gunicorn puts its cwd on sys.path: see scoring.py)
        targets["azmlinfsrv"] = (f"http://127.0.0.1:{port}/score", None)
    try:
        if proc is not None:  # inside the try: a server that never answers is stopped too
            wait_http(targets["azmlinfsrv"][0].replace("/score", "/"))
        for url, key in targets.values():
            wrk(url, body, key, 1)  # warm
        seen: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, (url, key) in targets.items():
                seen[name].append(wrk(url, body, key, seconds, close=close)[0])
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        for n in (1, workers):
            client.deployments.delete(f"scale-{n}")
    out = {name: statistics.median(v) for name, v in seen.items()}
    out.setdefault("azmlinfsrv", None)
    out["rounds"] = {name: [round(x) for x in v] for name, v in seen.items()}
    return out


def scoring_ceiling(rps: float, null_rps: float, azmlinfsrv_rps: float | None) -> float | None:
    """The ratio to azmlinfsrv that a server costing nothing per request would reach: the machine's time per request
    with the digits model minus that with a run() that returns at once (our HTTP layer's, the kernel's and wrk's share)
    is what run() itself takes under this load; azmlinfsrv's time per request over that. ``scoring_vs_azmlinfsrv``
    can only approach it."""
    if not azmlinfsrv_rps or not rps or not null_rps or 1 / rps <= 1 / null_rps:
        return None
    return (1 / azmlinfsrv_rps) / (1 / rps - 1 / null_rps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20,000 runs, a 1,000,000-point series, 12 sweep trials")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--keep", metavar="DIR", help="build (or reuse) the workspace here and keep it")
    args = p.parse_args()
    import shutil

    if shutil.which("wrk") is None:
        sys.exit("bench/scale.py needs wrk for the scoring figures: apt-get install wrk")
    n_runs = 20_000 if args.quick else 1_000_000
    long_points = 1_000_000 if args.quick else 10_000_000
    trials = 12 if args.quick else 1000
    root = Path(args.keep) if args.keep else Path(scratch("bench-scale-"))
    ws = root / "ws"
    figures: dict = {"scale_runs": n_runs, "scale_points": n_runs * POINTS_PER_RUN + long_points}
    if not (ws / "aml.db").exists():
        t = time.perf_counter()
        seed(ws, n_runs, long_points)
        print(f"workspace written in {time.perf_counter() - t:.0f} s: {ws}")
    long_id = "long_series"
    figures["open_workspace_s"] = open_workspace(ws)
    cold, warm, charted = first_paint(ws, long_id)
    figures["series_first_paint_cold_s"], figures["series_first_paint_s"] = cold, warm
    figures["series_raw_read_s"] = raw_series_read(ws, long_id)
    figures["runs_list_p50_ms"], figures["runs_list_sqlite_p50_ms"], rows = runs_list(ws, 10 if args.quick else 30)
    figures["runs_list_mlflow_p50_ms"] = mlflow_search(n_runs, 3 if args.quick else 10)
    figures["runs_route_p99_ms"], figures["runs_route_p50_ms"], figures["metrics_route_p99_ms"], growth = \
        routes(root, long_id, 100 if args.quick else 300, 0.5 if args.quick else 24)
    for key in ("experiments_route_first_ms", "experiments_route_p99_ms"):
        figures[key] = growth.pop(key)
    figures.update({f"log_growth_{k}": v for k, v in growth.items()})
    figures["doctor_s"] = doctor(ws)
    parallel = os.cpu_count() or 1
    figures["sweep_trials"] = trials
    figures["sweep_parallel"] = parallel
    (figures["sweep_overhead_per_trial_s"], figures["sweep_overhead_first_quarter_s"],
     figures["sweep_overhead_last_quarter_s"]) = sweep(trials, parallel)
    figures["sweep_cold_trials"] = max(12, trials // 4)
    figures["sweep_cold_overhead_per_trial_s"] = sweep(figures["sweep_cold_trials"], parallel, cold=True)[0]
    rps = scoring_workers(parallel, 3 if args.quick else 5, 1 if args.quick else 5)
    figures.update(scoring_workers=parallel, scoring_rps_1=rps["ours_1"], scoring_rps_n=rps[f"ours_{parallel}"],
                   scoring_azmlinfsrv_rps_n=rps["azmlinfsrv"], scoring_rounds=rps["rounds"],
                   scoring_scaling_efficiency=rps[f"ours_{parallel}"] / (parallel * rps["ours_1"]),
                   scoring_vs_azmlinfsrv=rps[f"ours_{parallel}"] / rps["azmlinfsrv"] if rps["azmlinfsrv"] else None)
    null = scoring_workers(parallel, 3 if args.quick else 5, 1 if args.quick else 3, score=NULL_SCORE)
    figures.update(scoring_null_rps_n=null[f"ours_{parallel}"], scoring_null_azmlinfsrv_rps_n=null["azmlinfsrv"],
                   scoring_null_vs_azmlinfsrv=null[f"ours_{parallel}"] / null["azmlinfsrv"] if null["azmlinfsrv"] else None)
    figures["scoring_ceiling_vs_azmlinfsrv"] = scoring_ceiling(rps[f"ours_{parallel}"], null[f"ours_{parallel}"],
                                                              rps["azmlinfsrv"])
    fresh = scoring_workers(parallel, 3 if args.quick else 5, 1 if args.quick else 3, close=True)
    figures.update(scoring_close_rps_1=fresh["ours_1"], scoring_close_rps_n=fresh[f"ours_{parallel}"],
                   scoring_close_azmlinfsrv_rps_n=fresh["azmlinfsrv"],
                   scoring_close_scaling=fresh[f"ours_{parallel}"] / fresh["ours_1"])
    size = f"{n_runs:,} runs, {figures['scale_points']:,} points"
    print_table(f"Scale: {size}", [
        ("%aml runs --status --tag (page of 50, HTML) p50", f"{figures['runs_list_p50_ms']:.1f} ms",
         f"sqlite3 raw page {figures['runs_list_sqlite_p50_ms']:.2f} ms",
         ratio(figures["runs_list_p50_ms"], figures["runs_list_sqlite_p50_ms"]), "≤ 50 ms"),
        ("  the same page from MLflow's search_runs (SQLite store, same runs)", "",
         "not measured (no MLflow virtualenv)" if figures["runs_list_mlflow_p50_ms"] is None else
         f"{figures['runs_list_mlflow_p50_ms']:.1f} ms", ratio(figures["runs_list_p50_ms"],
                                                              figures["runs_list_mlflow_p50_ms"]), ""),
        ("GET /aml/api/runs?limit=50 p50 / p99", f"{figures['runs_route_p50_ms']:.1f} / "
         f"{figures['runs_route_p99_ms']:.1f} ms", "", "", "p99 ≤ 100 ms"),
        ("GET /aml/api/experiments p99 (the first request)", f"{figures['experiments_route_p99_ms']:.1f} ms "
         f"({figures['experiments_route_first_ms']:.0f} ms)", "", "", "p99 ≤ 100 ms"),
        ("%load_ext + %aml (fresh process)", f"{figures['open_workspace_s']:.2f} s", "", "", "≤ 0.3 s"),
        ("python -m aml_magics doctor", f"{figures['doctor_s']:.1f} s", "", "", "stated"),
        (f"dashboard of a {long_points:,}-point series, warm (cold)",
         f"{figures['series_first_paint_s']:.3f} s ({cold:.2f} s)",
         f"numpy read of its values {figures['series_raw_read_s']:.2f} s",
         ratio(figures["series_first_paint_s"], figures["series_raw_read_s"]), "≤ 0.5 s"),
        ("GET metrics of that series p99", f"{figures['metrics_route_p99_ms']:.1f} ms",
         f"{charted:,} points charted", "", "≤ 100 ms"),
        (f"sweep of {trials} empty trials, --parallel {parallel}: per trial",
         f"{figures['sweep_overhead_per_trial_s'] * 1000:.0f} ms",
         f"first / last quarter {figures['sweep_overhead_first_quarter_s'] * 1000:.0f} / "
         f"{figures['sweep_overhead_last_quarter_s'] * 1000:.0f} ms",
         ratio(figures["sweep_overhead_last_quarter_s"], figures["sweep_overhead_first_quarter_s"]), "≤ 50 ms"),
        (f"the same, {figures['sweep_cold_trials']} trials, hosts started cold", "",
         f"{figures['sweep_cold_overhead_per_trial_s'] * 1000:.0f} ms per trial",
         ratio(figures["sweep_overhead_per_trial_s"], figures["sweep_cold_overhead_per_trial_s"]), "warm < cold"),
        (f"a run logging {growth['steps'] // 3600} h of 10 metrics/s (compressed): RSS growth over the 2nd half "
         "(the last quarter)",
         " · ".join(f"{who} {growth[f'{who}_rss_growth_kb']:,} ({growth[f'{who}_rss_growth_last_quarter_kb']:,}) kB"
                    for who in ("run", "dashboard", "server")),
         f"fds {growth['run_fd_growth']:+d} / {growth['dashboard_fd_growth']:+d} / {growth['server_fd_growth']:+d}",
         "", "flat"),
        (f"scoring --workers {parallel}: requests/s", f"{figures['scoring_rps_n']:,.0f}",
         f"--workers 1: {figures['scoring_rps_1']:,.0f}", f"{figures['scoring_scaling_efficiency']:.2f} of {parallel}×",
         "≥ 0.7"),
        (f"  vs azmlinfsrv with {parallel} workers", f"{figures['scoring_rps_n']:,.0f}",
         f"{figures['scoring_azmlinfsrv_rps_n'] or 0:,.0f}",
         f"{figures['scoring_vs_azmlinfsrv']:.2f}x" if figures["scoring_vs_azmlinfsrv"] else "n/a", "≥ 4×"),
        ("  same, run() returns at once (the servers' own cost)", f"{figures['scoring_null_rps_n']:,.0f}",
         f"{figures['scoring_null_azmlinfsrv_rps_n'] or 0:,.0f}",
         f"{figures['scoring_null_vs_azmlinfsrv']:.2f}x" if figures["scoring_null_vs_azmlinfsrv"] else "n/a", ""),
        ("  the most any server could reach: run()'s own time per request (ours minus the above)", "",
         "", f"{figures['scoring_ceiling_vs_azmlinfsrv']:.2f}x" if figures["scoring_ceiling_vs_azmlinfsrv"] else "n/a",
         ""),
        (f"  a new connection per request: --workers {parallel} vs 1 (azmlinfsrv {parallel})",
         f"{figures['scoring_close_rps_n']:,.0f}", f"{figures['scoring_close_rps_1']:,.0f} "
         f"({figures['scoring_close_azmlinfsrv_rps_n'] or 0:,.0f})", f"{figures['scoring_close_scaling']:.2f}x",
         "> 1"),
    ])
    write_json("scale", figures, args.json)


if __name__ == "__main__":
    main()
