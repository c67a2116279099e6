"""Pipeline benchmark: what a pipeline adds per step, and how fast an unchanged pipeline is reused.

    python bench/pipeline.py [--quick] [--json PATH]

A chain of N no-op script steps (each reads the previous step's output folder and writes one small file) runs
as a pipeline with --no-reuse; the anchor runs the same scripts back to back as plain `python step.py` processes
with the same folders. pipeline_overhead_per_step_s = (pipeline wall − back-to-back wall) / N. Then the same
pipeline runs again unchanged: reuse_check_s is its whole wall time, submit to Completed, with every step reused.
JSON keys: steps, pipeline_s, back_to_back_s, pipeline_overhead_per_step_s, reuse_check_s, reused_steps.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_args, print_table, scratch, write_json  # noqa: E402

STEP = """import os, sys
src, out = sys.argv[1], sys.argv[2]
n = 0
if src != "-":
    n = int(open(os.path.join(src, "n.txt")).read())
open(os.path.join(out, "n.txt"), "w").write(str(n + 1))
"""


def chain(n: int):
    from aml_magics.core.pipelines import PipelineSpec, PipelineStep, binding

    steps = []
    for i in range(n):
        args = ["-" if i == 0 else "${{inputs.prev}}", "${{outputs.out}}"]
        inputs = {} if i == 0 else {"prev": binding(f"s{i - 1}", "out")}
        steps.append(PipelineStep(f"s{i}", "script", "step.py", args=args, inputs=inputs, outputs=["out"]))
    return PipelineSpec(steps)


def timed_pipeline(client, spec, folder: Path, reuse: bool) -> tuple[float, object]:
    from dataclasses import replace

    t = time.time()
    run = client.pipelines.submit(replace(spec, reuse=reuse), "bench-pipeline", source_dir=folder)
    info = client.runs.wait(run.id)
    if info.status != "Completed":
        raise SystemExit(f"pipeline {run.id} ended {info.status}: {info.error}\n{client.runs.get_logs(run.id)}")
    return info.ended - t, info


def back_to_back(n: int, folder: Path) -> float:
    outs = [Path(scratch("bench-b2b-")) for _ in range(n)]
    t = time.perf_counter()
    for i in range(n):
        subprocess.run([sys.executable, str(folder / "step.py"), "-" if i == 0 else str(outs[i - 1]), str(outs[i])],
                       check=True, cwd=folder)
    wall = time.perf_counter() - t
    assert (outs[-1] / "n.txt").read_text() == str(n)
    return wall


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n = 10
    repeats = 1 if args.quick else 3
    os.environ.setdefault("AML_MAGICS_WORKSPACE", scratch("bench-pipeline-ws-"))
    from aml_magics.core.client import Client

    client = Client()
    folder = Path(scratch("bench-pipeline-src-"))
    (folder / "step.py").write_text(STEP)
    spec = chain(n)
    timed_pipeline(client, chain(2), folder, False)  # warm imports and the page cache
    walls, anchors, reuses, reused = [], [], [], 0
    for _ in range(repeats):
        anchors.append(back_to_back(n, folder))
        wall, info = timed_pipeline(client, spec, folder, False)
        walls.append(wall)
        last = client.pipelines.steps(info.run_id)[f"s{n - 1}"]
        out = Path(client.datastores.resolve_input(__import__("json").loads(last.tags["pipeline.outputs"])["out"]))
        assert (out / "n.txt").read_text() == str(n), "the chain passed its data along"
        rwall, rinfo = timed_pipeline(client, spec, folder, True)
        reuses.append(rwall)
        reused = sum(1 for s in client.pipelines.steps(rinfo.run_id).values() if s.tags.get("pipeline.reused_from"))
    wall, anchor, reuse = min(walls), min(anchors), min(reuses)
    per_step = (wall - anchor) / n
    figures = {"steps": n, "pipeline_s": wall, "back_to_back_s": anchor, "pipeline_overhead_per_step_s": per_step,
               "reuse_check_s": reuse, "reused_steps": reused, "cores": os.cpu_count()}
    print_table(f"Pipeline: a chain of {n} no-op script steps (best of {repeats})", [
        ("pipeline (--no-reuse) vs back to back", f"{wall:.2f} s", f"{anchor:.2f} s", f"{wall / anchor:.2f}x", ""),
        ("overhead per step", f"{per_step * 1000:.0f} ms", "", "", "≤ 150 ms"),
        (f"unchanged pipeline, {reused}/{n} steps reused", f"{reuse:.2f} s", f"{anchor:.2f} s",
         f"{reuse / anchor:.2f}x", "≤ 0.5 s"),
    ])
    write_json("pipeline", figures, args.json)


if __name__ == "__main__":
    main()
