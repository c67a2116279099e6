"""The process of a batch scoring run.

1. **Plan** (once, kept in ``.batch/plan.json`` so a resumed run splits the input the same way): the files of
   the input folder in name order, ``mini_batch`` files per mini-batch; or, for tabular data, ``mini_batch`` rows
   of each CSV/Parquet file (or of the DataFrame sent from the notebook).
2. **Score** on ``parallel`` worker processes: each loads the scorer once (the user's ``init()``, or the default
   scorer for a scikit-learn or ONNX model) and runs ``run(mini_batch)`` — a list of file paths, or a DataFrame —
   per mini-batch, writing what it returns, rendered, to ``.batch/parts/NNNNNNNN.part`` (atomically: a part exists only
   whole). A failing mini-batch is tried again up to ``retries`` times; past ``error_threshold`` failed
   files/rows the run stops.
3. **Append** the parts in input order to one output (v1's ``append_row``: ``parallel_run_step.txt``, or CSV /
   Parquet), in ``outputs/`` and in the ``--out`` datastore folder.

A killed run resumes (``%aml resume``) without scoring a finished mini-batch again: the parts on disk are the
record of what is done. Progress (mini-batches done and failed, items per second, ETA) is logged as metrics.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from ..core import checks
from ..core.errors import AmlError, EngineStopped, InvalidInput, storage_reason, through_a_full_disk
from ..core.render import counted
from ..core.specs import TABULAR_SUFFIXES, BatchSpec

STATE = Path(".batch")
PARTS = STATE / "parts"
PROGRESS_EVERY_S = 0.5
MAX_WORKERS_PER_CORE = 4  # --parallel beyond this many workers per core only adds memory and switching


# -- the plan ------------------------------------------------------------------------------------------------

def data_path(settings: BatchSpec) -> str | None:
    data = settings.data
    if data["kind"] == "input":
        return os.environ[f"AZURE_ML_INPUT_{data['name']}"]
    if data["kind"] == "path":
        return data["path"]
    return None


def load_memory() -> Any:
    """The DataFrame sent from the notebook: the run's pickled inputs (an Azure job: its input file)."""
    path = Path(os.environ.get("AML_MAGICS_BATCH_IN") or Path(os.environ.get("AML_MAGICS_RUN_SPEC", "")).parent / "in.pkl")
    import cloudpickle  # noqa: F401

    with open(path, "rb") as f:
        return pickle.load(f)["__batch_data__"]


def _as_frame(data: Any):
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    return pd.DataFrame(data)


def _read_table(path: str):
    import pandas as pd

    if path.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    try:
        return pd.read_csv(path, sep=checks.table_delimiter(path))  # (";" of Excel's CSV made one column of each row)
    except pd.errors.EmptyDataError:  # a file of nothing, not even a header: no rows, as a header alone (was the
        return pd.DataFrame()  # whole job failed with pandas' traceback)


def make_plan(settings: BatchSpec) -> dict:
    root = data_path(settings)
    n = settings.mini_batch
    if not settings.tabular:
        base = Path(root)
        if base.is_file():
            files, base = [base.name], base.parent
        else:
            files = sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(base).parts))
        if not files:
            raise InvalidInput(f"the input folder {root} has no files to score")
        return {"kind": "files", "root": str(base), "files": files,
                "batches": [[i, min(i + n, len(files))] for i in range(0, len(files), n)]}
    if root is None:
        sources = [["memory", len(_as_frame(load_memory()))]]
    else:
        base = Path(root)
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.suffix.lower() in TABULAR_SUFFIXES)
        if not paths:
            raise InvalidInput(f"{root} has no CSV or Parquet files")
        sources = [[str(p), len(_read_table(str(p)))] for p in paths]
    batches, offset = [], 0
    for s, (_, rows) in enumerate(sources):
        batches += [[s, start, min(start + n, rows), offset + start] for start in range(0, rows, n)]
        offset += rows
    if not batches:
        raise InvalidInput("the table has no rows to score")
    return {"kind": "rows", "sources": sources, "batches": batches, "rows": offset}


def batch_items(plan: dict, idx: int) -> int:
    b = plan["batches"][idx]
    return b[1] - b[0] if plan["kind"] == "files" else b[2] - b[1]


# -- the workers ---------------------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _init_worker(cfg: dict) -> None:
    try:
        os.chdir(cfg["cwd"])
        sys.path.insert(0, cfg["cwd"])
        os.environ.update(cfg["env"])
        _W["plan"] = cfg["plan"]
        _W["tabular_cache"] = (None, None)
        if cfg["plan"]["kind"] == "rows" and cfg["plan"]["sources"][0][0] == "memory":
            _W["memory"] = _as_frame(load_memory())
        if cfg["score"]:
            import runpy

            module = runpy.run_path(cfg["score"], run_name="batch_score")
            if "run" not in module:
                raise InvalidInput(f"{cfg['score']} has no run(mini_batch) function")
            if "init" in module:
                module["init"]()
            _W["run"] = module["run"]
        else:
            _W["run"] = default_scorer(cfg["model_path"], cfg["framework"])
    except BaseException as exc:  # every task reports it: the engine stops with this one line
        import traceback

        _W["init_error"] = _one_line("".join(traceback.format_exception_only(type(exc), exc)))


def _mini_batch(idx: int):
    plan = _W["plan"]
    b = plan["batches"][idx]
    if plan["kind"] == "files":
        return [os.path.join(plan["root"], f) for f in plan["files"][b[0]:b[1]]]
    source, start, stop, offset = b
    if source != _W["tabular_cache"][0]:
        path = plan["sources"][source][0]
        _W["tabular_cache"] = (source, _W["memory"] if path == "memory" else _read_table(path))
    frame = _W["tabular_cache"][1].iloc[start:stop].copy()
    frame.index = range(offset, offset + len(frame))
    return frame


def _task(idx: int, parts: str, fmt: str) -> tuple[int, str | None, str]:
    """Score mini-batch ``idx`` and keep its result, rendered as the output's format, as one part file;
    (idx, error or None, what the error is: "init" (init()'s), "full" (the disk was full) or "")."""
    if "init_error" in _W:
        return idx, _W["init_error"], "init"
    try:
        result = _W["run"](_mini_batch(idx))
        if result is None:
            raise TypeError("run(mini_batch) returned None; return a list or a DataFrame (one entry per result)")
        data = render(_plain(result), fmt)
        target = os.path.join(parts, f"{idx:08d}.part")
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        return idx, None, ""
    except BaseException as exc:  # noqa: BLE001 - the mini-batch's failure, retried by the engine
        import traceback

        with contextlib.suppress(NameError, OSError):
            os.unlink(tmp)  # a part cut short by a full disk
        kind = "full" if isinstance(exc, OSError) and storage_reason(exc) == "the disk is full" else ""
        text = str(exc) if isinstance(exc, AmlError) else "".join(traceback.format_exception_only(type(exc), exc))
        # our own one-line message without "aml_magics.core.errors.InvalidInput: "; a file name that is not UTF-8 (a
        # lone surrogate) escaped: printed, stored or kept as JSON as it was, it stopped the run (UnicodeEncodeError)
        return idx, _one_line(text).encode("utf-8", "backslashreplace").decode("utf-8"), kind


def _one_line(text: str) -> str:
    """An exception's message on one line (scikit-learn's feature-name error spans four, and was printed so on every
    try): each progress line, and the run's error, stays one line."""
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def render(result: Any, fmt: str) -> bytes:
    """One mini-batch's result as bytes of the output: ``.txt`` lines (v1's append_row: a DataFrame's rows
    space-separated), ``.csv`` rows after a header line, or a pickled DataFrame for ``.parquet``."""
    if fmt == ".parquet":
        return pickle.dumps(_frame(result), protocol=pickle.HIGHEST_PROTOCOL)
    if fmt == ".csv":
        return _frame(result).to_csv(index=False).encode("utf-8", "surrogateescape")
    if hasattr(result, "to_csv"):
        fast = _plain_columns(result)
        if fast is None:
            return result.to_csv(sep=" ", header=False, index=False).encode("utf-8", "surrogateescape")
        return "".join(" ".join(row) + "\n" for row in zip(*fast)).encode("utf-8", "surrogateescape")
    return "".join(f"{item}\n" for item in result).encode("utf-8", "surrogateescape")


def _plain_columns(frame) -> list | None:
    """The columns as lists of text when writing them plainly gives what ``to_csv(sep=" ")`` writes (numbers
    without NaN, text without spaces, quotes or line breaks) — seven times faster; else None."""
    import numpy as np

    cols = []
    for name in frame.columns:
        col = frame[name]
        kind = col.dtype.kind
        if kind in "iub":
            cols.append([str(v) for v in col.tolist()])
        elif kind == "f" and not np.isnan(col.to_numpy()).any():
            cols.append([repr(v) for v in col.tolist()])
        elif kind == "O":
            values = col.tolist()
            if not all(type(v) is str and v and not any(c in v for c in ' "\n\r') for v in values):
                return None
            cols.append(values)
        else:
            return None
    return cols


def _is_frame(value: Any) -> bool:
    """A pandas DataFrame, told without importing pandas (a worker scoring files never needs it: ~0.4 s)."""
    return type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas")


def _plain(result: Any) -> Any:
    if _is_frame(result):
        return result
    if hasattr(result, "tolist"):
        return result.tolist()
    return list(result)


def default_scorer(model_path: str, framework: str | None):
    """``run(mini_batch)`` for a scikit-learn (pickle/joblib) or ONNX model with no scoring script.

    Files (.npy, .csv, .txt, .json, .parquet, images): a 1-D array is one sample, a 2-D one a sample per row; the
    result is a line ``FILE ROW PREDICTION`` per sample. Rows of a table: ``row`` and ``prediction`` columns."""
    import numpy as np

    path = Path(model_path)
    width = None
    columns: list[str] = []
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in (".pkl", ".joblib", ".onnx", ".pickle"))
        if not found:
            raise InvalidInput(f"no model file (.pkl, .joblib, .onnx) in {path}; give a scoring script with --score")
        path = found[0]
    if framework == "onnx" or path.suffix == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise InvalidInput("this ONNX model needs onnxruntime in the run's environment: pip install onnxruntime") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def predict(x):
            out = session.run(None, {name: np.asarray(x, dtype=np.float32)})[0]
            return np.asarray(out).reshape(len(x), -1)[:, 0] if np.asarray(out).ndim > 1 else out
    else:
        import joblib

        model = joblib.load(path)
        predict = model.predict
        width = getattr(model, "n_features_in_", None)  # values per sample the model takes
        columns = [str(c) for c in getattr(model, "feature_names_in_", [])]  # a model trained on a DataFrame's

    def run(mini_batch):
        if _is_frame(mini_batch):
            import pandas as pd

            frame = mini_batch
            if columns:  # the model's columns, by name (as the online default scorer takes records): an id or
                # a label column beside them was an error of scikit-learn's on every mini-batch
                lacking = [c for c in columns if c not in frame.columns]
                if lacking:
                    raise InvalidInput(f"the table lacks the model's column{'s' if len(lacking) > 1 else ''} "
                                       f"{', '.join(lacking[:5])}{' …' if len(lacking) > 5 else ''}")
                frame = frame[columns]
            return pd.DataFrame({"row": mini_batch.index, "prediction": predict(frame)})
        names, samples = [], []
        for f in mini_batch:
            name = os.path.basename(f)
            try:
                x = np.asarray(_load_file(f))
                if x.dtype.kind not in "fiub":  # numbers stay in their own type (a model of float32 gets float32)
                    x = x.astype(float)
            except InvalidInput:
                raise
            except Exception as exc:  # noqa: BLE001 - which of the mini-batch's files, said in one line
                raise InvalidInput(f"{name}: cannot be read as a {Path(f).suffix.lower()} file "
                                   f"({type(exc).__name__}: {exc})") from None
            x = x.reshape(1, -1) if x.ndim <= 1 else x.reshape(len(x), -1)
            expected = width if width is not None else samples[0].shape[1] if samples else x.shape[1]
            if x.shape[1] != expected:
                whose = "the model takes" if width is not None else f"{names[0][0]} has"
                raise InvalidInput(f"{name}: {x.shape[1]:,} values per sample; {whose} {expected:,}")
            names.append((name, len(x)))
            samples.append(x)
        if not samples:
            return []
        preds = np.asarray(predict(samples[0] if len(samples) == 1 else np.concatenate(samples))).tolist()
        lines, at = [], 0  # "FILE ROW PREDICTION" (what a DataFrame of them gives, without building one)
        for name, n in names:
            lines += [f"{name} {i} {p}" for i, p in enumerate(preds[at:at + n])]
            at += n
        return lines

    return run


def _load_file(path: str):
    import numpy as np

    suffix = Path(path).suffix.lower()
    if suffix in (".npy", ".npz"):
        with open(path, "rb") as f:
            head = f.read(6)
        if not head.startswith(b"\x93NUMPY" if suffix == ".npy" else b"PK"):  # numpy's refusal spoke of pickles
            raise InvalidInput(f"{os.path.basename(path)}: " + ("an empty file" if not head else
                               f"not a NumPy {suffix} file"))
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if not z.files:
                raise InvalidInput(f"{os.path.basename(path)}: the .npz file holds no array")
            return z[z.files[0]]
    if suffix in (".csv", ".txt", ".tsv"):
        return np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=1)
    if suffix == ".json":
        with open(path) as f:
            return json.load(f)
    if suffix in (".parquet", ".pq"):
        return _read_table(path).to_numpy()
    try:
        from PIL import Image
    except ImportError:
        raise InvalidInput(f"{os.path.basename(path)}: the default scorer reads .npy, .npz, .csv, .txt, .json and "
                           ".parquet files (images need Pillow); give a scoring script with --score") from None
    with Image.open(path) as img:
        return np.asarray(img.convert("L"))


# -- the engine ----------------------------------------------------------------------------------------------

class BatchEngine:
    def __init__(self, run, spec: dict, worker_init=None):
        """``worker_init(cfg)``: the worker processes' first call (the run process's entry point passes one that
        also installs the v1 names; by default ``_init_worker``)."""
        self.worker_init = worker_init
        self.run = run
        self.spec = spec
        self.settings = BatchSpec.from_settings(spec["settings"])

    def plan(self) -> dict:
        path = STATE / "plan.json"
        if path.is_file():
            return json.loads(path.read_text())
        plan = make_plan(self.settings)
        PARTS.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(plan))
        os.replace(tmp, path)
        return plan

    def worker_config(self, plan: dict) -> dict:
        s = self.settings
        env = {}
        model_path = None
        if s.model:
            name, _, version = s.model.rpartition(":")
            model_path = s.model_path or self.run.client.models.get(name, int(version)).path
            env = {"AZUREML_MODEL_DIR": str(Path(model_path).parent if Path(model_path).is_file() else model_path),
                   "AML_MAGICS_MODEL_PATHS": json.dumps({s.model: model_path, name: model_path})}
        return {"cwd": os.getcwd(), "env": env, "plan": plan, "score": s.score, "model_path": model_path,
                "framework": s.framework}

    def main(self) -> int:
        s = self.settings
        plan = self.plan()
        total = len(plan["batches"])
        failed_log = STATE / "failed.json"
        failed: dict[str, str] = json.loads(failed_log.read_text()) if failed_log.is_file() else {}
        done = {int(p.stem) for p in PARTS.glob("*.part")} | {int(k) for k in failed}
        todo = [i for i in range(total) if i not in done]
        items_total = sum(batch_items(plan, i) for i in range(total))
        failed_items = sum(batch_items(plan, int(k)) for k in failed)
        self.run.set_tags({"batch.mini_batches": str(total), "batch.items": str(items_total)})
        if done:
            print(f"Resuming: {len(done)} of {total} mini-batches done; scoring the other {len(todo)}.", flush=True)
        else:
            print(f"Scoring {counted(items_total, 'row' if plan['kind'] == 'rows' else 'file')} in "
                  f"{counted(total, 'mini-batch', 'mini-batches')} on {counted(s.parallel, 'worker')}.", flush=True)
        if s.parallel > 1:  # one thread per worker: the workers are the parallelism
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, "1")
        workers = min(s.parallel, MAX_WORKERS_PER_CORE * (os.cpu_count() or 1), max(len(todo), 1))
        if workers < s.parallel and len(todo) > workers:
            print(f"--parallel {s.parallel} is more than {MAX_WORKERS_PER_CORE}× this machine's {os.cpu_count()} cores: "
                  f"{workers} workers.", flush=True)
        started = time.monotonic()
        last_report = 0.0
        attempts: dict[int, int] = {}
        scored = scored_items = 0
        if todo:
            import multiprocessing
            from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
            from concurrent.futures.process import BrokenProcessPool

            init_batch_worker = self.worker_init or _init_worker
            ctx = multiprocessing.get_context("spawn")
            cfg = self.worker_config(plan)
            fmt = Path(s.output_file).suffix.lower()
            queue = list(reversed(todo))
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                       initializer=init_batch_worker, initargs=(cfg,))
            flying: dict[Any, int] = {}
            # when a worker dies (os._exit, out of memory, killed), every mini-batch in flight is lost with the pool and
            # nobody knows which one killed it: they become suspects, tried again one at a time, so only the culprit's
            # tries are counted
            suspects: list[int] = []
            full = _FullDisk()
            ok = False

            def submit(idx: int) -> bool:
                """Hand a mini-batch to the pool; False when the pool has broken since the last look (a worker died
                after the results just read were sent): the mini-batch was not started."""
                try:
                    flying[pool.submit(_task, idx, str(PARTS), fmt)] = idx
                    return True
                except BrokenProcessPool:
                    return False

            try:
                while queue or flying or suspects:
                    refused = False
                    if suspects:
                        if not flying:
                            if submit(suspects[0]):
                                suspects.pop(0)
                            else:
                                refused = True
                    else:
                        while queue and len(flying) < 2 * workers:
                            if not submit(queue[-1]):
                                refused = True
                                break
                            queue.pop()
                    finished, _ = wait(list(flying), timeout=0 if refused and not flying else PROGRESS_EVERY_S,
                                       return_when=FIRST_COMPLETED)
                    alone = len(flying) == 1
                    broken = refused
                    for fut in finished:
                        idx = flying.pop(fut)
                        try:
                            _, error, kind = fut.result()
                        except BrokenProcessPool:
                            error, kind, broken = "a worker process died (out of memory, or killed)", "", True
                            if not alone:
                                suspects.append(idx)
                                continue
                        if kind == "init":
                            raise EngineStopped(f"the scorer could not start: {error}")
                        if error is None:
                            done.add(idx)
                            scored += 1
                            scored_items += batch_items(plan, idx)
                            if full.waiting:
                                full.returned()
                            continue
                        if kind == "full" and full.wait(idx):  # not a try of the mini-batch: scored again later
                            queue.append(idx)
                            continue
                        attempts[idx] = attempts.get(idx, 0) + 1
                        if attempts[idx] <= s.retries:
                            print(f"mini-batch {idx}: {error} (try {attempts[idx] + 1} of {s.retries + 1})", flush=True)
                            (suspects if broken else queue).append(idx)
                            continue
                        failed[str(idx)] = error
                        failed_items += batch_items(plan, idx)
                        through_a_full_disk(lambda: _write_json(failed_log, failed), "the failed mini-batch is noted")
                        tries = f"{attempts[idx]} tr{'ies' if attempts[idx] != 1 else 'y'}"
                        print(f"mini-batch {idx}: failed after {tries} — {error}", flush=True)
                        if 0 <= s.error_threshold < failed_items:
                            self.progress(plan, done, failed, scored_items, started, total)  # the failures counted
                            unit = "row" if plan["kind"] == "rows" else "file"
                            raise EngineStopped(
                                f"{counted(failed_items, unit)} failed, more than "
                                f"--error-threshold {s.error_threshold}; the last error: {error}")
                    if broken:  # a new pool for the rest (also when it refused a mini-batch: it had broken)
                        suspects += [i for i in flying.values() if i not in suspects]
                        flying.clear()
                        _stop_workers(pool)
                        pool.shutdown(wait=False, cancel_futures=True)
                        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                   initializer=init_batch_worker, initargs=(cfg,))
                        if suspects:
                            print(f"a worker process died; trying the {len(suspects)} mini-batches it may have been "
                                  "scoring one at a time", flush=True)
                    now = time.monotonic()
                    if now - last_report >= PROGRESS_EVERY_S:
                        last_report = now
                        self.progress(plan, done, failed, scored_items, started, total)
                ok = True
            finally:
                if not ok:  # stopped (error threshold, init failure, cancel): the workers stop now, mid-mini-batch
                    _stop_workers(pool)
                pool.shutdown(wait=ok, cancel_futures=True)
        self.progress(plan, done, failed, scored_items, started, total)
        path = through_a_full_disk(lambda: self.append(plan), "the output file is written")
        print(f"Batch done: {counted(len(done), 'mini-batch', 'mini-batches')} scored, {len(failed)} failed; "
              f"{scored} scored by this process in {time.monotonic() - started:.1f} s → {path}", flush=True)
        if failed and not done:  # --error-threshold -1 lets failures pass, but a run that scored nothing is no result
            first = failed[min(failed, key=int)]
            raise EngineStopped(f"every mini-batch failed ({len(failed)} of {len(failed)}); nothing was scored. The "
                                f"first error: {first}")
        return 0

    def progress(self, plan, done, failed, scored_items, started, total) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        rate = scored_items / elapsed
        remaining = sum(batch_items(plan, i) for i in range(total) if i not in done and str(i) not in failed)
        metrics = {"mini_batches_done": len(done), "mini_batches_failed": len(failed),
                   "items_per_s": round(rate, 3), "eta_s": round(remaining / rate, 1) if rate > 0 else -1}
        for k, v in metrics.items():
            self.run.log(k, v)

    def append(self, plan: dict) -> str:
        """The parts, in input order, as one output file (outputs/ and the --out datastore folder)."""
        import shutil

        s = self.settings
        out = Path("outputs") / s.output_file
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        fmt = out.suffix.lower()
        parts = [PARTS / f"{idx:08d}.part" for idx in range(len(plan["batches"]))]
        parts = [p for p in parts if p.is_file()]  # the others failed
        if fmt == ".parquet":
            import pandas as pd

            frames = []
            for part in parts:
                with open(part, "rb") as fh:
                    frames.append(pickle.load(fh))
            (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_parquet(tmp, index=False)
        else:
            with open(tmp, "wb") as f:
                for n, part in enumerate(parts):
                    with open(part, "rb") as fh:
                        if fmt == ".csv" and n:
                            fh.readline()  # one header line, the first part's
                        shutil.copyfileobj(fh, f, 1 << 20)
        os.replace(tmp, out)
        if s.output:
            target = Path(os.environ[f"AZURE_ML_OUTPUT_{s.output}"]) / s.output_file
            shutil.copyfile(out, target.with_name(target.name + ".tmp"))
            os.replace(target.with_name(target.name + ".tmp"), target)
            return str(target)
        return str(out)


def _stop_workers(pool) -> None:
    """Terminate a pool's worker processes (``shutdown`` alone waits for the mini-batches they are scoring)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except (OSError, ValueError, AttributeError):
            pass


def _frame(result: Any):
    import pandas as pd

    return result if isinstance(result, pd.DataFrame) else pd.DataFrame({"result": list(result)})


class _FullDisk:
    """Mini-batches that could not be kept because the disk was full: not tries of theirs (a mini-batch retried at
    once failed its tries in a second and the run failed, its scored work kept only for a resume). Each waits
    (0.5 s, then up to 10 s apart) and is scored again, for up to ``AML_MAGICS_FINISH_WAIT_S``."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.delay = 0.5
        self.waiting = False

    def wait(self, idx: int) -> bool:
        """Whether mini-batch ``idx`` is to be scored again (after a pause); False once the disk has stayed full past
        the wait (then it counts as a failure)."""
        from ..core.config import env_number

        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + env_number("AML_MAGICS_FINISH_WAIT_S", 3600)
        if now > self.deadline:
            return False
        if not self.waiting:
            print(f"The disk is full: mini-batch {idx} waits for space and is scored again (free some; the wait is "
                  f"given up in {self.deadline - now:.0f} s).", flush=True)
            self.waiting = True
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, 10.0)
        return True

    def returned(self) -> None:
        print("Space returned: scoring goes on.", flush=True)
        self.deadline, self.delay, self.waiting = None, 0.5, False


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def run_batch(spec: dict, run, worker_init=None) -> int:
    return BatchEngine(run, spec, worker_init).main()
