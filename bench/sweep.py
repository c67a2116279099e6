"""Sweep benchmark: throughput with --parallel 2 vs sequential, and the orchestration overhead per trial.

    python bench/sweep.py [--quick] [--json PATH]

Each trial burns a fixed amount of CPU (a busy loop of ~WORK_S seconds, measured inside the trial and
logged). per_trial_overhead_s = (sequential sweep wall time − Σ trial work) / trials: everything the
sweep adds around the user's code (controller, submission, snapshot, process start, bookkeeping).
JSON keys: parallel_speedup, per_trial_overhead_s, sequential_s, parallel_s, trials.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, scratch, write_json  # noqa: E402

WORK_S = 1.0
CELL = f"""
import time
from aml_magics import Run
x = uniform(0, 1)
t = time.process_time()
while time.process_time() - t < {WORK_S}:
    pass
Run.get_context().log("work_s", time.process_time() - t)
Run.get_context().log("x", x)
"""


def run_sweep(client, folder: Path, trials: int, parallel: int) -> tuple[float, float]:
    from aml_magics.core.types import RunSubmission
    from aml_magics.sweep.settings import sweep_submission
    from aml_magics.sweep.space import parse_cell

    space, spans = parse_cell(CELL)
    trial = RunSubmission(kind="cell", experiment="bench-sweep", source_dir=folder, entry="__cell__.py", code=CELL,
                          compute="duo")
    sub = sweep_submission(trial, space, primary_metric="x", max_trials=trials, parallel=parallel, seed=0, spans=spans)
    t = time.time()
    run = client.runs.submit(sub)
    info = client.runs.wait(run.id)
    wall = info.ended - t  # from the store's end time: not rounded up to our wait loop's polling
    if info.status != "Completed":
        raise SystemExit(f"sweep {run.id} ended {info.status}: {info.error}")
    work = sum(client.runs.get_metrics(c.run_id)["work_s"] for c in client.runs.children(run.id).infos)
    return wall, work


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    trials = 4 if args.quick else 10
    os.environ.setdefault("AML_MAGICS_WORKSPACE", scratch("bench-sweep-ws-"))
    from aml_magics.core.client import Client

    client = Client()
    client.computes.create("duo", max_concurrent=2)
    folder = Path(scratch("bench-sweep-src-"))
    run_sweep(client, folder, 2, 1)  # warm the page cache and imports
    seq_wall, seq_work = run_sweep(client, folder, trials, 1)
    par_wall, _ = run_sweep(client, folder, trials, 2)
    figures = {"trials": trials, "sequential_s": seq_wall, "parallel_s": par_wall,
               "parallel_speedup": seq_wall / par_wall, "per_trial_overhead_s": (seq_wall - seq_work) / trials,
               "cores": os.cpu_count()}
    print_table(f"Sweep: {trials} trials of {WORK_S:g} s CPU each, compute limit 2", [
        ("--parallel 2 vs sequential", f"{par_wall:.2f} s", f"{seq_wall:.2f} s", f"{figures['parallel_speedup']:.2f}x",
         "≥ 1.8x"),
        ("orchestration overhead per trial", f"{figures['per_trial_overhead_s'] * 1000:.0f} ms", "", "", "≤ 150 ms"),
    ])
    write_json("sweep", figures, args.json)


if __name__ == "__main__":
    main()
