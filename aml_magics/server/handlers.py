"""REST routes under ``/aml/api/`` for the JupyterLab extension, over ``core.Client`` only.

Every handler is a Jupyter ``APIHandler`` behind ``tornado.web.authenticated`` (the server's token or
login cookie, and XSRF for cookie-authenticated writes, as every Jupyter route). Store calls block, so
they run on a small thread pool, never on the server's event loop. Errors are JSON:
``{"message": ..., "reason": ...}`` with the status of the ``AmlError``.
"""
from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..core import checks
from ..core.client import Client
from ..core.errors import AmlError, InvalidInput
from ..core.names import DEFAULT_COMPUTE
from ..core.states import ACTIVE_STATES, TERMINAL_STATES

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aml-api")
CHARTED = 12  # metrics charted when the run view has not chosen (the first logged)
MAX_SERIES = 64  # metrics one read may ask for (the run view asks for at most 24: its URL stays under 64 KB)
SERIES_LIMIT = 2000  # points a chart needs, whatever the series' length (min/max buckets keep the extremes)
MAX_PAGE = 500
MAX_OFFSET = 2 ** 62  # offsets, cursors and versions beyond this are a client's mistake, not an overflow


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, float) and value != value:
        return None
    raise TypeError(f"cannot serialize {type(value).__name__}")


class AmlHandler(APIHandler):
    """Shared plumbing: the client, blocking calls off the loop, JSON in and out, clear errors."""

    @property
    def client(self) -> Client:
        return self.settings["aml_client"]()

    async def call(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(_POOL, lambda: fn(*args, **kwargs))

    def reply(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(payload, default=_plain, allow_nan=False) if payload is not None else "{}")

    def body(self) -> dict:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except (ValueError, RecursionError):
            raise InvalidInput("the request body is not JSON (or is nested too deeply)") from None
        if not isinstance(data, dict):
            raise InvalidInput("the request body must be a JSON object")
        return data

    def int_arg(self, name: str, default: int, low: int = 0, high: int = MAX_OFFSET) -> int:
        text = self.get_argument(name, None)
        if text is None or text == "":
            return default
        return checks.whole(name, text[:40] if len(text) > 40 else text, low, high)

    def run_id(self, run_id: str) -> str:
        """A run id from the URL as every route takes it: a full id, a unique part of one, a run's name or ``last``."""
        return self.client.runs.resolve_id(run_id)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, AmlError):
            message = str(exc)
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message or self._reason
        else:
            message = "an unexpected error happened on the server; see the Jupyter server's log"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": self._reason}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, AmlError):
            status = getattr(e, "http_status", 500)
            # a 401 here would read as "the Jupyter session expired": a workspace sign-in problem is a 403
            self.send_error(403 if status == 401 else status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class WorkspaceHandler(AmlHandler):
    @web.authenticated
    async def get(self):
        info = await self.call(lambda: self.client.workspace)
        self.reply({**asdict(info), "running": info.active_runs,
                    "states": {"active": list(ACTIVE_STATES), "terminal": list(TERMINAL_STATES)}})


class ExperimentsHandler(AmlHandler):
    @web.authenticated
    async def get(self):
        self.reply({"experiments": list(await self.call(self.client.experiments.list))})


class ComputesHandler(AmlHandler):
    @web.authenticated
    async def get(self):
        self.reply({"computes": list(await self.call(self.client.computes.list))})


ROW_METRICS = 8  # metrics a row of the runs list carries (the sidebar shows one; the run's view reads them all)


def _run_row(info, metrics: int | None = None) -> dict:
    """A run as the front end shows it; ``metrics``: at most that many of its metrics (the first logged), with
    ``metric_count`` saying how many it has."""
    finite = {k: v for k, v in info.latest_metrics.items()
              if isinstance(v, (int, float)) and v == v and abs(v) != float("inf")}
    shown = finite if metrics is None or len(finite) <= metrics else dict(list(finite.items())[:metrics])
    return {"id": info.run_id, "experiment": info.experiment, "status": info.status, "kind": info.kind,
            "name": info.display_name or info.run_id, "compute": info.compute, "created": info.created,
            "started": info.started, "ended": info.ended, "duration": info.duration,
            "parent": info.parent_run_id, "error": (info.error or "").strip().splitlines()[-1:] or None,
            "metrics": shown, "metric_count": len(finite)}


class RunsHandler(AmlHandler):
    @web.authenticated
    async def get(self):
        limit = self.int_arg("limit", 50, 1, MAX_PAGE)
        offset = self.int_arg("offset", 0)
        experiment = self.get_argument("experiment", None) or None
        status = self.get_arguments("status") or None
        tags = checks.tag_filter(self.get_arguments("tag"))  # ?tag=KEY=VALUE or ?tag=KEY (set to anything)
        runs = await self.call(self.client.runs.list, experiment=experiment, status=status, limit=limit, offset=offset,
                               tags=tags or None)
        self.reply({"runs": [_run_row(i, ROW_METRICS) for i in runs.infos], "total": runs.total, "more": runs.more,
                    "offset": offset, "limit": limit})

    @web.authenticated
    async def post(self):
        """Submit a notebook (a path under the server's root) as a run."""
        from ..core.types import RunSubmission

        data = self.body()
        path = data.get("path")
        if not isinstance(path, str) or not path.endswith(".ipynb"):
            raise InvalidInput("give the notebook's path, like {'path': 'lab/train.ipynb'}")
        root = Path(self.settings.get("server_root_dir", os.getcwd())).expanduser().resolve()
        target = (root / path).resolve()
        if root not in target.parents or not target.is_file():
            raise InvalidInput(f"notebook {path} not found under the server's root")
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput("parameters must be an object of NAME: VALUE")
        for field_name in ("experiment", "compute", "name"):
            if data.get(field_name) is not None and not isinstance(data[field_name], str):
                raise InvalidInput(f"{field_name} must be a string")
        sub = RunSubmission(kind="notebook", experiment=data.get("experiment") or target.stem,
                            source_dir=target.parent, entry=target.name, compute=data.get("compute") or DEFAULT_COMPUTE,
                            parameters=parameters, display_name=data.get("name") or None)
        run = await self.call(self.client.runs.submit, sub)
        info = await self.call(self.client.runs.get, run.id)
        self.reply(_run_row(info), status=201)


class RunHandler(AmlHandler):
    @web.authenticated
    async def get(self, run_id: str):
        info = await self.call(self.client.runs.get, run_id)  # resolves "last" and unique parts
        row = _run_row(info)
        row.update(tags=info.tags, params=info.params, spec_kind=info.spec.get("kind"),
                   primary_metric=info.spec.get("primary_metric"), error_text=info.error)
        self.reply(row)


class TrialsHandler(AmlHandler):
    """A sweep's or AutoML run's trials as the leaderboard every front end shows (``core.leaderboard``)."""

    @web.authenticated
    async def get(self, run_id: str):
        from ..core import leaderboard

        def board():
            info = self.client.runs.get(run_id)
            children = self.client.runs.list(parent_run_id=info.run_id, limit=None).infos
            return leaderboard.build(children, info.spec.get("primary_metric"), info.spec.get("goal", "max"), info.kind)

        b = await self.call(board)
        self.reply({"columns": b.columns, "rows": b.rows, "sort": b.sort, "best": b.best, "pinned": leaderboard.PINNED})


class CancelHandler(AmlHandler):
    @web.authenticated
    async def post(self, run_id: str):
        info = await self.call(self.client.runs.cancel, run_id, None)
        self.reply(_run_row(info))


class MetricsHandler(AmlHandler):
    """The series the run view charts. ``?since=NAME:CURSOR`` (one per metric; a name may hold commas and colons):
    only the points after the cursor. ``?name=NAME``: a first read, downsampled for display. Neither: first reads of
    the first ``CHARTED`` metrics logged. Metrics not asked for are not read (a run may log thousands: the run view
    charts a few and lists all in its table). ``count`` is how many scalar metrics the run has."""

    @web.authenticated
    async def get(self, run_id: str):
        since = {}
        for part in self.get_arguments("since"):
            if not part:
                continue
            name, _, cursor = part.rpartition(":")
            if not name:
                raise InvalidInput(f"since={checks.shown(part)} is not NAME:CURSOR; give one since=NAME:CURSOR per "
                                   "metric, the cursor from the previous answer")
            since[name] = checks.whole(f"the cursor of {checks.shown(name)}", cursor[:40], 0, MAX_OFFSET)
        wanted = [n for n in self.get_arguments("name") if n]
        if len(since) + len(wanted) > MAX_SERIES:
            raise InvalidInput(f"{len(since) + len(wanted)} metrics asked for; ask for at most {MAX_SERIES} at once")
        run_id = await self.call(self.run_id, run_id)  # an unknown run is a 404, not an empty answer
        names = await self.call(self.client.runs.metric_names, run_id)
        if since or wanted:
            asked = set(since) | set(wanted)
            chosen = [n for n in names if n in asked]  # a name the run does not have (yet) is left out
        else:
            chosen = names[:CHARTED]

        def read():
            out = {}
            for name in chosen:
                if name not in since:  # a first read: the whole series as a chart draws it (compiled, summarized)
                    steps, _, values, total, cursor = self.client.runs.display_series(run_id, name, SERIES_LIMIT)
                    out[name] = {"steps": steps, "values": _finite(values), "cursor": cursor, "total": total,
                                 "downsampled": total > len(steps)}
                    continue
                points, cursor = self.client.runs.metric_series(run_id, name, since[name])
                out[name] = {"steps": [p[0] for p in points], "values": _finite([p[2] for p in points]),
                             "cursor": cursor, "total": cursor, "downsampled": False}
            return out

        self.reply({"series": await self.call(read), "count": len(names)})


def _finite(values) -> list:
    return [v if v == v and abs(v) != float("inf") else None for v in values]


LOG_TAIL_BYTES = 256 * 1024


class LogsHandler(AmlHandler):
    @web.authenticated
    async def get(self, run_id: str):
        offset = self.int_arg("offset", 0)
        run_id = await self.call(self.run_id, run_id)
        # a view of the log's end (it keeps 400 lines): a run that printed gigabytes is not read whole
        text, new_offset = await self.call(self.client.runs.read_log, run_id, offset, LOG_TAIL_BYTES)
        self.reply({"text": text, "offset": new_offset})


class ModelsHandler(AmlHandler):
    @web.authenticated
    async def get(self):
        limit = self.int_arg("limit", 200, 1, 5000)
        models = await self.call(self.client.models.list, self.get_argument("name", None) or None)
        rows = [{"name": m.name, "version": m.version, "framework": m.framework, "run_id": m.run_id,
                 "created": m.created, "tags": m.tags, "description": m.description} for m in list(models)[:limit]]
        self.reply({"models": rows, "total": len(models)})

    @web.authenticated
    async def post(self):
        data = self.body()
        name, run_id = data.get("name"), data.get("run_id")
        if not isinstance(name, str) or not isinstance(run_id, str) or not name or not run_id or not isinstance(
                data.get("path") or "", str):
            raise InvalidInput("give {'run_id': RUN, 'name': MODEL, 'path': 'outputs/model.pkl'} (strings)")
        if data.get("tags") is not None and not isinstance(data["tags"], dict):
            raise InvalidInput("tags must be an object of NAME: VALUE")
        model = await self.call(self.client.models.register, name, data.get("path") or "outputs/model.pkl",
                                run_id=run_id, tags=data.get("tags") or None)
        self.reply({"name": model.name, "version": model.version, "framework": model.framework}, status=201)


def _deployment_row(d) -> dict:
    return {"name": d.name, "state": d.state, "scoring_uri": d.scoring_uri, "models": d.models, "auth": d.auth,
            "error": (d.error or "").strip().splitlines()[0][:300] if d.error and d.state != "Healthy" else None,
            "updated": d.updated}


class DeploymentsHandler(AmlHandler):
    @web.authenticated
    async def get(self):
        self.reply({"deployments": [_deployment_row(d) for d in await self.call(self.client.deployments.list)]})

    @web.authenticated
    async def post(self):
        data = self.body()
        model = data.get("model")
        if not isinstance(model, str) or not model or not isinstance(data.get("name") or "", str):
            raise InvalidInput("give {'model': 'NAME[:VERSION]', 'name': 'service-name'} (strings)")
        service = await self.call(self.client.deployments.create, data.get("name") or None, [model])
        info = await self.call(self.client.deployments.get_info, service.name)
        self.reply(_deployment_row(info), status=201)


class DeploymentHandler(AmlHandler):
    @web.authenticated
    async def delete(self, name: str):
        await self.call(self.client.deployments.delete, name)
        self.reply({"deleted": name})


class ScoreHandler(AmlHandler):
    """Test a service from the sidebar: the server adds the key, the browser never sees it."""

    @web.authenticated
    async def post(self, name: str):
        import time

        data = self.body()
        service = await self.call(self.client.deployments.get, name)
        started = time.perf_counter()
        answer = await self.call(service.run, json.dumps(data.get("input", data)))
        self.reply({"answer": answer, "ms": round((time.perf_counter() - started) * 1000, 1)})


ROUTES = [
    (r"workspace", WorkspaceHandler),
    (r"experiments", ExperimentsHandler),
    (r"computes", ComputesHandler),
    (r"runs", RunsHandler),
    (r"runs/(?P<run_id>[^/]+)", RunHandler),
    (r"runs/(?P<run_id>[^/]+)/cancel", CancelHandler),
    (r"runs/(?P<run_id>[^/]+)/trials", TrialsHandler),
    (r"runs/(?P<run_id>[^/]+)/metrics", MetricsHandler),
    (r"runs/(?P<run_id>[^/]+)/logs", LogsHandler),
    (r"models", ModelsHandler),
    (r"deployments", DeploymentsHandler),
    (r"deployments/(?P<name>[^/]+)", DeploymentHandler),
    (r"deployments/(?P<name>[^/]+)/score", ScoreHandler),
]
