"""The run host waits for the run's forked process from two threads (its main thread, and on cancel the
grace timer that escalates to SIGKILL): both must see the exit code, and neither may fail for the other
having reaped it (a host that died so left a canceled trial marked "host ended without finishing")."""
from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from aml_magics.backends.local.host import _ForkedProcess


def _exit_after(seconds: float, code: int):
    def child(env):
        time.sleep(seconds)
        os._exit(code)
    return child


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1])
def test_both_waiters_see_the_exit_code(delay):
    for _ in range(15):
        proc = _ForkedProcess(_exit_after(delay, 7), {})
        seen, errors = [], []

        def grace_timer():
            try:
                seen.append(proc.wait(5))
            except BaseException as exc:  # noqa: BLE001 - the test reports whatever went wrong
                errors.append(exc)

        timer = threading.Thread(target=grace_timer)
        timer.start()
        seen.append(proc.wait())
        timer.join(10)
        assert not errors and seen == [7, 7]


def test_a_wait_with_a_timeout_times_out_and_the_process_is_still_reaped():
    proc = _ForkedProcess(_exit_after(0.5, 0), {})
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.1)
    assert proc.wait() == 0 and proc.wait(1) == 0
