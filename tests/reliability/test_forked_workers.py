"""Values logged in child processes are stored, once each: ``multiprocessing`` pools and processes with the fork
start method (Linux's default before Python 3.14), ``concurrent.futures``, ``os.fork``, and the spawn and forkserver
start methods.

Before, every value a pool worker logged was lost (the child had no flush thread, and a worker leaves with
``os._exit``), and a child that exited normally wrote the parent's buffered values a second time. Each program
runs in its own session with a hard timeout, and its whole process group is killed after: a fork that deadlocks
must fail the test, not hang the suite."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aml_magics.core.client import Client

from .._helpers import logging_script

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")


def _run(script: "str | Path", timeout: float = 90) -> subprocess.CompletedProcess:
    """Run a program (its text, or a file run from its folder) in its own session; kill what is left of it after."""
    argv = [sys.executable, str(script)] if isinstance(script, Path) else [sys.executable, "-c", script]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=script.parent if isinstance(script, Path) else None)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the program hung (a deadlock after fork?)\n{out[-2000:]}\n{err[-3000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # a child left behind
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _counts(client: Client, run_id: str) -> dict[str, list]:
    return {name: sorted(values if isinstance(values, list) else [values])
            for name, values in client.runs.get_metrics(run_id).items()}


def test_pool_workers_processes_and_executors_keep_every_value_once(workspace):
    """``with Pool(...)`` (which ends its workers with SIGTERM, racing their normal exit), ``Process``,
    ``ProcessPoolExecutor``, and ``os.fork`` children that exit normally or flush before ``os._exit``; the parent
    logs before and after each fork without a value written twice."""
    client = Client.shared()
    run = client.runs.start_logging("forks")
    script = logging_script(client, run, """
        import multiprocessing as mp, concurrent.futures as cf
        ctx = mp.get_context("fork")
        def work(i):
            for j in range(10):
                run.log("pool", i * 10 + j)
            return i
        def fresh(i):
            from aml_magics import Run
            Run.get_context().log("proc", i)
        for i in range(1000):
            run.log("parent", i)
        for round in range(5):                       # the SIGTERM race lost a worker's values one time in three
            with ctx.Pool(2) as pool:
                assert pool.map(work, range(round * 4, round * 4 + 4)) == list(range(round * 4, round * 4 + 4))
        procs = [ctx.Process(target=fresh, args=(i,)) for i in range(3)]
        [p.start() for p in procs]; [p.join() for p in procs]
        assert [p.exitcode for p in procs] == [0, 0, 0]
        with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
            list(ex.map(work, range(100, 104)))
        pid = os.fork()
        if pid == 0:
            run.log("forked", 1.0)
            sys.exit(0)                                # atexit writes it, and only it
        os.waitpid(pid, 0)
        pid = os.fork()
        if pid == 0:
            run.log("forked_exit", 2.0)
            run.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        for i in range(1000, 2000):
            run.log("parent", i)
        run.flush()
        print("DONE")
    """)
    proc = _run(script)
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-3000:]
    got = _counts(client, run.id)
    assert got["parent"] == list(range(2000))  # not 4,000: the children did not write the parent's buffer again
    assert got["pool"] == sorted([i * 10 + j for i in range(20) for j in range(10)]
                                 + [i * 10 + j for i in range(100, 104) for j in range(10)])
    assert got["proc"] == [0, 1, 2]
    assert got["forked"] == [1.0] and got["forked_exit"] == [2.0]


def test_a_sigterm_just_after_a_flush_took_its_lock_waits_for_that_flush(workspace):
    """The race behind one ``with Pool(...)`` in 200 losing a worker's values on a loaded machine: the worker's
    main thread, ending, began its last flush; SIGTERM was handled just after that flush took its lock and before it
    wrote; the handler's own flush then waited 5 s on the lock its thread held, gave up, and ended the process with
    the values unwritten. Made certain here: SIGTERM is sent at the moment the lock is taken."""
    client = Client.shared()
    run = client.runs.start_logging("forks")
    script = logging_script(client, run, """
        import multiprocessing as mp, signal
        from aml_magics.backends.local import tracker as local_tracker
        def child():
            for i in range(1000):
                run.log("v", i)
            tracker = next(iter(local_tracker._trackers.values()))
            def at_acquire(frame, event, arg):
                if (event == "c_return" and getattr(arg, "__name__", "") == "acquire"
                        and frame.f_code.co_name == "flush"):
                    sys.setprofile(None)
                    print("PENDING", tracker.pending(), flush=True)
                    os.kill(os.getpid(), signal.SIGTERM)
            sys.setprofile(at_acquire)
            run.flush()
            time.sleep(30)                             # SIGTERM ends the process before this
        p = mp.get_context("fork").Process(target=child)
        t0 = time.monotonic(); p.start(); p.join(60)
        print("EXIT", p.exitcode, round(time.monotonic() - t0, 2))
    """)
    proc = _run(script)
    assert proc.returncode == 0 and "EXIT" in proc.stdout, proc.stderr[-3000:]
    pending = int(proc.stdout.split("PENDING")[1].split()[0])
    exitcode, took = proc.stdout.split("EXIT")[1].split()[:2]
    assert pending > 0, "the flush thread wrote everything first: the race was not made"
    assert int(exitcode) == -signal.SIGTERM  # ended by the SIGTERM, once the flush had written
    assert float(took) < 4.0, took  # not after the handler's 5 s wait for its own thread's lock
    assert _counts(client, run.id)["v"] == list(range(1000)), proc.stderr[-2000:]
    assert "were not saved" not in proc.stderr


def test_a_worker_that_cannot_save_its_values_as_it_ends_says_they_are_lost(workspace):
    """A ``multiprocessing`` worker ends (``os._exit`` after its last flush) while the disk is full: the tracker said
    its values were "kept in memory and retried" — and the process ended with them. Now it says they are lost, how
    many, and which process. (The full disk is the worker's own file-size limit, as in test_disk.)"""
    client = Client.shared()
    run = client.runs.start_logging("forks")
    script = logging_script(client, run, """
        import multiprocessing as mp, resource, signal
        from pathlib import Path
        ws = Path(os.environ["AML_MAGICS_TRACKING_URI"][len("sqlite://"):]).parent
        def child():
            run.log("v", 0.0)
            run.flush()
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
            limit = max(p.stat().st_size for p in ws.glob("aml.db*")) + 65536
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))   # the disk is now full
            run.log_list("v", [float(i) for i in range(1, 200000)])
        p = mp.get_context("fork").Process(target=child)
        p.start(); p.join(60)
        print("EXIT", p.exitcode)
    """)
    proc = _run(script)
    assert proc.returncode == 0 and "EXIT" in proc.stdout, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("aml-magics:")]
    assert lines and "could not be saved before this process (pid" in lines[-1] and "ended" in lines[-1], lines
    assert "\n" not in lines[-1] and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert _counts(client, run.id)["v"][:1] == [0.0]  # what was saved before is there


def test_forks_while_another_thread_logs_do_not_deadlock(workspace):
    """A thread logs (and the flush thread writes) without pause while the main thread forks twenty processes
    that log and read the workspace: a child whose first SQLite call waited on a lock held by a thread that does
    not exist there would hang here. Every value of both sides is stored."""
    client = Client.shared()
    run = client.runs.start_logging("forks")
    script = logging_script(client, run, """
        import multiprocessing as mp, threading
        from aml_magics.core.client import Client
        ctx = mp.get_context("fork")
        reader = Client.shared()                       # a connection the children inherit, used in them
        stop = threading.Event()
        logged = []
        def busy():
            i = 0
            while not stop.is_set():
                run.log("thread", i); i += 1
                if i % 500 == 0:
                    run.tag("at", str(i)); time.sleep(0.001)
            logged.append(i)
        t = threading.Thread(target=busy); t.start()
        def child(i):
            assert reader.runs.get(run.id).status == "Running"
            run.log("child", i)
            run.log_row("rows", n=i)
        for i in range(20):
            p = ctx.Process(target=child, args=(i,)); p.start(); p.join(30)
            assert p.exitcode == 0, (i, p.exitcode)
        stop.set(); t.join()
        run.flush()
        assert reader.runs.get(run.id).status == "Running"   # the parent's connection still works
        print("LOGGED", logged[0])
    """)
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = int(proc.stdout.split("LOGGED")[1].split()[0])
    got = _counts(client, run.id)
    assert got["thread"] == list(range(n))
    assert got["child"] == list(range(20))
    assert client.runs.get_metrics(run.id)["rows"] == {"n": list(range(20))}


def test_a_submitted_script_with_a_worker_pool_keeps_its_workers_values(workspace, tmp_path):
    """The way users meet it: a training script submitted as a run uses ``multiprocessing.Pool``."""
    from aml_magics.core.types import RunSubmission

    client = Client.shared()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(textwrap.dedent("""
        import multiprocessing as mp
        from aml_magics import Run
        run = Run.get_context()
        def fold(k):
            for epoch in range(5):
                run.log(f"fold{k}_loss", 1.0 / (epoch + 1))
            return k
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(2) as pool:
                print(pool.map(fold, range(4)))
            run.log("folds", 4)
    """))
    run = client.runs.submit(RunSubmission(kind="script", experiment="forks", source_dir=tmp_path / "src",
                                           entry="train.py"))
    info = client.runs.wait(run.id, timeout=90)
    assert info.status == "Completed", info.error
    got = client.runs.get_metrics(run.id)
    for k in range(4):
        assert got[f"fold{k}_loss"] == [1.0 / (e + 1) for e in range(5)], got
    assert got["folds"] == 4


def test_a_submitted_scripts_idle_pool_workers_end_on_sigterm(workspace, tmp_path):
    """A run's process has a Python SIGTERM handler (it unwinds the user's code); forked pool workers inherited it,
    and a Python handler runs only between bytecodes: a SIGTERM landing just before an idle worker blocked on its
    task queue's lock was never acted on, and ``with Pool(...)`` waited for it for ever (12 runs in 60 of the test
    above on a loaded machine; a CI run failed so). A forked child of the run now ends on SIGTERM as outside a run
    (the tracker's own handler, with its waking thread, in a worker that logs); 200 pools of idle workers end."""
    from aml_magics.core.types import RunSubmission

    client = Client.shared()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(textwrap.dedent("""
        import multiprocessing as mp
        import os
        import signal
        from aml_magics import Run
        run = Run.get_context()
        def default(_):
            return signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(2) as pool:
                run.log("workers_default", float(all(pool.map(default, [0, 1]))))
            pid = os.fork()
            if pid == 0:
                os._exit(0 if default(None) else 3)
            run.log("fork_default", float(os.waitpid(pid, 0)[1] == 0))
            run.log("run_unwinds", float(signal.getsignal(signal.SIGTERM) != signal.SIG_DFL))
            for i in range(200):
                with mp.get_context("fork").Pool(3) as pool:
                    pool.map(abs, [i])
            run.log("pools", 200)
    """))
    run = client.runs.submit(RunSubmission(kind="script", experiment="forks", source_dir=tmp_path / "src",
                                           entry="train.py"))
    info = client.runs.wait(run.id, timeout=120)
    assert info.status == "Completed", client.runs.get_logs(run.id)
    assert client.runs.get_metrics(run.id) == {"workers_default": 1.0, "fork_default": 1.0, "run_unwinds": 1.0,
                                               "pools": 200}


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_spawned_and_forkserver_pool_workers_keep_every_value(workspace, tmp_path, method):
    """The other start methods (forkserver is Python 3.14's default on Linux, spawn macOS's and Windows'): a worker
    imports the main module, which makes its own tracker. Before, a forkserver worker's values were all lost (it
    leaves with ``os._exit``) and a spawned one lost its last ones when ``with Pool`` ended it."""
    client = Client.shared()
    run = client.runs.start_logging("forks")
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import os
        os.environ["AML_MAGICS_RUN_ID"] = {run.id!r}
        os.environ["AML_MAGICS_TRACKING_URI"] = {client.backend.tracking_uri!r}
        from aml_magics import Run
        run = Run.get_context()
        def work(i):
            for j in range(10):
                run.log("pool", i * 10 + j)
            return i
        if __name__ == "__main__":
            import multiprocessing as mp
            for r in range(3):
                with mp.get_context({method!r}).Pool(2) as pool:
                    assert pool.map(work, range(r * 4, r * 4 + 4)) == list(range(r * 4, r * 4 + 4))
            print("DONE")
    """))
    proc = _run(script, timeout=120)
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-3000:]
    assert _counts(client, run.id)["pool"] == list(range(120))


def test_a_lock_another_thread_held_at_the_fork_does_not_stop_the_child(workspace):
    """A thread was inside ``Client.shared()`` (holding its lock) when the main thread forked: the child's own
    ``Client.shared()`` waited for ever for a thread it does not have."""
    script = textwrap.dedent("""
        import os, threading
        from aml_magics.core import client as C
        C.Client.shared()
        held, release = threading.Event(), threading.Event()
        def hold():
            with C._clients_lock:
                held.set(); release.wait()
        t = threading.Thread(target=hold); t.start(); held.wait()
        pid = os.fork()
        if pid == 0:
            C.Client.shared().runs.list(limit=1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        release.set(); t.join()
        print("CHILD", os.waitstatus_to_exitcode(status))
    """)
    proc = _run(script, timeout=60)
    assert proc.returncode == 0 and "CHILD 0" in proc.stdout, proc.stderr[-3000:]


def test_a_forked_child_submitting_child_runs_starts_its_own_zygote(workspace, tmp_path):
    """A run's forked worker that submits child runs (whose hosts a zygote forks warm), at the same time as its parent,
    and once while another thread of the parent waits on the zygote. On the parent's zygote pipes the two processes
    would take each other's answers and record another run's host, which a cancel would then stop; the child's copy
    of a held lock would hang it. The child starts a zygote of its own (its poll of the parent's, not its child, ends
    it), and each run's recorded host must be the process writing that run's host log."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "sleepy.py").write_text("import sys, time\ntime.sleep(float(sys.argv[1]))\n")
    script = tmp_path / "forks.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, threading, time
        from pathlib import Path
        import psutil
        from aml_magics.core.client import Client
        from aml_magics.core.types import RunSubmission
        from aml_magics.backends.local import host as hosts
        client = Client({str(workspace)!r})
        client.computes.create("wide", max_concurrent=30)
        parent = client.runs.start_logging("warm")
        def child(seconds):
            return client.runs.submit(RunSubmission(kind="script", experiment="warm", source_dir=Path({str(src)!r}),
                entry="sleepy.py", args=[str(seconds)], compute="wide", parent_run_id=parent.id)).id
        def forked(work):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                os.write(w, " ".join(work()).encode())
                os._exit(0)
            os.close(w)
            return pid, r
        def joined(pid, r):
            with os.fdopen(r) as f:
                ids = f.read().split()
            assert os.waitpid(pid, 0)[1] == 0
            return ids
        ids = [child(0)]                                          # the zygote starts
        # 1. parent and forked child submit at the same time
        pid, r = forked(lambda: [child(8) for _ in range(6)])
        ids += [child(8) for _ in range(6)]
        ids += joined(pid, r)
        # 2. a fork while another thread waits on the zygote (stopped: it answers after 3 s)
        zygote = hosts._zygote.proc.pid
        os.kill(zygote, signal.SIGSTOP)
        waiting = threading.Thread(target=lambda: ids.append(child(8)))
        waiting.start()
        time.sleep(0.5)
        pid, r = forked(lambda: [child(8)])
        threading.Timer(3, os.kill, (zygote, signal.SIGCONT)).start()
        ids += joined(pid, r)
        waiting.join()
        wrong = []
        for run_id in ids[1:]:
            deadline = time.monotonic() + 30
            while client.runs.get(run_id).status != "Running" and time.monotonic() < deadline:
                time.sleep(0.05)                                  # (its host opens its log as it starts)
            row = client.backend.store.get_run(run_id)
            log = str(Path({str(workspace)!r}) / "runs" / run_id / "logs" / "host.txt")
            files = [f.path for f in psutil.Process(row["host_pid"]).open_files()]
            if log not in files:
                wrong.append((run_id, row["status"], files))
        assert not wrong, wrong
        print("checked", len(ids) - 1)
        for run_id in ids[1:]:
            client.runs.cancel(run_id)
        parent.complete()
        """))
    done = _run(script, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checked 14" in done.stdout


@pytest.mark.parametrize("rt_signals", ["free", "all the programs own"])
def test_a_sigterm_the_main_thread_slept_through_still_ends_the_child(workspace, rt_signals):
    """``Pool.terminate()`` (and leaving ``with Pool(...)``) ends a worker with SIGTERM while the worker's main thread
    sleeps in a lock, waiting for its next task. Python runs the handler only in the main thread, and only a signal
    delivered to that thread wakes it: one that another thread of the child took (here a thread of the program's
    own, sent it on purpose; in the wild the flush thread, or the main thread just before it went to sleep) left the
    worker asleep for ever, and ``with Pool`` hung (one in 60 to 170 on a loaded machine). The child's handler must
    still run: the value it logged is written and it dies of SIGTERM. Where every real-time signal the wake-up
    could use is the program's own, SIGTERM is sent again instead."""
    client = Client.shared()
    run = client.runs.start_logging("forks")
    script = logging_script(client, run, """
        import multiprocessing as mp, signal, threading
        ctx = mp.get_context("fork")
        def child():
            if TAKEN:
                for s in range(signal.SIGRTMAX - 1, signal.SIGRTMAX - 9, -1):
                    signal.signal(s, lambda *a: None)
            run.log("child", 1.0)                      # the child logged: its SIGTERM writes that first
            def other():
                time.sleep(0.5)                        # the main thread is asleep in the lock by now
                signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
                time.sleep(60)
            threading.Thread(target=other, daemon=True).start()
            lock = threading.Lock()
            lock.acquire()
            lock.acquire()                             # for ever, as a worker waiting for a task
        p = ctx.Process(target=child)
        p.start()
        p.join(20)
        print("EXIT", p.exitcode)
        if p.exitcode is None:
            p.kill()
    """.replace("TAKEN", str(rt_signals != "free")))
    proc = _run(script, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "EXIT -15" in proc.stdout, proc.stdout  # EXIT None: the child slept through its SIGTERM
    assert _counts(client, run.id)["child"] == [1.0]


def test_waking_a_main_thread_that_slept_through_its_sigterm_runs_the_programs_handler_once(workspace):
    """The watch above sent the SIGTERM again when its handler had not started 0.2 s later; a handler that began
    just then ran twice — the program's own SIGTERM handler too (here the start of ours is held 0.6 s, as a loaded
    machine can). The main thread is now woken with a real-time signal whose handler does nothing."""
    client = Client.shared()
    run = client.runs.start_logging("forks")
    script = logging_script(client, run, """
        import multiprocessing as mp, signal
        def child():
            calls = []
            signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))  # the program's own
            run.log("child", 1.0)                          # the child logged: its SIGTERM goes through ours first
            from aml_magics.core import children
            def slow_start(frame, event, arg):
                if event == "call" and frame.f_code is children._on_terminate.__code__:
                    sys.setprofile(None)
                    time.sleep(0.6)                        # the watch sees a SIGTERM unhandled for 0.2 s meanwhile
            sys.setprofile(slow_start)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.5)                                # (a second run of the handlers would come by now)
            print("CALLS", len(calls), flush=True)
        p = mp.get_context("fork").Process(target=child)
        p.start(); p.join(30)
        print("EXIT", p.exitcode)
    """)
    proc = _run(script, timeout=60)
    assert proc.returncode == 0 and "EXIT 0" in proc.stdout, (proc.stdout, proc.stderr[-3000:])
    assert "CALLS 1" in proc.stdout, proc.stdout
    assert _counts(client, run.id)["child"] == [1.0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads a thread's signal mask in /proc")
def test_the_flush_threads_leave_signals_to_the_main_thread(workspace):
    """The kernel hands a signal sent to a process to any thread that does not block it, and Python acts on it only
    in the main thread: our flush threads, in the parent and in a pool worker, block the signals a program handles;
    the program's own threads keep theirs."""
    client = Client.shared()
    run = client.runs.start_logging("forks")
    script = logging_script(client, run, """
        import multiprocessing as mp, signal, threading
        def blocked(thread):
            with open(f"/proc/self/task/{thread.native_id}/status") as f:
                mask = int(next(l for l in f if l.startswith("SigBlk:")).split()[1], 16)
            return sorted(s.name for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)
                          if mask >> (s - 1) & 1)
        def ours():
            return [t for t in threading.enumerate() if t.name.startswith("aml-")]
        def report(_):
            run.log("x", 1.0)
            return {t.name: blocked(t) for t in ours()} | {"main": blocked(threading.main_thread())}
        run.log("x", 0.0)
        print("PARENT", report(0))
        with mp.get_context("fork").Pool(1) as pool:
            print("WORKER", pool.map(report, [0])[0])
    """)
    proc = _run(script, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    every = ["SIGALRM", "SIGHUP", "SIGINT", "SIGTERM"]
    for who in ("PARENT", "WORKER"):
        masks = eval(proc.stdout.split(who)[1].splitlines()[0])  # noqa: S307 - our own program's printed dict
        assert masks["aml-metrics-flush"] == every, (who, masks)
        assert masks["main"] == [], (who, masks)
    assert eval(proc.stdout.split("WORKER")[1].splitlines()[0])["aml-sigterm"] == every  # noqa: S307
