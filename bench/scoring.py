"""Scoring benchmarks: throughput and latency at concurrency 8 (wrk), ours vs azureml-inference-server-http
(vs `mlflow models serve` when available), deploy → first 200, the model browser over 10,000 versions.

    python bench/scoring.py [--quick] [--json PATH]

JSON keys: ours_rps, ours_p99_ms, azmlinfsrv_rps, azmlinfsrv_p99_ms, mlflow_rps, mlflow_p99_ms,
deploy_to_first_200_s, model_browser_10k_s, ours_cpu_us_per_request, azmlinfsrv_cpu_us_per_request,
mlflow_cpu_us_per_request (CPU time of the server's processes per request under that load: what each server costs,
whatever share of the cores wrk takes). Each anchor serves one worker, as ours does; `mlflow models serve` runs from
MLflow's own virtualenv (``AML_MAGICS_MLFLOW_PYTHON``, which the test command installs) and is left out without it.  Needs
`wrk` (Debian package) for the load; the model is a LogisticRegression on load_digits, one row per request.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_of, parse_args, print_table, ratio, write_json  # noqa: E402

SCORE = textwrap.dedent(
    """
    import json, os
    import joblib
    import numpy as np

    def init():
        global model
        model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))

    def run(raw_data):
        return model.predict(np.asarray(json.loads(raw_data)["data"])).tolist()
    """
)

WRAPPER = textwrap.dedent(
    """
    import os, sys
    os.environ["AZUREML_ENTRY_SCRIPT"] = sys.argv[1]
    os.environ["AZUREML_MODEL_DIR"] = sys.argv[2]
    from azureml_inference_server_http import amlserver_linux
    amlserver_linux.run("127.0.0.1", int(sys.argv[3]), 1)
    """
)


# `mlflow models serve`'s model: the same LogisticRegression on load_digits, trained and saved by MLflow's own
# virtualenv (its scikit-learn may differ from ours, so our pickle is not handed over)
MLFLOW_MODEL = textwrap.dedent(
    """
    import sys
    import mlflow.sklearn
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    mlflow.sklearn.save_model(LogisticRegression(max_iter=1000).fit(X, y), sys.argv[1])
    """
)


def register_digits(client, tmp: Path) -> tuple[Path, str]:
    """A LogisticRegression on load_digits registered as "digits", SCORE as tmp/score.py: (model folder, a body)."""
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    model_dir = tmp / "model"
    model_dir.mkdir()
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), model_dir / "model.pkl")
    (tmp / "score.py").write_text(SCORE)
    client.models.register("digits", model_dir / "model.pkl")
    return model_dir, json.dumps({"data": X[:1].tolist()})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes and their children."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            top = psutil.Process(pid)
            procs = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


def service_pids(name: str) -> list[int]:
    """The server processes of one of our deployments (their command lines name its folder)."""
    import psutil

    marker = f"deployments{os.sep}{name}"
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and "aml_magics.scoring.server" in p.info["cmdline"]
            and any(marker in part for part in p.info["cmdline"])]


def wrk_cpu(url: str, body: str, key: str | None, seconds: int, pids: list[int]) -> tuple[float, float, float]:
    """``wrk`` and the CPU µs the processes ``pids`` spent per request meanwhile: (requests/s, p99 ms, µs)."""
    before = cpu_seconds(pids)
    rps, p99 = wrk(url, body, key, seconds)
    return rps, p99, (cpu_seconds(pids) - before) / max(1.0, rps * seconds) * 1e6


def wrk(url: str, body: str, key: str | None, seconds: int, close: bool = False) -> tuple[float, float]:
    """(requests/s, p99 ms) at 8 connections (``close``: a new connection for every request); fails loudly on any
    non-2xx answer."""
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if close:
        headers += 'wrk.headers["Connection"] = "close"\n'
    if key:
        headers += f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    try:  # the script holds the service's key: it never outlives the call
        lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{headers}')
        out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(lua), url],
                             capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        lua.unlink(missing_ok=True)
    if "Non-2xx" in out:
        raise RuntimeError(out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return rps, p99


def mlflow_anchor(tmp: Path, rows: list, seconds: int) -> tuple[float, float, float] | None:
    """`mlflow models serve` (one uvicorn worker, MLflow's own virtualenv: ``AML_MAGICS_MLFLOW_PYTHON``) under the
    same load, the same row in MLflow's request format: (requests/s, p99 ms, CPU µs per request), or None without
    it."""
    python = os.environ.get("AML_MAGICS_MLFLOW_PYTHON")
    if not python or not Path(python).is_file():
        print("MLflow's virtualenv is not installed (AML_MAGICS_MLFLOW_PYTHON; scripts/test makes one): no anchor")
        return None
    model = tmp / "mlflow-model"
    made = subprocess.run([python, "-c", MLFLOW_MODEL, str(model)], capture_output=True, text=True, timeout=600)
    if made.returncode:
        raise RuntimeError(f"MLflow could not save the model:\n{made.stderr[-2000:]}")
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": (tmp / "mlruns").as_uri(),  # nothing written where it was started
           # it starts `uvicorn` by name: its virtualenv's, not ours (which cannot import mlflow)
           "PATH": str(Path(python).parent) + os.pathsep + os.environ.get("PATH", "")}
    log = tmp / "mlflow-serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(Path(python).with_name("mlflow")), "models", "serve", "-m", str(model),
                                 "-h", "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", "1"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=180, proc=proc, log=log)
        url, body = f"http://127.0.0.1:{port}/invocations", json.dumps({"inputs": rows})
        wrk(url, body, None, 1)  # warm
        return wrk_cpu(url, body, None, seconds, [proc.pid])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)


def wait_http(url: str, timeout: float = 90, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Wait for a 200 from `url`; if the server `proc` exits first or it times out, the error carries the tail of
    the server's `log`."""
    import requests

    def failed(why: str) -> RuntimeError:
        tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
        return RuntimeError(f"{url} {why}" + (f"; the end of its log ({log}):\n{tail}" if tail else ""))

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise failed(f"never answered: the server exited with code {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise failed(f"never answered in {timeout:g} s")


def main() -> None:
    args = parse_args(__doc__)
    seconds = 5 if args.quick else 15
    if shutil.which("wrk") is None:
        sys.exit("bench/scoring.py needs wrk: apt-get install wrk")
    import requests

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["AML_MAGICS_WORKSPACE"] = str(tmp / "ws")
        from aml_magics.core.client import Client

        client = Client.shared()
        model_dir, body = register_digits(client, tmp)

        def deploy_once() -> float:
            name = f"bench-{time.time_ns() % 10**8}"
            started = time.perf_counter()
            svc = client.deployments.create(name, "digits", score=tmp / "score.py")
            r = requests.post(svc.scoring_uri, data=body, headers={"Authorization": f"Bearer {svc.get_keys()[0]}"})
            elapsed = time.perf_counter() - started
            assert r.status_code == 200, r.text
            svc.delete()
            return elapsed

        deploy_s = median_of(deploy_once, 3 if args.quick else 5, warmup=1)
        svc = client.deployments.create("bench-load", "digits", score=tmp / "score.py")
        pids = service_pids("bench-load")
        wrk(svc.scoring_uri, body, svc.get_keys()[0], 1)  # warm
        ours_rps, ours_p99, ours_cpu = wrk_cpu(svc.scoring_uri, body, svc.get_keys()[0], seconds, pids)
        svc.delete()

        theirs_rps = theirs_p99 = theirs_cpu = None
        try:
            import azureml_inference_server_http  # noqa: F401

            (tmp / "wrapper.py").write_text(WRAPPER)
            port = free_port()
            proc = subprocess.Popen([sys.executable, str(tmp / "wrapper.py"), str(tmp / "score.py"), str(model_dir),
                                     str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True, cwd=tmp)  # (gunicorn puts its cwd first on sys.path:
            # from bench/, our azure.py hid the azure package it imports, and it never answered)
            try:
                wait_http(f"http://127.0.0.1:{port}/")
                wrk(f"http://127.0.0.1:{port}/score", body, None, 1)  # warm
                theirs_rps, theirs_p99, theirs_cpu = wrk_cpu(f"http://127.0.0.1:{port}/score", body, None, seconds,
                                                             [proc.pid])
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
        except ImportError:
            print("azureml-inference-server-http is not installed (pip install -e '.[test]'): no anchor")

        mlflow_figures = mlflow_anchor(tmp, json.loads(body)["data"], seconds)
        mlflow_rps, mlflow_p99, mlflow_cpu = mlflow_figures or (None, None, None)

        # the model browser over 10,000 versions (first page)
        n = 2_000 if args.quick else 10_000
        for i in range(n):
            with client.backend.store.write() as c:
                c.execute("INSERT INTO models(name, version, path, entry, created) VALUES(?,?,?,?,?)",
                          (f"m{i % 100}", i // 100 + 1, str(model_dir), "model.pkl", time.time()))
        from aml_magics.widgets.registry import ModelBrowser

        browser_s = median_of(lambda: _timed(lambda: ModelBrowser(client)), 3 if args.quick else 5)

    rows_out = [
        ("requests/s at concurrency 8", f"{ours_rps:,.0f}", f"azmlinfsrv {theirs_rps:,.0f}" if theirs_rps else "n/a",
         ratio(ours_rps, theirs_rps), ">= 2x"),
        ("p99 latency", f"{ours_p99:.1f} ms", f"azmlinfsrv {theirs_p99:.1f} ms" if theirs_p99 else "n/a",
         ratio(ours_p99, theirs_p99), "lower"),
        ("server CPU per request", f"{ours_cpu:.0f} µs", f"azmlinfsrv {theirs_cpu:.0f} µs" if theirs_cpu else "n/a",
         ratio(ours_cpu, theirs_cpu), "lower"),
        ("requests/s vs mlflow models serve", f"{ours_rps:,.0f}",
         f"mlflow {mlflow_rps:,.0f}" if mlflow_rps else "n/a", ratio(ours_rps, mlflow_rps), "higher"),
        ("p99 latency vs mlflow models serve", f"{ours_p99:.1f} ms",
         f"mlflow {mlflow_p99:.1f} ms" if mlflow_p99 else "n/a", ratio(ours_p99, mlflow_p99), "lower"),
        ("server CPU per request vs mlflow", f"{ours_cpu:.0f} µs",
         f"mlflow {mlflow_cpu:.0f} µs" if mlflow_cpu else "n/a", ratio(ours_cpu, mlflow_cpu), "lower"),
        ("deploy -> first 200", f"{deploy_s:.2f} s", "-", "-", "<= 3 s"),
        (f"model browser, {n:,} versions", f"{browser_s:.3f} s", "-", "-", "<= 0.5 s"),
    ]
    print_table(f"bench/scoring.py ({'quick' if args.quick else 'full'}, wrk {seconds}s, c=8)", rows_out)
    write_json("scoring", {
        "ours_rps": round(ours_rps), "ours_p99_ms": round(ours_p99, 2),
        "azmlinfsrv_rps": theirs_rps and round(theirs_rps), "azmlinfsrv_p99_ms": theirs_p99 and round(theirs_p99, 2),
        "mlflow_rps": mlflow_rps and round(mlflow_rps), "mlflow_p99_ms": mlflow_p99 and round(mlflow_p99, 2),
        "mlflow_cpu_us_per_request": mlflow_cpu and round(mlflow_cpu, 1),
        "deploy_to_first_200_s": round(deploy_s, 3), "model_browser_10k_s": round(browser_s, 4),
        "ours_cpu_us_per_request": round(ours_cpu, 1),
        "azmlinfsrv_cpu_us_per_request": theirs_cpu and round(theirs_cpu, 1),
    }, args.json)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
