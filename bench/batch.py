"""Batch scoring benchmark: rows per second over files, against one process calling model.predict and against
posting the rows to a local scoring service; and what a kill at 50 % costs on resume.

    python bench/batch.py [--quick] [--json PATH]

Data: 1,000,000 rows (--quick: 100,000) of digits features (the 1,797 images tiled, float32) in .npy files of
10,000 rows, uploaded to the datastore. Model: a scikit-learn RandomForest (100 trees, one thread per predict).
- ours: `client.batch.submit(model, datastore folder, parallel=cores)` with the default scorer, wall time from
  submit to Completed (run start, worker start, scoring, the ordered output of one line per row);
- single process: one Python process, already warm, loading each file and calling model.predict (the anchor of
  the target: ours ≥ 0.8 × cores × that rate);
- real-time service: the same rows POSTed in requests of 1,000 rows to a local scoring service of the model
  (sequentially, as a loop in a notebook would; measured on a slice and stated as rows/s).
batch_resume_waste: a batch run whose scorer sleeps per mini-batch is killed (SIGKILL, the run's process group)
when half of its mini-batches are done, then resumed; the figure is the number of mini-batches finished before the
kill that were scored again (target 0), checked against the scorer's own call log.
steady_rows_per_s leaves the start (run, workers, imports, model load) out: mini-batches done between the first and
the last progress report of the run. parallel_ceiling_rows_per_s: `cores` forked processes calling predict on their
share of the files at once (model loaded, nothing written) — what this machine gives parallel predict at all.
JSON keys: rows, cores, batch_rows_per_s, single_process_rows_per_s, service_rows_per_s, vs_single_process,
steady_rows_per_s, steady_vs_single_process, parallel_ceiling_rows_per_s, ceiling_vs_single_process, steady_vs_ceiling,
vs_cores_x_single, vs_service, batch_resume_waste, resume_missing_or_doubled.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_args, print_table, scratch, write_json  # noqa: E402

FILE_ROWS = 10_000

SLOW_SCORE = '''
import os, time
def init():
    pass
def run(mini_batch):
    with open(os.environ["BENCH_CALLS"], "a") as f:
        f.write(",".join(os.path.basename(p) for p in mini_batch) + "\\n")
    time.sleep(0.1)
    return [os.path.basename(p) for p in mini_batch]
'''


def make_data(rows: int, folder: Path):
    import numpy as np
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    reps = -(-rows // len(X))
    data = np.tile(X.astype("float32"), (reps, 1))[:rows]
    folder.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, rows, FILE_ROWS)):
        np.save(folder / f"part_{k:05d}.npy", data[start:start + FILE_ROWS])
    return X, y


def single_process(model, folder: Path) -> float:
    import numpy as np

    files = sorted(folder.glob("*.npy"))
    model.predict(np.load(files[0])[:100])  # warm
    t = time.perf_counter()
    n = 0
    for f in files:
        x = np.load(f)
        model.predict(x)
        n += len(x)
    return n / (time.perf_counter() - t)


_CEILING_MODEL = None


def _predict_files(files: list) -> int:
    import numpy as np

    n = 0
    for f in files:
        x = np.load(f)
        _CEILING_MODEL.predict(x)
        n += len(x)
    return n


def parallel_ceiling(model, folder: Path, cores: int) -> float:
    """What this machine gives ``cores`` processes calling predict at once, each on its share of the files
    (forked, model already loaded, nothing written): the most any batch engine could reach here."""
    import multiprocessing

    global _CEILING_MODEL
    _CEILING_MODEL = model
    files = sorted(str(f) for f in folder.glob("*.npy"))
    shares = [files[i::cores] for i in range(cores)]
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        pool.map(_predict_files, [[f[0]] for f in shares if f])  # warm
        t = time.perf_counter()
        n = sum(pool.map(_predict_files, shares))
        return n / (time.perf_counter() - t)


def service_rate(client, folder: Path, rows: int) -> float:
    import numpy as np
    import requests

    svc = client.deployments.create("bench-batch", "forest")
    key = svc.get_keys()[0]
    x = np.load(sorted(folder.glob("*.npy"))[0])[:rows]
    session = requests.Session()
    chunks = [x[i:i + 1000].tolist() for i in range(0, len(x), 1000)]
    body0 = json.dumps({"data": chunks[0]})
    session.post(svc.scoring_uri, data=body0, headers={"Authorization": f"Bearer {key}"}).raise_for_status()
    t = time.perf_counter()
    for chunk in chunks:
        r = session.post(svc.scoring_uri, data=json.dumps({"data": chunk}), headers={"Authorization": f"Bearer {key}"})
        r.raise_for_status()
    rate = len(x) / (time.perf_counter() - t)
    client.deployments.delete("bench-batch")
    return rate


def resume_waste(client, tmp: Path) -> tuple[int, int]:
    """(mini-batches finished before the kill and scored again, output lines missing or doubled)."""
    import numpy as np

    files = tmp / "resume-files"
    files.mkdir()
    for i in range(40):
        np.save(files / f"f{i:03d}.npy", np.zeros(3))
    client.datastores.upload(files, "bench/resume")
    src = tmp / "resume-src"
    src.mkdir()
    (src / "slow_score.py").write_text(SLOW_SCORE)
    calls = tmp / "calls.txt"
    os.environ["BENCH_CALLS"] = str(calls)
    run = client.batch.submit(None, "datastore:bench/resume", score="slow_score.py", mini_batch=2, parallel=2,
                              source_dir=src, experiment="bench-batch")
    parts = Path(client.backend.path) / "runs" / run.id / "snapshot" / ".batch" / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("*.part")) if parts.is_dir() else []) < 10:
        time.sleep(0.02)
    row = client.backend.store.get_run(run.id)
    os.killpg(row["user_pid"], signal.SIGKILL)
    client.runs.wait(run.id, timeout=60)
    finished = {int(p.stem) for p in parts.glob("*.part")}
    before = len(calls.read_text().splitlines())
    client.runs.resume(run.id)
    info = client.runs.wait(run.id, timeout=120)
    if info.status != "Completed":
        raise SystemExit(f"resumed batch run ended {info.status}: {info.error}")
    batches = [",".join(f"f{i:03d}.npy" for i in range(k * 2, k * 2 + 2)) for k in range(20)]
    again = [batches.index(line) for line in calls.read_text().splitlines()[before:]]
    waste = sum(1 for k in again if k in finished)
    lines = Path(client.runs.local_file(run.id, "outputs/parallel_run_step.txt")).read_text().split()
    wrong = sum(1 for a, b in zip(lines, [f"f{i:03d}.npy" for i in range(40)]) if a != b) + abs(len(lines) - 40)
    return waste, wrong


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rows = 100_000 if args.quick else 1_000_000
    cores = os.cpu_count() or 1
    os.environ.setdefault("AML_MAGICS_WORKSPACE", scratch("bench-batch-ws-"))
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    from aml_magics.core.client import Client

    client = Client()
    tmp = Path(scratch("bench-batch-"))
    X, y = make_data(rows, tmp / "rows")
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    joblib.dump(model, tmp / "forest.pkl")
    client.models.register("forest", str(tmp / "forest.pkl"))
    client.datastores.upload(tmp / "rows", "bench/rows")
    single = single_process(model, tmp / "rows")
    ceiling = parallel_ceiling(model, tmp / "rows", cores)
    (tmp / "src").mkdir()
    t = time.time()
    run = client.batch.submit("forest", "datastore:bench/rows", mini_batch=1, parallel=cores, experiment="bench-batch",
                              source_dir=tmp / "src")
    info = client.runs.wait(run.id)
    if info.status != "Completed":
        raise SystemExit(f"batch run ended {info.status}: {info.error}\n{client.runs.get_logs(run.id)}")
    ours = rows / (info.ended - t)
    # steady state: from the first progress report with mini-batches done to the last (worker start left out)
    points = [(stamp, value) for _, stamp, value in client.runs.metric_series(run.id, "mini_batches_done")[0]]
    started = [(s, v) for s, v in points if v > 0]
    steady = ((started[-1][1] - started[0][1]) * FILE_ROWS / (started[-1][0] - started[0][0])
              if len(started) >= 2 and started[-1][0] > started[0][0] else None)
    out = Path(client.runs.local_file(run.id, "outputs/parallel_run_step.txt"))
    with open(out) as f:
        count = sum(1 for _ in f)
    assert count == rows, f"the output has {count} lines for {rows} rows"
    service = service_rate(client, tmp / "rows", 5_000 if args.quick else 20_000)
    waste, wrong = resume_waste(client, tmp)
    figures = {"rows": rows, "cores": cores, "batch_rows_per_s": ours, "single_process_rows_per_s": single,
               "service_rows_per_s": service, "vs_single_process": ours / single,
               "steady_rows_per_s": steady, "steady_vs_single_process": steady / single if steady else None,
               "parallel_ceiling_rows_per_s": ceiling, "ceiling_vs_single_process": ceiling / single,
               "steady_vs_ceiling": steady / ceiling if steady else None,
               "vs_cores_x_single": ours / (cores * single), "vs_service": ours / service,
               "batch_resume_waste": waste, "resume_missing_or_doubled": wrong}
    print_table(f"Batch scoring: {rows:,} rows in {rows // FILE_ROWS} files, RandomForest(100), --parallel {cores}", [
        ("rows/s vs one process calling predict", f"{ours:,.0f}", f"{single:,.0f}", f"{ours / single:.2f}x",
         f"≥ {0.8 * cores:.1f}x"),
        ("steady rows/s (workers started) vs one process", f"{steady:,.0f}" if steady else "n/a", f"{single:,.0f}",
         f"{steady / single:.2f}x" if steady else "n/a", f"≥ {0.8 * cores:.1f}x"),
        (f"the machine's ceiling: {cores} forked processes calling predict", f"{ceiling:,.0f}", f"{single:,.0f}",
         f"{ceiling / single:.2f}x", ""),
        ("steady rows/s vs that ceiling", f"{steady:,.0f}" if steady else "n/a", f"{ceiling:,.0f}",
         f"{steady / ceiling:.2f}x" if steady else "n/a", ""),
        ("rows/s vs POSTing to a scoring service", f"{ours:,.0f}", f"{service:,.0f}", f"{ours / service:.1f}x", ""),
        ("mini-batches scored twice after a kill at 50 %", str(waste), "", "", "0"),
        ("output lines missing or doubled after resume", str(wrong), "", "", "0"),
    ])
    write_json("batch", figures, args.json)


if __name__ == "__main__":
    main()
