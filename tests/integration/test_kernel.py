"""A real kernel: the run outlives it, and a new kernel sees the run finish."""
from __future__ import annotations

import os

import pytest

from tests.conftest import wait_until
from tests.kernel import Kernel


@pytest.fixture
def kernel_env(workspace, project):
    env = dict(os.environ)
    env["AML_MAGICS_WORKSPACE"] = str(workspace)
    return env


def test_kernel_killed_mid_run_does_not_stop_the_run(kernel_env, project, client):
    k = Kernel(kernel_env, str(project))
    try:
        out = k.run("%load_ext aml_magics")
        assert out["error"] is None, out
        code = (
            "%%aml run -e survive\n"
            "import time\nfrom aml_magics import Run\nrun = Run.get_context()\n"
            "for i in range(30):\n    run.log('i', i)\n    time.sleep(0.1)\n"
            "open('outputs/done.txt', 'w').write('yes')\n"
        )
        out = k.run("%config AmlMagics.dashboards = False\n")
        out = k.run(code)
        assert out["error"] is None, out
        run_id = out["text"].split()[1]
        assert run_id.startswith("survive_")
        wait_until(lambda: client.runs.get(run_id).status == "Running", what="the run to start")
    finally:
        k.kill()  # SIGKILL to the kernel's process group: no clean shutdown
    assert client.runs.get(run_id).status == "Running"  # still going without its kernel

    k2 = Kernel(kernel_env, str(project))
    try:
        k2.run("%load_ext aml_magics\n%config AmlMagics.dashboards = False")
        out = k2.run(f"from aml_magics import Run, Workspace, Experiment\n"
                            f"run = Run(Experiment(Workspace.current(), 'survive'), '{run_id}')\n"
                            f"info = run.wait_for_completion()\nprint(info['status'], len(run.get_metrics()['i']))")
        assert out["error"] is None, out
        assert "Completed 30" in out["text"]
        out = k2.run("%aml runs -e survive")
        assert run_id in out["text"] and "Completed" in out["text"]
    finally:
        k2.kill()
    assert "outputs/done.txt" in client.runs.list_files(run_id)


def test_a_cell_that_does_not_finish_is_reported_in_words(tmp_path):
    """A hung kernel (ipykernel#1554 on 3.10 with 7.3.0) shows as what it is, not as a bare queue.Empty."""
    import pytest

    from tests.kernel import Kernel, KernelHung

    kernel = Kernel(env=dict(os.environ), cwd=str(tmp_path))
    try:
        with pytest.raises(KernelHung, match=r"did not finish the cell within 1 s \(its last state: busy"):
            kernel.run("import time; print('started', flush=True); time.sleep(5)", timeout=1)
    finally:
        kernel.kill()
