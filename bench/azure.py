"""Azure backend benchmark: what the client costs on top of Azure ML itself, with Microsoft's and MLflow's
own clients as anchors where they can run here (no live Azure: the ARM side is the contract fake on loopback,
the MLflow side a real `mlflow server`).

    python bench/azure.py [--quick] [--json PATH]

Figures (JSON keys):
- import_s: a fresh interpreter importing our azure backend (+ auth), best of N; anchor import_azure_ai_ml_s:
  `import azure.ai.ml` (Microsoft's v2 SDK) in $AML_MAGICS_AZURE_AI_ML_PYTHON, an interpreter that has it
  (python -m venv /tmp/aiml && /tmp/aiml/bin/pip install azure-ai-ml); "n/a" when not given.
- submit_cell_s: %%aml run of a cell with a 20-file folder on the fake (snapshot hash + startPendingUpload +
  blob PUTs + code version + job PUT), median; submit_requests: HTTP requests it made; anchor
  submit_floor_s: the same number of bare GETs to the fake (what the round trips alone cost).
- metric_history_s: reading a 20,000-point series through our MLflow REST client, median; anchor
  mlflow_client_s: `MlflowClient().get_metric_history` on the same run, in MLflow's own venv
  ($AML_MAGICS_MLFLOW_PYTHON, as the tests use).
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_args, print_table, ratio, write_json  # noqa: E402


def import_time(python: str, code: str, repeats: int) -> float | None:
    if not python or not Path(python).exists():
        return None
    best = None
    for _ in range(repeats):
        out = subprocess.run([python, "-c", f"import time; t = time.perf_counter(); {code}; "
                              "print(time.perf_counter() - t)"], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            return None
        value = float(out.stdout.strip().splitlines()[-1])
        best = value if best is None else min(best, value)
    return best


def start_mlflow(python: str, folder: Path) -> tuple[subprocess.Popen, str]:
    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                             "--default-artifact-root", str(folder / "art")], cwd=folder,
                            env=dict(os.environ, PATH=str(Path(python).parent) + os.pathsep + os.environ["PATH"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("mlflow server did not start")
        time.sleep(0.5)


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0])
    repeats = 3 if args.quick else 7
    figures: dict = {}

    figures["import_s"] = import_time(sys.executable, "import aml_magics.backends.azure.backend, "
                                      "aml_magics.backends.azure.auth", repeats)
    figures["import_azure_ai_ml_s"] = import_time(os.environ.get("AML_MAGICS_AZURE_AI_ML_PYTHON", ""),
                                                  "import azure.ai.ml", repeats)

    from tests.azure.contract import FakeArm
    from tests.azure.test_rest_contract import StaticToken

    from aml_magics.core.client import Client
    from aml_magics.core.types import RunSubmission

    fake = FakeArm().snapshots_here()  # Microsoft's example SAS points at contoso.com
    client = Client.connect("00000000-1111-2222-3333-444444444444", "bench-rg", "bench-ws",
                            credential=StaticToken(fake.token), base_url=fake.base_url)
    import requests

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(20):
            (folder / f"module_{i}.py").write_text(f"VALUE = {i}\n" * 50)
        times, counts = [], []
        for i in range(repeats + 1):
            before = len(fake.calls) + fake.blob_requests
            t = time.perf_counter()
            client.runs.submit(RunSubmission(kind="cell", experiment="bench", source_dir=folder, entry="c.py",
                                             code=f"print({i})\n", compute="cpu-cluster"))
            if i:  # the first one warms connections and imports
                times.append(time.perf_counter() - t)
            counts.append(len(fake.calls) + fake.blob_requests - before)
        figures["submit_cell_s"] = statistics.median(times)
        figures["submit_requests"] = counts[-1]
        session = requests.Session()
        path = f"{fake.base_url}/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/bench-rg/" \
               "providers/Microsoft.MachineLearningServices/workspaces/bench-ws?api-version=2024-10-01"
        floors = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(counts[-1]):
                session.get(path, headers={"Authorization": f"Bearer {fake.token}"})
            floors.append(time.perf_counter() - t)
        figures["submit_floor_s"] = statistics.median(floors)
    fake.close()

    mlflow_python = os.environ.get("AML_MAGICS_MLFLOW_PYTHON") or "/tmp/mlflow-venv/bin/python"
    figures["metric_history_s"] = figures["mlflow_client_s"] = None
    if Path(mlflow_python).exists():
        from aml_magics.backends.azure.mlflow_rest import MlflowRest

        with tempfile.TemporaryDirectory() as tmp:
            proc, base = start_mlflow(mlflow_python, Path(tmp))
            try:
                ml = MlflowRest(base)
                run_id = ml.create_run("bench")
                n = 2_000 if args.quick else 20_000
                ml.log_batch(run_id, [("loss", 1.0 / (i + 1), i, time.time()) for i in range(n)])
                reads = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    assert len(ml.metric_history(run_id, "loss")) == n
                    reads.append(time.perf_counter() - t)
                figures["metric_history_s"] = statistics.median(reads)
                code = ("import statistics, sys, time\nfrom mlflow.tracking import MlflowClient\n"
                        f"c = MlflowClient({base!r})\nc.get_metric_history({run_id!r}, 'loss')\nts = []\n"
                        f"for _ in range({repeats}):\n    t = time.perf_counter()\n"
                        f"    assert len(c.get_metric_history({run_id!r}, 'loss')) == {n}\n"
                        "    ts.append(time.perf_counter() - t)\nprint(statistics.median(ts))\n")
                out = subprocess.run([mlflow_python, "-c", code], capture_output=True, text=True, timeout=600)
                if out.returncode == 0:
                    figures["mlflow_client_s"] = float(out.stdout.strip().splitlines()[-1])
                figures["metric_points"] = n
            finally:
                os.killpg(proc.pid, 15)
                proc.wait(20)

    def s(v, digits=3):
        return "n/a" if v is None else f"{v:.{digits}f} s"

    rows = [
        ("import the azure backend (fresh process)", s(figures["import_s"]),
         f"import azure.ai.ml {s(figures['import_azure_ai_ml_s'])}", ratio(figures["import_s"],
                                                                            figures["import_azure_ai_ml_s"]), "≪ 1x"),
        (f"submit a cell job ({figures['submit_requests']} requests)", s(figures["submit_cell_s"]),
         f"{figures['submit_requests']} bare round trips {s(figures['submit_floor_s'])}",
         ratio(figures["submit_cell_s"], figures["submit_floor_s"]), "close to 1x"),
        (f"read a {figures.get('metric_points', 0):,}-point metric series", s(figures["metric_history_s"]),
         f"MlflowClient {s(figures['mlflow_client_s'])}", ratio(figures["metric_history_s"], figures["mlflow_client_s"]),
         "≤ 1x"),
    ]
    print_table("Azure backend (contract fake + real MLflow server on loopback)", rows)
    write_json("azure", figures, args.json)


if __name__ == "__main__":
    main()
