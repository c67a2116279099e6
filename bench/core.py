"""Foundation benchmarks: %load_ext cost, submit overhead, metric logging throughput.

    python bench/core.py [--quick] [--json PATH]

JSON keys: load_ext_s, submit_overhead_s, log_points_per_s_batched, log_points_per_s_single,
sqlite_executemany_points_per_s, mlflow_log_batch_points_per_s (null when MLflow is absent).
"""
from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_of, parse_args, print_table, ratio, write_json  # noqa: E402



def fresh_process_seconds(code: str, env: dict | None = None, exe: str | None = None) -> float:
    out = subprocess.run([exe or sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def load_ext_seconds(tmp: Path) -> float:
    code = ("import time\nfrom IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()\n"
            "t = time.perf_counter(); ip.run_line_magic('load_ext', 'aml_magics'); ip.run_line_magic('aml', '')\n"
            "print(time.perf_counter() - t)")
    env = dict(os.environ, AML_MAGICS_WORKSPACE=str(tmp / "ws-load"))
    return fresh_process_seconds(code, env)


def import_seconds(module: str, exe: str | None = None) -> float | None:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    try:
        return fresh_process_seconds(code, exe=exe)
    except RuntimeError:
        return None


def first_line_plain(tmp: Path) -> float:
    marker = tmp / "plain.marker"
    marker.unlink(missing_ok=True)
    script = tmp / "cell.py"
    script.write_text(f"import time\nopen({str(marker)!r}, 'w').write(repr(time.time()))\n")
    t0 = time.time()
    subprocess.run([sys.executable, str(script)], check=True)
    return float(marker.read_text()) - t0


def first_line_submitted(client, src: Path, marker: Path) -> float:
    from aml_magics.core.types import RunSubmission

    marker.unlink(missing_ok=True)
    code = f"import time\nopen({str(marker)!r}, 'w').write(repr(time.time()))\n"
    t0 = time.time()
    run = client.runs.submit(RunSubmission(kind="cell", experiment="bench", source_dir=src, entry="__aml_cell__.py",
                                           code=code))
    deadline = time.time() + 60
    while not marker.exists() or not marker.read_text():
        if time.time() > deadline:
            raise RuntimeError(client.runs.get_logs(run.id))
        time.sleep(0.002)
    first = float(marker.read_text())
    client.runs.wait(run.id, timeout=60)
    return first - t0


def log_throughput(client, n: int, batched: bool) -> float:
    run = client.runs.start_logging("bench-log")
    run.log("warmup", 0.0)
    run.flush()
    values = [float(i) for i in range(n)]
    t = time.perf_counter()
    if batched:
        for i in range(0, n, 1000):
            run.log_list("x", values[i:i + 1000])
    else:
        log = run.log
        for v in values:
            log("x", v)
    run.flush()
    elapsed = time.perf_counter() - t
    run.complete()
    assert len(client.runs.get_metrics(run.id, "x")["x"]) == n
    return n / elapsed


def sqlite_executemany(tmp: Path, n: int) -> float:
    """The anchor: rows already built, one executemany in one transaction, same table and index."""
    db = tmp / f"anchor-{time.time_ns()}.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # one row per point, indexed for per-series reads: what a plain metrics table looks like
    conn.execute("CREATE TABLE metric_points(key_id INTEGER NOT NULL, step INTEGER NOT NULL, ts REAL NOT NULL, value REAL)")
    conn.execute("CREATE INDEX metric_points_by_key ON metric_points(key_id)")
    now = time.time()
    rows = [(1, i, now, float(i)) for i in range(n)]
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO metric_points(key_id, step, ts, value) VALUES(?,?,?,?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    conn.close()
    return n / elapsed


MLFLOW_CODE = """
import json, sys, time
import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
db, n = sys.argv[1], int(sys.argv[2])
mlflow.set_tracking_uri("sqlite:///" + db)
c = MlflowClient()
run = c.create_run(c.create_experiment("bench"))
now = int(time.time() * 1000)
metrics = [Metric("x", float(i), now, i) for i in range(n)]
t = time.perf_counter()
for i in range(0, n, 1000):
    c.log_batch(run.info.run_id, metrics=metrics[i:i + 1000])
batch = n / (time.perf_counter() - t)
single_n = 200
t = time.perf_counter()
for i in range(single_n):
    c.log_metric(run.info.run_id, "y", float(i), step=i)
single = single_n / (time.perf_counter() - t)
print(json.dumps({"batch": batch, "single": single}))
"""


def mlflow_python() -> str | None:
    """MLflow is heavy (~850 MB): use $AML_MAGICS_BENCH_MLFLOW_PYTHON (a venv with mlflow) or this one."""
    for exe in (os.environ.get("AML_MAGICS_BENCH_MLFLOW_PYTHON"), sys.executable):
        if exe and subprocess.run([exe, "-c", "import mlflow"], capture_output=True).returncode == 0:
            return exe
    return None


def mlflow_logging(tmp: Path, n: int) -> dict | None:
    exe = mlflow_python()
    if exe is None:
        return None
    out = subprocess.run([exe, "-c", MLFLOW_CODE, str(tmp / f"mlflow-{time.time_ns()}.db"), str(n)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        print("MLflow anchor failed:", out.stderr[-500:], file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args(__doc__)
    repeats = 3 if args.quick else 7
    n_points = 50_000 if args.quick else 200_000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["AML_MAGICS_WORKSPACE"] = str(tmp / "ws")
        from aml_magics.core.client import Client

        client = Client.shared()
        src = tmp / "src"
        src.mkdir()
        (src / "helper.py").write_text("x = 1\n")

        load_ext = median_of(lambda: load_ext_seconds(tmp), repeats)
        azure_ai_ml = import_seconds("azure.ai.ml")
        exe = mlflow_python()
        mlflow_import = import_seconds("mlflow", exe) if exe else None

        plain = statistics.median(first_line_plain(tmp) for _ in range(repeats + 1))
        ours = median_of(lambda: first_line_submitted(client, src, tmp / "ours.marker"), repeats)
        overhead = ours - plain

        single = median_of(lambda: log_throughput(client, n_points, batched=False), max(3, repeats // 2))
        batched = median_of(lambda: log_throughput(client, n_points, batched=True), max(3, repeats // 2))
        anchor = median_of(lambda: sqlite_executemany(tmp, n_points), max(3, repeats // 2))
        mlflow = mlflow_logging(tmp, min(n_points, 20_000)) or {}
        mlflow_batch, mlflow_single = mlflow.get("batch"), mlflow.get("single")

    fmt = lambda v, unit: "not installed" if v is None else f"{v:,.3f} {unit}" if unit == "s" else f"{v:,.0f} {unit}"
    rows = [
        ("%load_ext aml_magics (+ %aml), fresh process", fmt(load_ext, "s"),
         f"import azure.ai.ml {fmt(azure_ai_ml, 's')}; import mlflow {fmt(mlflow_import, 's')}",
         ratio(load_ext, azure_ai_ml) if azure_ai_ml else "n/a", "<= 0.30 s"),
        ("cell submit -> first line executing", fmt(ours, "s"), f"python cell.py {fmt(plain, 's')}",
         f"+{overhead:.3f} s", "<= +0.25 s"),
        ("run.log single calls (+flush)", fmt(single, "pts/s"), f"sqlite executemany {fmt(anchor, 'pts/s')}",
         ratio(single, anchor), ">= 0.8x"),
        ("run.log_list batches of 1000 (+flush)", fmt(batched, "pts/s"), f"sqlite executemany {fmt(anchor, 'pts/s')}",
         ratio(batched, anchor), ">= 0.8x"),
        ("MLflow log_batch, SQLite store (ours: log_list)", fmt(mlflow_batch, "pts/s"), "-",
         ratio(batched, mlflow_batch), "-"),
        ("MLflow log_metric, SQLite store (ours: log)", fmt(mlflow_single, "pts/s"), "-",
         ratio(single, mlflow_single), "-"),
    ]
    print_table(f"bench/core.py ({'quick' if args.quick else 'full'}: {n_points:,} points, {repeats} repeats)", rows)
    write_json("core", {
        "load_ext_s": round(load_ext, 4),
        "submit_overhead_s": round(overhead, 4),
        "log_points_per_s_batched": round(batched),
        "log_points_per_s_single": round(single),
        "sqlite_executemany_points_per_s": round(anchor),
        "mlflow_log_batch_points_per_s": None if mlflow_batch is None else round(mlflow_batch),
        "mlflow_log_metric_points_per_s": None if mlflow_single is None else round(mlflow_single),
        "anchors": {"import_azure_ai_ml_s": azure_ai_ml, "import_mlflow_s": mlflow_import,
                    "python_cell_first_line_s": round(plain, 4), "submitted_first_line_s": round(ours, 4)},
    }, args.json)


if __name__ == "__main__":
    main()
