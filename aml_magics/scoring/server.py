"""The scoring web service: Azure ML's ``score.py`` contract on uvicorn (Starlette's responses; three routes need no
router, so none sits in the way of each request).

    python -m aml_magics.scoring.server --dir DEPLOYMENT_DIR (--fd N | --host H --port P)

``init()`` runs once before the first request; ``run(raw_data)`` gets each request body as a
string, one request at a time on the main thread (the HTTP server's event loop runs on another), with a
time limit it cannot swallow (``runner``).
Routes: ``GET /`` liveness ("Healthy", no key, for health probes; it answers while ``run()`` works),
``POST /score`` and ``GET /swagger.json`` (key required by default: ``Authorization: Bearer <key>``,
compared in constant time). Every error is JSON ``{"message": ...}`` with a 4xx/5xx status: 400 when
``run()`` raises ``BadRequest`` (the client's mistake), 500 for any other exception; ``run()`` raising
never stops the service, and no traceback reaches the client (it goes to the service log, which is
private and bounded: ``logfile``). The HTTP layer closes idle and slow connections, refuses oversized
headers and caps connections (``guard``).
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import importlib.util
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..core import children
from ..core.plain import plain_value
from . import BadRequest
from .runner import Busy, MainThreadRunner, RunStopped, RunTimeout, outcome

log = logging.getLogger("aml_magics.scoring")

DEFAULT_MAX_BODY = 100 * 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
NOT_FOUND = ("The requested URL was not found on the server. If you entered the URL manually please check your "
             "spelling and try again.")
NOT_ALLOWED = "The method is not allowed for the requested URL."
UNAUTHORIZED = "missing or wrong key: send 'Authorization: Bearer <key>' (service.get_keys())"


class BadInput(Exception):
    pass


def decorated_parameters(run) -> list | None:
    """run()'s parameters when inference-schema decorates it (the server then calls ``run(**body)``)."""
    try:
        from inference_schema.schema_util import is_schema_decorated
    except ImportError:
        return None
    if not is_schema_decorated(run):
        return None
    import inspect

    return list(inspect.signature(run).parameters.values())


def swagger_document(run, title: str) -> dict | None:
    """A Swagger 2.0 description of /score from run()'s inference-schema decorators (None without them)."""
    if decorated_parameters(run) is None:
        return None
    from inference_schema.schema_util import get_input_schema, get_output_schema

    return {
        "swagger": "2.0",
        "info": {"title": title, "description": "Scoring service deployed with aml-magics", "version": "1.0"},
        "schemes": ["http"], "consumes": ["application/json"], "produces": ["application/json"],
        "securityDefinitions": {"Bearer": {"type": "apiKey", "name": "Authorization", "in": "header",
                                           "description": "Bearer <key>"}},
        "paths": {
            "/": {"get": {"operationId": "ServiceHealthCheck", "responses": {"200": {"description": "Healthy"}}}},
            "/score": {"post": {
                "operationId": "RunMLService", "security": [{"Bearer": []}],
                "parameters": [{"name": "serviceInputPayload", "in": "body", "required": True,
                                "schema": {"$ref": "#/definitions/ServiceInput"}}],
                "responses": {"200": {"description": "the result of run()",
                                      "schema": {"$ref": "#/definitions/ServiceOutput"}},
                              "default": {"description": "an error", "schema": {"$ref": "#/definitions/ErrorResponse"}}},
            }},
        },
        "definitions": {"ServiceInput": get_input_schema(run), "ServiceOutput": get_output_schema(run),
                        "ErrorResponse": {"type": "object", "properties": {"message": {"type": "string"}}}},
    }


def parse_decorated(body: str, content_type: str, parameters: list) -> dict:
    """The keyword arguments of a decorated run() from a JSON object body (azmlinfsrv's rules and messages)."""
    import inspect

    if "json" not in content_type.lower():
        raise BadInput("Expects Content-Type to be application/json")
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadInput(f"POST body could not be decoded as JSON: {exc}" if body else
                       "POST body is empty. Expecting a JSON dictionary.") from None
    if not isinstance(payload, dict):
        raise BadInput("POST body should be a JSON dictionary.")
    kwargs = {}
    for p in parameters:
        value = payload.get(p.name, p.default)
        if value is inspect.Parameter.empty:
            raise BadInput(f"A value is not provided for the {p.name!r} parameter.")
        kwargs[p.name] = value
    return kwargs


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def load_entry_script(path: Path):
    """Import score.py as a module (its folder on sys.path, as Azure ML does)."""
    sys.path.insert(0, str(path.parent))
    from ..v1 import install_from_environment

    install_from_environment()  # a score.py deployed from an Azure ML v1 notebook imports azureml.core
    spec = importlib.util.spec_from_file_location("score", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["score"] = module
    spec.loader.exec_module(module)
    for name in ("init", "run"):
        if not callable(getattr(module, name, None)):
            raise RuntimeError(f"{path.name} has no {name}() function: the scoring contract is init() and run(raw_data)")
    return module


class ScoringService:
    def __init__(self, entry_script: Path, keys: list[str] | None, *, max_body: int = DEFAULT_MAX_BODY,
                 timeout: float = DEFAULT_TIMEOUT_S, ready_file: Path | None = None):
        self.entry_script = entry_script
        self.keys = [k.encode() for k in keys or [] if k]
        self.max_body = max_body
        self.timeout = timeout
        self.ready_file = ready_file
        self.module = None
        self.parameters: list | None = None
        self.swagger_doc: dict | None = None
        self.server = None  # the uvicorn server, set by main(); draining stops its listeners
        self.draining = False
        self.runner = MainThreadRunner()  # main() hands the main thread to it
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app = self  # the ASGI application: three routes need no router
        self.routes = {"/": ("GET", self.health), "/score": ("POST", self.score), "/swagger.json": ("GET", self.swagger)}

    async def __call__(self, scope, receive, send) -> None:
        """ASGI: the three routes, with the same 404/405 answers as azureml-inference-server-http (Flask)."""
        if scope["type"] == "http":
            route = self.routes.get(scope["path"])
            if route is None:
                response = error(404, NOT_FOUND)
            elif scope["method"] != route[0] and not (route[0] == "GET" and scope["method"] == "HEAD"):
                response = error(405, NOT_ALLOWED)
                response.headers["allow"] = "GET, HEAD" if route[0] == "GET" else route[0]
            else:
                try:
                    response = await route[1](scope, receive)
                except Exception:  # noqa: BLE001 - a fault of ours: logged, answered 500, the service goes on
                    log.error("%s %s failed:\n%s", scope["method"], scope["path"], traceback.format_exc())
                    response = error(500, "internal error of the scoring service")
                if response is None:  # the client went away before its request was whole
                    return
            if self.draining:
                response.headers["connection"] = "close"
            await response(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except BaseException:  # noqa: BLE001 - init() failed: uvicorn logs the reason and exits
                    await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.module = await self.runner.call(lambda: load_entry_script(self.entry_script), None)
        self.parameters = decorated_parameters(self.module.run)
        self.swagger_doc = swagger_document(self.module.run, self.entry_script.parent.name)
        await self.runner.call(self.module.init, None)  # on the thread run() will use, as score.py expects
        if self.swagger_doc is None and callable(getattr(self.module, "swagger_document", None)):
            try:  # a scorer that describes its own input (the generated default scorer does, from its model)
                self.swagger_doc = await self.runner.call(self.module.swagger_document, None)
            except Exception:  # noqa: BLE001 - a service without a schema still serves
                log.warning("swagger_document() raised:\n%s", traceback.format_exc())
        if self.ready_file is not None:
            self.ready_file.write_text(str(os.getpid()))
        log.warning("scoring service ready (pid %s)", os.getpid())

    def start_draining(self) -> None:
        """Before an update hands over: stop accepting (the new server takes new connections) and
        close each kept-alive connection after its next answer, so no client is cut off mid-request."""
        self.draining = True
        for listener in getattr(self.server, "servers", []) or []:
            listener.close()
        acceptor = getattr(self.server, "acceptor", None)
        if acceptor is not None:  # a worker of several: it accepts connections itself (balance.py)
            acceptor.stop()
        log.warning("draining: new connections go to the updated service")

    def authorized(self, scope) -> bool:
        if not self.keys:
            return True
        header = header_of(scope, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip().encode()
        ok = False
        for key in self.keys:  # every key is compared, in constant time
            ok |= hmac.compare_digest(given, key)
        return ok

    async def health(self, scope, receive) -> Response:
        return PlainTextResponse("Healthy")

    async def read_body(self, scope, receive) -> bytes | Response | None:
        """The request body; a 413 answer when it is too large; None when the client went away (a body too slow to
        arrive is answered 408 by the protocol, which then closes the connection: guard.py)."""
        length = header_of(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return error(413, f"the request body is over the service's limit of {self.max_body} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return error(413, f"the request body is over the service's limit of {self.max_body} bytes")
            if not message.get("more_body", False):
                return chunk if not chunks else b"".join(chunks) + chunk
            chunks.append(chunk)

    def run_call(self, scope, body: bytes) -> Callable[[], Any] | Response:
        """The call of run() a request body makes (its text, or inference-schema's keyword arguments), or the
        error answer when the body cannot make one."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return error(400, f"Input cannot be decoded as UTF-8: {exc}")
        run = self.module.run
        if self.parameters is None:
            return lambda: run(text)
        try:
            kwargs = parse_decorated(text, header_of(scope, b"content-type") or "", self.parameters)
        except BadInput as exc:
            return error(415 if str(exc).startswith("Expects Content-Type") else 400, str(exc))
        return lambda: run(**kwargs)

    def answer(self, result: Any = None, exc: BaseException | None = None) -> Response | bytes:
        """What a request gets for run()'s outcome: its value as JSON bytes, the ``Response`` it returned, or an
        error answer for what it raised (its traceback goes to the service log, never to the client)."""
        if exc is not None:
            if isinstance(exc, (RunTimeout, RunStopped)):
                log.error("run() was stopped after %g s", self.timeout)
                return error(504, f"run() took longer than {self.timeout:g} s")
            if isinstance(exc, Busy):
                return error(503, f"the service is still stopping a run() that took longer than {self.timeout:g} s; "
                                  "try again shortly")
            if isinstance(exc, BadRequest):
                return error(400, str(exc) or "the request is not what this service expects")
            log.error("run() raised:\n%s", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            return error(500, RUN_FAILED)
        if isinstance(result, Response):
            return result
        try:
            return json.dumps(result, allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError):
            pass
        try:  # what run() commonly returns as it is: model.predict()'s array, a numpy number, a DataFrame
            return json.dumps(result, allow_nan=False, default=plain_value).encode()
        except ValueError as err:
            log.error("run() returned a value that is not JSON: %s", err)
            return error(500, "run() returned NaN or an infinity, which JSON cannot carry; replace them (with None, "
                              "say) before returning")
        except (TypeError, RecursionError) as err:
            log.error("run() returned a value that is not JSON: %s", err)
            return error(500, "run() returned a value that cannot be sent as JSON (return lists, dicts, numbers, "
                              "strings, numpy arrays or DataFrames)")

    async def score(self, scope, receive) -> Response | None:
        if not self.authorized(scope):
            return error(401, UNAUTHORIZED)
        body = await self.read_body(scope, receive)
        if not isinstance(body, bytes):
            return body
        call = self.run_call(scope, body)
        if isinstance(call, Response):
            return call
        try:
            result = await self.runner.call(call, self.timeout)
        except (RunTimeout, Exception) as exc:
            answer = self.answer(exc=exc)
        else:
            answer = self.answer(result)
        return Response(answer, media_type="application/json") if isinstance(answer, bytes) else answer

    def score_now(self, protocol, cycle) -> None:
        """``POST /score`` as the HTTP protocol (guard.py) hands it over once its body has arrived whole — a declared
        length up to 64 KB and the service's limit; larger ones go through ``score``, which refuses them before they
        are read. The same answers as ``score``, without an ASGI task, its coroutines and ``Response`` objects.
        Called on the event loop."""
        scope = cycle.scope
        try:
            if not self.authorized(scope):
                return self._reply(protocol, cycle, error(401, UNAUTHORIZED))
            call = self.run_call(scope, bytes(cycle.body))
            if isinstance(call, Response):
                return self._reply(protocol, cycle, call)
            self.runner.submit(call, self.timeout, lambda future: self._ran(protocol, cycle, future))
        except Busy as exc:
            self._reply(protocol, cycle, self.answer(exc=exc))
        except Exception:  # noqa: BLE001 - a fault of ours: logged, answered 500, the service goes on
            log.error("POST /score failed:\n%s", traceback.format_exc())
            self._reply(protocol, cycle, error(500, "internal error of the scoring service"))

    def _ran(self, protocol, cycle, future) -> None:
        try:
            try:
                result = outcome(future)
            except (RunTimeout, Exception) as exc:
                answer = self.answer(exc=exc)
            else:
                answer = self.answer(result)
            self._reply(protocol, cycle, answer)
        except Exception:  # noqa: BLE001 - as in score_now
            log.error("POST /score failed:\n%s", traceback.format_exc())
            self._reply(protocol, cycle, error(500, "internal error of the scoring service"))

    def _reply(self, protocol, cycle, answer: Response | bytes) -> None:
        if isinstance(answer, bytes):
            protocol.answer_json(cycle, answer, close=self.draining)
        else:
            protocol.answer_with(cycle, answer, close=self.draining)

    async def swagger(self, scope, receive) -> Response:
        if not self.authorized(scope):
            return error(401, UNAUTHORIZED)
        if self.swagger_doc is None:
            return error(404, "this service has no schema: decorate run() with inference-schema's "
                              "@input_schema / @output_schema")
        return JSONResponse(self.swagger_doc)


def header_of(scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` in lower case, as ASGI servers give them)."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def read_keys(deployment_dir: Path) -> list[str]:
    path = deployment_dir / "keys.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [data.get("primary"), data.get("secondary")]


def balanced_server(config, sock, balance):
    """uvicorn's server, listening on nothing itself: an ``Acceptor`` (balance.py) hands it the connections of
    ``sock`` that are this worker's share."""
    import uvicorn

    from .balance import Acceptor

    class BalancedServer(uvicorn.Server):
        acceptor: Acceptor | None = None

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=[])
            if self.should_exit:
                return
            loop = asyncio.get_running_loop()

            def factory():  # what uvicorn's create_server is given
                return config.http_protocol_class(config=config, server_state=self.server_state,
                                                  app_state=self.lifespan.state, _loop=loop)

            self.acceptor = Acceptor(loop, sock, factory, balance)
            self.acceptor.start()

        async def shutdown(self, sockets=None) -> None:
            if self.acceptor is not None:
                self.acceptor.stop()
            await super().shutdown(sockets=sockets)

    return BalancedServer(config)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    children.take_signals_back()

    p = argparse.ArgumentParser(description="aml-magics scoring service")
    p.add_argument("--dir", required=True, type=Path, help="the deployment folder (spec.json, score.py, keys.json)")
    p.add_argument("--fd", type=int, help="a listening socket inherited from the supervisor")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--balance", metavar="PATH:SLOT:WORKERS",
                   help="one of several workers on --fd: the file of their connection counts and this one's slot")
    args = p.parse_args(argv)
    spec = json.loads((args.dir / "spec.json").read_text())
    os.environ["AZUREML_MODEL_DIR"] = spec["model_dir"]
    os.environ["AML_MAGICS_MODEL_PATHS"] = json.dumps(spec["model_paths"])
    from ..core.config import env_number
    from .guard import FD_RESERVE, GuardedHttpProtocol, raise_fd_limit
    from .logfile import RotatingLog

    stream = RotatingLog(args.dir / "service.log", own_stdio=True)  # private, bounded; score.py's prints too
    sys.stdout = sys.stderr = stream
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=stream, force=True)
    cap = max(64, raise_fd_limit() - FD_RESERVE)
    GuardedHttpProtocol.max_connections = min(cap, env_number("AML_MAGICS_MAX_CONNECTIONS", cap, int, minimum=1))
    os.chdir(args.dir)
    service = ScoringService(
        args.dir / spec["entry_script"], read_keys(args.dir) if spec.get("auth", True) else None,
        max_body=spec.get("max_body", DEFAULT_MAX_BODY), timeout=spec.get("timeout_s", DEFAULT_TIMEOUT_S),
        ready_file=args.dir / f"ready-{os.getpid()}",
    )
    GuardedHttpProtocol.fast_route = ("POST", "/score", service.score_now, service.max_body)
    config = uvicorn.Config(service.app, host=args.host, port=args.port, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=30, http=GuardedHttpProtocol,
                            timeout_keep_alive=5, log_config=None, proxy_headers=False)
    sockets = None
    if args.fd is not None:
        # the supervisor's TCP socket; uvicorn's own --fd takes it for a UNIX socket and then leaves
        # Nagle on (40 ms per request), so hand it over as what it is
        import socket

        sockets = [socket.socket(fileno=args.fd)]
    balance = None
    if args.balance and sockets:  # several workers share the socket: each takes its fair share of connections
        from .balance import Balance

        try:
            balance = Balance.parse(args.balance)
        except (OSError, ValueError) as exc:  # its file gone, or cut short by a full disk: serve all the same
            log.warning("the workers' shared connection counts cannot be read (%s); accepting unbalanced", exc)
    if balance is not None:
        GuardedHttpProtocol.balance = balance
        server = balanced_server(config, sockets[0], balance)
        sockets = None
    else:
        server = uvicorn.Server(config)
    service.server = server

    def serve_http() -> None:
        try:
            server.run(sockets=sockets)
        except SystemExit:  # uvicorn's way out when init() failed: the reason is in the log already
            pass
        except BaseException:  # noqa: BLE001 - reported, and the main thread is let go
            log.error("the HTTP server stopped:\n%s", traceback.format_exc())
        finally:
            service.runner.stop()

    # the event loop on a thread of its own; the main thread runs score.py (signals reach it: see runner)
    def on_signal(signum, frame) -> None:
        if signum == getattr(signal, "SIGUSR1", None):
            if service.loop is not None:
                service.loop.call_soon_threadsafe(service.start_draining)
        else:
            server.should_exit = True  # uvicorn: stop accepting, finish in-flight requests

    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR1", None)):
        if sig is not None:
            signal.signal(sig, on_signal)
    import threading

    http = threading.Thread(target=serve_http, name="aml-score-http", daemon=True)
    http.start()
    service.runner.serve()
    http.join(60)
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
