"""Local scoring services: a detached supervisor per service holds the socket and restarts the server; the
record lives in the store (``DeploymentRows``), the files in ``deployments/<name>/`` (``score.py``, ``spec.json``,
the 0600 ``keys.json``, ``service.log``, an image record). One deploy, update, restart or delete per name at a
time, across kernels and tabs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ...core import checks
from ...core.contract import DeploymentsBackend
from ...core.errors import BackendUnavailable, Conflict, InvalidInput, NotFound, StorageError, storage_reason
from ...core.states import SERVICE_ALIVE_STATES
from ...core.types import DeploymentInfo
from . import procs
from .store import DeploymentRows
from .supervisor import UPDATE_FAILED

_KEPT = ("score.py", "spec.json", "image/manifest.json", "image/Dockerfile")  # what an update rewrites

if TYPE_CHECKING:  # pragma: no cover
    from .backend import LocalBackend


class LocalDeployments(DeploymentsBackend):
    """Local scoring services: records in the store, files in ``deployments/<name>/``, one supervisor each."""

    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.store = backend.store
        self.rows = DeploymentRows(backend.store)
        self.root = backend.path / "deployments"

    def _row(self, name: str):
        row = self.rows.get(name)
        if row is None:
            raise NotFound.with_suggestions("service", name, self.rows.names(), hint="list them with %aml services")
        return row

    def _info(self, row) -> DeploymentInfo:
        spec = _spec_of(self.root / row["name"])
        return DeploymentInfo(name=row["name"], state=row["state"], scoring_uri=row["scoring_uri"],
                              models=json.loads(row["models"]), host=row["host"], port=row["port"],
                              auth=spec.get("auth", True), restarts=row["restarts"], error=row["error"],
                              created=row["created"], updated=row["updated"])

    def _reconcile(self, row):
        """A record whose supervisor is gone is shown as it is: not Healthy."""
        if row["state"] in SERVICE_ALIVE_STATES and row["supervisor_pid"] and not procs.is_alive(
                row["supervisor_pid"], row["supervisor_start"]):
            self.rows.fail_if_still(row["name"], row["state"], "its supervisor process is gone (killed, or the "
                                                               "machine restarted); redeploy with --update")
            return self._row(row["name"])
        return row

    def get(self, name: str):
        return self._info(self._reconcile(self._row(name)))

    def list(self):
        return [self._info(self._reconcile(r)) for r in self.rows.all()]

    def keys(self, name: str) -> tuple[str, str]:
        self._row(name)
        data = json.loads((self.root / name / "keys.json").read_text())
        return data["primary"], data["secondary"]

    def regenerate_key(self, name: str, which: str) -> None:
        import secrets

        which = which.lower()
        if which not in ("primary", "secondary"):
            raise InvalidInput("key type must be Primary or Secondary")
        self._row(name)
        with self._one_at_a_time(name):
            folder = self.root / name
            data = json.loads((folder / "keys.json").read_text())
            data[which] = secrets.token_urlsafe(32)
            try:
                _write_private(folder / "keys.json", json.dumps(data))
            except OSError as exc:  # a full disk: the keys stay as they were (the file is replaced whole or not)
                reason = storage_reason(exc)
                if reason is None:
                    raise
                raise StorageError(f"cannot write the new {which} key of service {name}: {reason}; both keys are "
                                   "unchanged — free space or make the workspace writable, then regenerate it again"
                                   ) from None
            row = self._row(name)
            if self._signal(row, signal.SIGHUP):  # a new server process picks the keys up; no request fails
                self._wait(name, 120, after=row["updated"])

    def logs(self, name: str, tail: int | None = None) -> str:
        from ...scoring.logfile import read_tail

        self._row(name)
        return read_tail(self.root / name / "service.log", tail)

    def _one_at_a_time(self, name: str):
        """Only one deploy, update, restart or delete of a service at a time, across kernels and tabs: the others
        are refused at once (a double click on Deploy must not start two supervisors on two ports)."""
        import contextlib

        from filelock import FileLock, Timeout

        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / f"{name}.lock"), timeout=0)

        @contextlib.contextmanager
        def held():
            try:
                lock.acquire()
            except Timeout:
                raise Conflict(f"service {name} is being deployed or changed right now (another tab or kernel); "
                               f"wait for it to finish, then use --update to change it") from None
            try:
                yield
            finally:
                lock.release()

        return held()

    def deploy(self, name: str, models: list, score_path: Path | None, *, host: str, port: int | None,
               auth: bool, update: bool, timeout: float, request_timeout_s: float = 60.0,
               max_body_bytes: int = 100 * 1024 * 1024, environment: str | None = None,
               instance_type: str | None = None, workers: int | None = None):
        with self._one_at_a_time(name):
            return self._deploy(name, models, score_path, host=host, port=port, auth=auth, update=update,
                                timeout=timeout, request_timeout_s=request_timeout_s, max_body_bytes=max_body_bytes,
                                environment=environment, workers=workers)

    def _deploy(self, name: str, models: list, score_path: Path | None, *, host: str, port: int | None,
                auth: bool, update: bool, timeout: float, request_timeout_s: float, max_body_bytes: int,
                environment: str | None, workers: int | None = None):
        import secrets
        import socket

        from ...scoring.default_scorer import default_score_py

        existing = self.rows.get(name)
        if existing is not None and not update:
            raise Conflict(f"service {name} exists; add --update to swap its model in place, or delete it first")
        if existing is None and update:
            raise NotFound(f"service {name} does not exist; deploy it without --update")
        infos = [self.backend.models.get(m, v) for m, v in models]
        if not infos:
            raise InvalidInput("name at least one model to deploy, as NAME or NAME:VERSION")
        twice = next((m.id for i, m in enumerate(infos) if m.id in [n.id for n in infos[:i]]), None)
        if twice is not None:  # (``m1`` and ``m1:1`` are the same model too)
            raise InvalidInput(f"model {twice} is named twice; name each model to deploy once")
        own = _spec_of(self.root / name) if existing is not None else {}
        kept_score = _own_score(self.root / name) if existing is not None and score_path is None else None
        if kept_score is not None:
            source = kept_score
        elif score_path is not None:
            score_path = checks.expand_home(score_path)
            if score_path.is_dir():
                raise InvalidInput(f"score script {score_path} is a folder; give the .py file with init() and run()")
            if not score_path.is_file():
                raise NotFound(f"score script {score_path} not found")
            source = score_path.read_text(encoding="utf-8")
        else:
            source = default_score_py(infos[0].framework, infos[0].name, infos[0].version)
            if source is None:
                raise InvalidInput(f"model {infos[0].id} ({infos[0].framework or 'unknown framework'}) has no default "
                                   "scorer: give a score.py with init() and run(raw_data) (--score score.py)")
        # an update keeps what it is not given: its own score.py (above) and environment (it took the default
        # scorer and the kernel's Python instead)
        if existing is not None and environment is None:
            python, environment = own.get("python"), own.get("environment")
        else:
            python = self.backend.environments.python(environment) if environment else None
        if existing is not None:
            port, host = existing["port"], existing["host"]
            if workers is None:  # an update keeps the service's workers unless given (it set them back to 1)
                workers = own.get("workers") or 1
        elif port is None:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        folder = self.root / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            kept = _snapshot(folder) if existing is not None else {}  # put back if the update does not start
        except OSError as exc:
            raise _not_written(name, exc) from None
        model_paths = {}
        for m in infos:
            model_paths[m.name] = m.path
            model_paths[m.id] = m.path
        model_dir = str(Path(infos[0].path).parent) if len(infos) == 1 else str(self.backend.path / "models")
        spec = {"entry_script": "score.py", "model_dir": model_dir, "model_paths": model_paths, "host": host,
                "port": port, "auth": auth, "models": [m.id for m in infos], "timeout_s": request_timeout_s,
                "max_body": max_body_bytes, "python": python, "environment": environment, "workers": workers or 1}
        try:
            _write_atomic(folder / "score.py", source)
            _write_atomic(folder / "spec.json", json.dumps(spec, indent=2))
            if not (folder / "keys.json").exists():
                _write_private(folder / "keys.json", json.dumps({"primary": secrets.token_urlsafe(32),
                                                                 "secondary": secrets.token_urlsafe(32)}))
            self._image_record(folder, spec, infos)
        except OSError as exc:  # a full disk: the service as it was (an update's files back; a new one's gone)
            try:
                if existing is None:
                    shutil.rmtree(folder)
                else:
                    _restore(folder, kept)
            except OSError:
                pass
            raise _not_written(name, exc) from None
        shown_host = f"[{host}]" if ":" in host else host
        uri = f"http://{shown_host}:{port}/score"
        if existing is None:
            if not self.rows.insert(name, spec["models"], host, port, uri):  # deployed meanwhile without the lock
                raise Conflict(f"service {name} was deployed meanwhile; use --update to change it")
        else:
            self.rows.set_models(name, spec["models"])
        row = self._row(name)
        if existing is not None and procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
            before = row["updated"]
            self._signal(row, signal.SIGHUP)
            self._wait(name, timeout, after=before)
            row = self._row(name)
            if row["state"] == "Healthy" and (row["error"] or "").startswith(UPDATE_FAILED):
                # the new version did not start and the old one still serves: its files and models are the
                # service's again (a restart after a crash would start the broken one), and the deploy says so
                _restore(folder, kept)
                self.rows.set_models(name, json.loads(existing["models"]))
                raise InvalidInput(f"service {name}: {row['error']}, unchanged (the whole log: "
                                   f"%aml service {name} --logs)")
        else:
            if existing is not None:  # its supervisor is gone (killed, a reboot): what is left of its group (servers
                # still holding the port, which a delete could then no longer find) goes first, as in a restart;
                # and the record's stale Failed is not this start's outcome
                procs.signal_group(row["supervisor_pid"], row["supervisor_start"], procs.SIGKILL)
                self.rows.set_state(name, "Transitioning", None)
            self._spawn(name)
            self._wait(name, timeout)
        return self.get(name)

    def _image_record(self, folder: Path, spec: dict, infos) -> None:
        """What a container build needs (Dockerfile, score.py, model references), kept with the service."""
        image = folder / "image"
        image.mkdir(exist_ok=True)
        (image / "manifest.json").write_text(json.dumps({"models": spec["models"], "entry_script": "score.py",
                                                         "model_paths": spec["model_paths"]}, indent=2))
        (image / "Dockerfile").write_text(
            "FROM mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest\n"
            "COPY score.py /var/azureml-app/score.py\n"
            + "".join(f"COPY models/{m.name}/{m.version} /var/azureml-app/azureml-models/{m.name}/{m.version}\n"
                      for m in infos)
            + "ENV AZUREML_ENTRY_SCRIPT=score.py AZUREML_MODEL_DIR=/var/azureml-app/azureml-models\n"
            "CMD [\"runsvdir\", \"/var/runit\"]\n")

    def build_image(self, name: str) -> str:
        import subprocess

        self._row(name)
        context = self.root / name / "image"
        docker = shutil.which("docker")
        engine = docker and subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0
        if not engine:
            raise BackendUnavailable(f"no Docker engine runs here, so the image was not built; its build context "
                                     f"(Dockerfile, manifest.json) is at {context}")
        tag = f"aml-magics/{name}:latest"
        staged = context / "build"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        shutil.copyfile(self.root / name / "score.py", staged / "score.py")
        shutil.copyfile(context / "Dockerfile", staged / "Dockerfile")
        spec = json.loads((self.root / name / "spec.json").read_text())
        for ref in spec["models"]:
            model_name, _, version = ref.rpartition(":")
            model = self.backend.models.get(model_name, int(version))
            src = Path(model.path).parent
            shutil.copytree(src, staged / "models" / model.name / str(model.version))
        out = subprocess.run([docker, "build", "-t", tag, str(staged)], capture_output=True, text=True)
        if out.returncode != 0:
            raise InvalidInput(f"docker build failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
        return f"Built image {tag}"

    def _last_log_line(self, name: str) -> str:
        """The last line the supervisor wrote (its error, when it died of one)."""
        try:
            with open(self.root / name / "supervisor.log", "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1][-300:] if lines else "it wrote nothing (see %aml service NAME --logs)"

    def _spawn(self, name: str) -> None:
        import subprocess
        import sys

        log = open(self.root / name / "supervisor.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "aml_magics.backends.local.supervisor", str(self.backend.path),
                                 name], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=str(self.backend.path))
        log.close()
        from .host import _reap_later

        _reap_later(proc)
        self.rows.set_supervisor(name, proc.pid, procs.start_token(proc.pid))

    def _wait(self, name: str, timeout: float, after: float | None = None) -> None:
        deadline = time.monotonic() + timeout
        looked = time.monotonic()
        while time.monotonic() < deadline:
            row = self._row(name)
            if row["state"] in ("Healthy", "Failed") and (after is None or row["updated"] > after):
                if row["state"] == "Failed":
                    raise InvalidInput(f"service {name} failed to start: {row['error']}")
                return
            if time.monotonic() - looked >= 0.5:  # a supervisor that died starting: said now, not at the deadline
                looked = time.monotonic()
                if row["supervisor_pid"] and not procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
                    # what is left of its group (a server still in init()) would serve under a Failed record
                    procs.signal_group(row["supervisor_pid"], row["supervisor_start"], procs.SIGKILL)
                    self.rows.fail_if_still(name, row["state"], "its supervisor exited while starting: "
                                            + self._last_log_line(name))
                    continue  # its own last word, when it wrote one, stays
            time.sleep(0.05)
        raise InvalidInput(f"service {name} is still starting after {timeout:g} s; see %aml service {name} --logs")

    def _signal(self, row, sig) -> bool:
        return procs.send_signal(row["supervisor_pid"], row["supervisor_start"], sig)

    def restart(self, name: str, timeout: float = 60.0) -> bool:
        """Start a service again whose supervisor is gone (a crash, a reboot); False when it is alive."""
        with self._one_at_a_time(name):
            return self._restart(name, timeout)

    def _restart(self, name: str, timeout: float) -> bool:
        row = self._row(name)
        if procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
            return False
        # what is left of its group (an orphaned server); never a stranger that now has the pid
        procs.signal_group(row["supervisor_pid"], row["supervisor_start"], procs.SIGKILL)
        self.rows.set_state(name, "Transitioning", None)
        self._spawn(name)
        self._wait(name, timeout)
        return True

    def delete(self, name: str, timeout: float = 40.0) -> None:  # noqa: D102
        self._row(name)
        with self._one_at_a_time(name):
            self._delete(name, timeout)

    def _delete(self, name: str, timeout: float) -> None:
        row = self._row(name)
        if self._signal(row, signal.SIGTERM):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
                time.sleep(0.05)
            if procs.is_alive(row["supervisor_pid"], row["supervisor_start"]):
                procs.signal_group(row["supervisor_pid"], row["supervisor_start"], procs.SIGKILL)
        else:  # its supervisor is gone (killed): what is left of its group, never a stranger that now has the pid
            procs.signal_group(row["supervisor_pid"], row["supervisor_start"], procs.SIGKILL)
        self.rows.delete(name)
        shutil.rmtree(self.root / name, ignore_errors=True)


def _not_written(name: str, exc: OSError) -> Exception:
    """A deploy whose files could not be written: one line (a full disk, a read-only workspace), or the error."""
    reason = storage_reason(exc)
    if reason is None:
        return exc
    return StorageError(f"cannot write the files of service {name}: {reason}; nothing was deployed or changed — free "
                        "space or make the workspace writable, then deploy again")


def _write_atomic(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    """``path`` replaced whole by ``text``, or (a full disk) left as it was, with no temporary file beside it."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)  # (a file left by a killed writer keeps its mode through O_CREAT)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_private(path: Path, text: str) -> None:
    """Secrets: a 0600 file, replaced atomically."""
    _write_atomic(path, text, 0o600)


def _spec_of(folder: Path) -> dict:
    """A service's spec.json ({} when it cannot be read: what it held is then the defaults)."""
    try:
        spec = json.loads((folder / "spec.json").read_text())
    except (OSError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def _own_score(folder: Path) -> str | None:
    """A service's own score.py, which an update without one keeps (None: it has the generated default scorer, which
    an update makes again for the new model, or none can be read)."""
    try:
        source = (folder / "score.py").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    from ...scoring.default_scorer import GENERATED_MARK

    return None if source.startswith(GENERATED_MARK) else source


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {rel: (folder / rel).read_bytes() for rel in _KEPT if (folder / rel).is_file()}


def _restore(folder: Path, kept: dict[str, bytes]) -> None:
    for rel, data in kept.items():
        try:
            if (folder / rel).read_bytes() == data:
                continue  # (not replaced: a full disk stopped the update before it)
        except OSError:
            pass
        _write_atomic(folder / rel, data)
