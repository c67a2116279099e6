"""A real Jupyter kernel for tests: start it, run code, read what it printed."""
from __future__ import annotations

import json
import queue
import sys
import time

from jupyter_client.manager import start_new_kernel


class KernelHung(AssertionError):
    """The kernel did not answer in time: a hang (or a cell that truly runs this long), said in words."""


class Kernel:
    def __init__(self, env: dict, cwd: str):
        self.km, self.kc = start_new_kernel(kernel_name="python3", env=env, cwd=cwd)

    def run(self, code: str, timeout: float = 120) -> dict:
        """Execute ``code``; returns {'text': printed + displayed text, 'error': 'Name: value' or None, 'outputs': [...]}."""
        msg_id = self.kc.execute(code)
        text, error, outputs = [], None, []
        deadline = time.monotonic() + timeout
        last_state = "no status message yet"
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                import ipykernel

                raise KernelHung(
                    f"the kernel did not finish the cell within {timeout:g} s (its last state: {last_state}; "
                    f"alive: {self.km.is_alive()}; ipykernel {ipykernel.__version__}, Python "
                    f"{sys.version.split()[0]}); output so far: {''.join(text)[-500:]!r}; cell: {code[:200]!r}"
                ) from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                outputs.append(content)
                text.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"])
            elif kind == "status":
                last_state = content["execution_state"]
                if last_state == "idle":
                    return {"text": "".join(text), "error": error, "outputs": outputs}

    def value(self, expression: str):
        """The JSON value of an expression evaluated in the kernel."""
        out = self.run(f"import json as _j; print(_j.dumps({expression}))")
        assert out["error"] is None, out["error"]
        return json.loads(out["text"].strip().splitlines()[-1])

    def kill(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
        self.km.cleanup_resources()
