"""The first code of a run process: ``python -m aml_magics.runtime.launch``.

Reads the run spec (``$AML_MAGICS_RUN_SPEC``), marks the run Running, loads ``--in``
variables, executes the cell, script or notebook, sends ``--out`` variables back, and leaves
``io/error.json`` (message + traceback) for the host when the user's code fails.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path


ENGINES = ("sweep", "automl", "pipeline", "batch")  # runs of our code (the user's code runs in their trials or steps)


def _terminate(signum, frame):
    # unwind the user's code so that atexit flushes the metrics logged so far
    raise SystemExit(128 + signum)


_held: dict[int, set] = {}  # a forking thread's signal mask from before it blocked SIGTERM (see _hold_sigterm)


def _hold_sigterm() -> None:
    """Before a fork, in the forking thread: SIGTERM waits (blocked) until the child has SIGTERM's default action
    back — one landing in the child before that ran ``_terminate`` inside the at-fork hook, whose SystemExit is
    ignored there: the signal was lost and ``with Pool(...)`` waited for that worker for ever (a CI run)."""
    try:
        _held[threading.get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    except (AttributeError, OSError, ValueError):
        pass


def _release_sigterm() -> None:
    mask = _held.pop(threading.get_ident(), None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a SIGTERM that came meanwhile is acted on now


def _default_sigterm_in_child() -> None:
    """In a process the user's code forks (a ``multiprocessing`` worker): SIGTERM ends it at once, as outside a run.
    Inherited, ``_terminate`` is a Python handler, which runs only between bytecodes: a SIGTERM landing just before
    an idle pool worker blocked on its task queue's lock was never acted on, and ``with Pool(...)`` waited for that
    worker for ever (12 runs in 60 on a loaded machine with Python 3.10). A worker that logs puts the tracker's
    flushing handler in place, which has a thread to wake it (``core.children``)."""
    try:
        if signal.getsignal(signal.SIGTERM) is _terminate:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):  # not the main thread
        pass
    finally:
        mask = _held.pop(threading.get_ident(), None)
        _held.clear()  # the parent's other threads are not here
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _write_error(io_dir: Path, message: str, tb: str | None) -> None:
    io_dir.mkdir(parents=True, exist_ok=True)
    (io_dir / "error.json").write_text(json.dumps({"error": message, "traceback": tb}))


def _user_traceback(exc: BaseException) -> str:
    """The traceback without this module's frames: what the user needs to see."""
    frames = traceback.extract_tb(exc.__traceback__)
    keep = [f for f in frames
            if not f.filename.endswith(("runtime/launch.py", "runpy.py")) and not f.filename.startswith("<frozen runpy")]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(keep)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def run_python(spec: dict, io_dir: Path) -> None:
    import runpy

    init_globals: dict = {}
    if spec.get("in_vars"):
        import cloudpickle  # noqa: F401  (pickles of closures need it importable)
        import pickle

        with open(io_dir / "in.pkl", "rb") as f:
            init_globals.update(pickle.load(f))
    if spec.get("kind") == "cell" and (spec.get("inputs") or spec.get("outputs")):
        import types  # a pipeline step's cell reads inputs.NAME and writes into outputs.NAME (folder paths)

        init_globals.setdefault("inputs", types.SimpleNamespace(**(spec.get("inputs") or {})))
        init_globals.setdefault("outputs", types.SimpleNamespace(**(spec.get("outputs") or {})))
    entry = spec["entry"]
    sys.argv = [entry, *spec.get("args", [])]
    sys.path.insert(0, os.path.dirname(os.path.abspath(entry)))
    result = runpy.run_path(entry, init_globals=init_globals, run_name="__main__")
    out_vars = spec.get("out_vars") or []
    if out_vars:
        import cloudpickle

        missing = [v for v in out_vars if v not in result]
        if missing:
            raise NameError(f"--out variables not defined by the run: {', '.join(missing)}")
        try:
            with open(io_dir / "out.pkl.tmp", "wb") as f:
                cloudpickle.dump({v: result[v] for v in out_vars}, f)
        except Exception:
            for v in out_vars:  # which value cannot travel, said by name (not only pickle's "cannot pickle …")
                try:
                    cloudpickle.dumps(result[v])
                except Exception as exc:  # noqa: BLE001 - any pickling error: the run fails saying which and why
                    raise TypeError(f"--out {v} cannot be brought back to the notebook ({exc}); a lock, an open file "
                                    "or a generator stays in the run: bring back what it holds instead") from None
            raise  # not one value's fault (a full disk): as it is
        os.replace(io_dir / "out.pkl.tmp", io_dir / "out.pkl")


def run_notebook(spec: dict) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # the notebook's kernel must be this interpreter: its kernelspec starts "python" from PATH
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    # papermill logs the cells' output (log_output) at INFO: into the run's log, as a script's prints are
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    pm_log = logging.getLogger("papermill")
    pm_log.addHandler(handler)
    pm_log.setLevel(logging.INFO)
    pm_log.propagate = False
    import warnings

    # a notebook saved by an older Jupyter (or written by a tool) has no cell ids: nbformat adds them, and warned of
    # it into every run's log (MissingIDFieldWarning, with its file and line)
    warnings.filterwarnings("ignore", message="Cell is missing an id field")
    entry = spec["entry"]
    os.makedirs("outputs", exist_ok=True)
    output = os.path.join("outputs", os.path.basename(entry))
    kernel = spec.get("kernel") or "python3"
    try:
        papermill.execute_notebook(
            entry, output, parameters=spec.get("parameters") or {}, kernel_name=kernel,
            # a notebook written by a tool (nbformat, some converters) may name no language: papermill then refused
            # every parameter ("No language found in notebook"), so every sweep trial of it failed
            language="python" if kernel.startswith("python") else None,
            progress_bar=False, log_output=True, cwd=".",
            # the kernel process's own log (its stderr is the run's log): "Kernel is running over TCP without
            # encryption" on every run, "KeyboardInterrupt caught in kernel" when jupyter_client interrupts it as it
            # shuts it down — about the transport, not the notebook (a cell's errors come as its outputs; a kernel
            # that dies is the run's error)
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"] if kernel.startswith("python") else [],
        )
    except PapermillExecutionError as exc:
        ename, evalue = exc.ename, exc.evalue
        if not evalue:  # an IPython UsageError (a magic's one-line refusal) is printed, not an error output
            said = _last_stderr_line(output, exc.exec_count)
            if said:
                ename, _, evalue = said.partition(": ") if ": " in said[:40] else (ename, "", said)
        raise NotebookCellError(exc.exec_count, ename, evalue, exc.traceback) from None


def _last_stderr_line(notebook: str, exec_count: int) -> str | None:
    """The last line the cell of the executed notebook that ran ``exec_count``-th wrote to stderr ("UsageError: …"),
    or None. (Found by its count: papermill adds cells of its own above it.)"""
    try:
        with open(notebook, encoding="utf-8") as f:
            cell = next(c for c in json.load(f)["cells"] if c.get("execution_count") == exec_count)
        text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", [])
                       if o.get("output_type") == "stream" and o.get("name") == "stderr")
    except (OSError, ValueError, KeyError, StopIteration, TypeError, AttributeError):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:2000] if lines else None


class NotebookCellError(Exception):
    def __init__(self, exec_count, ename, evalue, tb):
        import re

        self.message = f"{ename}: {evalue} (notebook cell {exec_count})"
        self.tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(tb))
        super().__init__(self.message)


def main() -> int:
    from ..core.children import take_signals_back

    take_signals_back()
    signal.signal(signal.SIGTERM, _terminate)
    if hasattr(os, "register_at_fork") and hasattr(signal, "pthread_sigmask"):
        os.register_at_fork(before=_hold_sigterm, after_in_parent=_release_sigterm,
                            after_in_child=_default_sigterm_in_child)
    spec_path = Path(os.environ["AML_MAGICS_RUN_SPEC"])
    spec = json.loads(spec_path.read_text())
    io_dir = spec_path.parent

    from ..core.errors import AmlError, EngineStopped
    from ..core.run import Run

    from ..v1 import install_from_environment

    install_from_environment()  # a run submitted from an Azure ML v1 notebook: `from azureml.core import Run` works
    run = Run.get_context()
    run.tracker.started(run.id)
    code = 0
    try:
        if spec["kind"] == "notebook":
            run_notebook(spec)
        elif spec["kind"] == "sweep":
            from ..sweep.controller import run_sweep

            run_sweep(spec, run)
        elif spec["kind"] == "automl":
            from ..automl.engine import run_automl

            run_automl(spec, run)
        elif spec["kind"] == "pipeline":
            from ..pipeline.controller import run_pipeline

            run_pipeline(spec, run)
        elif spec["kind"] == "batch":
            from ..batch.engine import run_batch
            from .worker import init_batch_worker

            run_batch(spec, run, init_batch_worker)
        else:
            run_python(spec, io_dir)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code:
            _write_error(io_dir, f"the run called sys.exit({exc.code!r})" if code < 128 else "the run was stopped", None)
    except EngineStopped as exc:  # a sweep or AutoML run that ended for a reason it explains itself
        print(str(exc), file=sys.stderr)
        _write_error(io_dir, str(exc), None)
        code = 1
    except NotebookCellError as exc:
        print(exc.tb, file=sys.stderr)
        _write_error(io_dir, exc.message, exc.tb)
        code = 1
    except BaseException as exc:  # the user's error: report it, keep the process exit code honest
        if isinstance(exc, AmlError) and spec["kind"] in ENGINES:
            # an engine's own one-line refusal ("the input folder … has no files to score"): said as it is, not as
            # "aml_magics.core.errors.InvalidInput: …" below a traceback of our code
            print(str(exc), file=sys.stderr)
            _write_error(io_dir, str(exc), None)
        else:
            tb = _user_traceback(exc)
            message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            if isinstance(exc, NameError) and getattr(exc, "name", None) in ("run", "Run"):
                # a cell or script that logs without getting its run first (the habit of a tool that defines one)
                hint = "get the run first: from aml_magics import Run; run = Run.get_context()"
                tb, message = f"{tb}({hint})\n", f"{message.splitlines()[-1]} ({hint})"
            print(tb, file=sys.stderr, end="")
            _write_error(io_dir, message, tb)
        code = 1
    finally:
        try:
            run.flush()
        except Exception as exc:  # pragma: no cover - reported by the tracker too
            print(f"aml-magics: metrics could not be saved: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
