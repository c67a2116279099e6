"""The run host waits for the run's forked process from two threads (its main thread, and on cancel the
grace timer that escalates to SIGKILL): both must see the exit code, and neither may fail for the other
having reaped it (a host that died so left a canceled trial marked "host ended without finishing").

The host forks from a single-threaded process, so these tests do too: each scenario runs in a fresh
interpreter (forking inside the multi-threaded pytest process is what Python 3.12+ warns about)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCENARIO = textwrap.dedent("""
    import json, os, subprocess, sys, threading, time
    from aml_magics.backends.local.host import _ForkedProcess

    def exit_after(seconds, code):
        def child(env):
            time.sleep(seconds)
            os._exit(code)
        return child

    out = {}
    if sys.argv[1] == "both":
        delay = float(sys.argv[2])
        results = []
        for _ in range(15):
            proc = _ForkedProcess(exit_after(delay, 7), {})  # forked while this process has one thread
            seen, errors = [], []

            def grace_timer():
                try:
                    seen.append(proc.wait(5))
                except BaseException as exc:
                    errors.append(repr(exc))

            timer = threading.Thread(target=grace_timer)
            timer.start()
            seen.append(proc.wait())
            timer.join(10)
            results.append({"seen": seen, "errors": errors})
        out["results"] = results
    else:
        proc = _ForkedProcess(exit_after(0.5, 0), {})
        try:
            proc.wait(0.1)
            out["timed_out"] = False
        except subprocess.TimeoutExpired:
            out["timed_out"] = True
        out["codes"] = [proc.wait(), proc.wait(1)]
    print("RESULT " + json.dumps(out))
""")


def scenario(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", SCENARIO, *args],
                          capture_output=True, text=True, timeout=120)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(line[7:])


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1])
def test_both_waiters_see_the_exit_code(delay):
    for result in scenario("both", str(delay))["results"]:
        assert not result["errors"] and result["seen"] == [7, 7], result


def test_a_wait_with_a_timeout_times_out_and_the_process_is_still_reaped():
    out = scenario("timeout")
    assert out["timed_out"] and out["codes"] == [0, 0]
