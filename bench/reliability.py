"""Reliability figures: the load held, faults survived, bad inputs tried and data lost (must be 0).

    python bench/reliability.py [--quick] [--json PATH]

1. load: 16 run processes each logging N points (single run.log calls) while a dashboard-style poller
   and the runs list read; sustained points/s = all points / wall time; every point checked once.
2. faults: seeded SIGKILLs of logging runs (run process, or host + run process), of registrations
   mid-copy, of a scoring server and of a sweep controller; a fault is survived when `doctor` is clean
   afterwards (a second pass finds nothing to repair) and nothing logged before the last flush interval
   (nor any committed model version) is missing.
3. bad inputs: seeded random requests (malformed JSON, deep nesting, huge numbers, NaN, binary, wrong
   shapes, bad keys, odd paths) to a scoring service; each must get a JSON 4xx/5xx and the service stay up.

JSON keys: sustained_points_per_s, faults_survived, faults_tried, bad_inputs_tried, bad_inputs_mishandled,
points_lost, records_lost.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_args, print_table, write_json  # noqa: E402

WRITER = "import sys\nfrom aml_magics import Run\nrun = Run.get_context()\nfor i in range(int(sys.argv[1])):\n    run.log('m', float(i))\n"
LOGGER = ("import time\nfrom aml_magics import Run\nrun = Run.get_context()\ni = 0\nwhile True:\n"
          "    run.log('tick', float(i), step=i)\n    i += 1\n    time.sleep(0.001)\n")
REGISTER = textwrap.dedent("""
    import os, sys
    from aml_magics.core.client import Client
    client = Client(sys.argv[1])
    while True:
        client.models.register("kill-me", sys.argv[2])
""")


def wait(pred, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise SystemExit("timed out")


def load(client, src: Path, points: int) -> tuple[float, int]:
    from aml_magics.core.types import RunSubmission

    (src / "writer.py").write_text(WRITER)
    client.computes.create("load", max_concurrent=16)
    stop = threading.Event()

    def reader():
        cursors = {}
        while not stop.is_set():
            for r in client.runs.list(experiment="load", limit=50).infos:
                client.runs.version(r.run_id)
                _, cursors[r.run_id] = client.runs.metric_series(r.run_id, "m", cursors.get(r.run_id, 0))

    t = threading.Thread(target=reader)
    t.start()
    t0 = time.time()
    runs = [client.runs.submit(RunSubmission(kind="script", experiment="load", source_dir=src, entry="writer.py",
                                             compute="load", args=[str(points)])) for _ in range(16)]
    infos = [client.runs.wait(r.id, timeout=600) for r in runs]
    wall = max(i.ended for i in infos) - t0
    stop.set()
    t.join()
    lost = 0
    for info in infos:
        steps = sorted(s for s, _, _ in client.runs.metric_series(info.run_id, "m")[0])
        lost += points - len(set(steps)) + (len(steps) - len(set(steps)))  # missing + duplicated
    return 16 * points / wall, lost


def doctor_clean(client) -> bool:
    first = client.doctor()
    second = client.doctor()
    return first.healthy and second.healthy and all(o == "ok" for _, o, _ in second.checks)


def faults(client, src: Path, rounds: int, seed: int) -> tuple[int, int, int, int]:
    """(survived, tried, points lost before the last flush interval, model records lost)."""
    from aml_magics.core.types import RunSubmission
    from aml_magics.runtime.tracking import FLUSH_INTERVAL

    rng = random.Random(seed)
    (src / "logger.py").write_text(LOGGER)
    survived = tried = points_lost = records_lost = 0
    for i in range(rounds):
        kind = ["run", "run+host", "registration"][i % 3]
        tried += 1
        if kind == "registration":
            big = src.parent / "model.bin"
            big.write_bytes(os.urandom(20_000_000))
            proc = subprocess.Popen([sys.executable, "-c", REGISTER, str(client.backend.path), str(big)])
            time.sleep(rng.uniform(0.3, 1.5))
            proc.kill()
            proc.wait()
            ok = doctor_clean(client)
            versions = client.backend.store.query("SELECT path, entry FROM models WHERE name='kill-me'")
            missing = sum(1 for v in versions if not (Path(v["path"]) / v["entry"]).is_file())
            records_lost += missing
            survived += ok and missing == 0
            continue
        run = client.runs.submit(RunSubmission(kind="script", experiment="faults", source_dir=src, entry="logger.py"))
        wait(lambda: client.runs.get(run.id).status == "Running")
        time.sleep(rng.uniform(0.3, 1.5))
        row = client.backend.store.get_run(run.id)
        if kind == "run+host":
            os.kill(row["host_pid"], signal.SIGKILL)
        killed = time.time()
        os.killpg(row["user_pid"], signal.SIGKILL)
        wait(lambda: client.runs.get(run.id).status == "Failed", timeout=30)
        series = client.runs.metric_series(run.id, "tick")[0]
        steps = [s for s, _, _ in series]
        hole = steps != list(range(len(steps)))
        late = not series or series[-1][1] < killed - FLUSH_INTERVAL - 0.3
        if hole or late:
            # what should have been there: every step logged until the last flush before the kill (1 per ms)
            points_lost += max(1, int((killed - FLUSH_INTERVAL - (series[-1][1] if series else killed)) * 1000))
        survived += doctor_clean(client) and not hole and not late
    return survived, tried, points_lost, records_lost


def bad_inputs(client, tmp: Path, n: int, seed: int) -> tuple[int, int]:
    import joblib
    import requests
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(seed)
    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(X[:300], y[:300]), tmp / "m.pkl")
    client.models.register("bench-fuzz", tmp / "m.pkl")
    svc = client.deployments.create("bench-fuzz", "bench-fuzz")
    key = svc.get_keys()[0]
    base = svc.scoring_uri.rsplit("/", 1)[0]
    session = requests.Session()

    def body():
        k = rng.randrange(9)
        if k == 0:
            return b"{" * rng.randrange(1, 5000)
        if k == 1:
            return json.dumps({"data": [[rng.random() for _ in range(rng.randrange(0, 90))]]}).encode()
        if k == 2:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        if k == 3:
            return b'{"data": [[' + b"9" * rng.randrange(1, 500) + b"]]}"
        if k == 4:
            return b'{"data": [[NaN, Infinity, -Infinity]]}'
        if k == 5:
            n = rng.randrange(1, 3000)
            return b'{"data": ' + b"[" * n + b"]" * n + b"}"
        if k == 6:
            return json.dumps({"data": "x" * rng.randrange(0, 10000)}).encode()
        if k == 7:
            return json.dumps({"method": rng.choice(["__init__", "predict_proba", "fit", ""]), "data": [[0] * 64]}).encode()
        return json.dumps({"data": X[rng.randrange(len(X))].tolist()}).encode()  # a good one now and then

    mishandled = 0
    for _ in range(n):
        path = rng.choice(["/score", "/score", "/score", "/../../aml.db", "/score/../x", "/swagger.json"])
        auth = rng.choice([f"Bearer {key}"] * 4 + ["Bearer wrong", "", f"Basic {key}"])
        r = session.post(base + path, data=body(), headers={"Authorization": auth} if auth else {}, timeout=30)
        try:
            payload = r.json()
            if "Traceback" in json.dumps(payload):
                mishandled += 1
        except ValueError:
            mishandled += 1
    if session.get(base + "/", timeout=5).text != "Healthy":
        mishandled += 1
    client.deployments.delete("bench-fuzz")
    return n, mishandled


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    points = 10_000 if args.quick else 50_000
    rounds = 6 if args.quick else 15
    requests_n = 1000 if args.quick else 10_000
    os.environ.setdefault("AML_MAGICS_WORKSPACE", tempfile.mkdtemp(prefix="bench-rel-ws-"))
    from aml_magics.core.client import Client

    client = Client()
    src = Path(tempfile.mkdtemp(prefix="bench-rel-src-"))
    rate, load_lost = load(client, src, points)
    survived, tried, fault_lost, records_lost = faults(client, src, rounds, seed=7)
    tried_inputs, mishandled = bad_inputs(client, src.parent, requests_n, seed=7)
    figures = {"sustained_points_per_s": rate, "faults_survived": survived, "faults_tried": tried,
               "bad_inputs_tried": tried_inputs, "bad_inputs_mishandled": mishandled,
               "points_lost": load_lost + fault_lost, "records_lost": records_lost}
    print_table("Reliability: load held, faults survived, bad inputs, data lost", [
        ("points/s sustained, 16 writers + 2 readers", f"{rate:,.0f}", f"{16 * points:,} points", "", "no loss"),
        ("faults survived (SIGKILL runs, hosts, registrations)", f"{survived}/{tried}", "", "", "all"),
        ("bad requests tried / mishandled", f"{tried_inputs:,} / {mishandled}", "", "", "0 mishandled"),
        ("points lost / records lost", f"{load_lost + fault_lost} / {records_lost}", "", "", "0 / 0"),
    ])
    write_json("reliability", figures, args.json)


if __name__ == "__main__":
    main()
