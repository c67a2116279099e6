"""A real kernel: the run outlives it, and a new kernel sees the run finish."""
from __future__ import annotations

import os
import time

import pytest
from jupyter_client.manager import start_new_kernel

from tests.conftest import wait_until


def _execute(kc, code: str, timeout: float = 60) -> dict:
    """Run code in the kernel; return {'text': stdout + result text, 'error': ename or None}."""
    msg_id = kc.execute(code)
    text, error = [], None
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            text.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            error = f"{content['ename']}: {content['evalue']}"
        elif kind == "status" and content["execution_state"] == "idle":
            return {"text": "".join(text), "error": error}


@pytest.fixture
def kernel_env(workspace, project):
    env = dict(os.environ)
    env["AML_MAGICS_WORKSPACE"] = str(workspace)
    return env


def test_kernel_killed_mid_run_does_not_stop_the_run(kernel_env, project, client):
    km, kc = start_new_kernel(kernel_name="python3", env=kernel_env, cwd=str(project))
    try:
        out = _execute(kc, "%load_ext aml_magics")
        assert out["error"] is None, out
        code = (
            "%%aml run -e survive\n"
            "import time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
            "for i in range(30):\n    run.log('i', i)\n    time.sleep(0.1)\n"
            "open('outputs/done.txt', 'w').write('yes')\n"
        )
        out = _execute(kc, code)
        assert out["error"] is None, out
        run_id = out["text"].split()[1]
        assert run_id.startswith("survive_")
        wait_until(lambda: client.runs.get(run_id).status == "Running", what="the run to start")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)  # SIGKILL to the kernel's process group: no clean shutdown
        km.cleanup_resources()
    assert client.runs.get(run_id).status == "Running"  # still going without its kernel

    km2, kc2 = start_new_kernel(kernel_name="python3", env=kernel_env, cwd=str(project))
    try:
        _execute(kc2, "%load_ext aml_magics")
        out = _execute(kc2, f"from aml_magics import Run, Workspace, Experiment\n"
                            f"run = Run(Experiment(Workspace.current(), 'survive'), '{run_id}')\n"
                            f"info = run.wait_for_completion()\nprint(info['status'], len(run.get_metrics()['i']))")
        assert out["error"] is None, out
        assert "Completed 30" in out["text"]
        out = _execute(kc2, "%aml runs -e survive")
        assert run_id in out["text"] and "Completed" in out["text"]
    finally:
        kc2.stop_channels()
        km2.shutdown_kernel(now=True)
    assert "outputs/done.txt" in client.runs.list_files(run_id)
