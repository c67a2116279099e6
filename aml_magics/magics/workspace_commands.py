"""The ``%aml`` subcommands about what a workspace holds besides runs: models, services, environments, compute
targets, datastores, the workspace itself and its doctor. A mixin of ``AmlMagics`` (``self.client``)."""
from __future__ import annotations

import os
import sys

from IPython.core.error import UsageError

from ..core import checks
from ..core.client import Client
from ..core.errors import NotFound
from ..core.registry import HOW_TO_OPEN
from ..core.render import counted
from ..core.states import ACTIVE_STATES
from . import parser as cli
from .display import in_kernel as _in_kernel
from ..core.progress import progress_line


class WorkspaceCommands:
    client: Client
    dashboards: bool
    workspace: str
    shell: object
    _client: Client | None

    # -- models, services, environments --------------------------------------------------------------------

    def _cmd_register(self, args):
        tags = cli.parse_pairs(args.tag, "--tag")
        if args.local:
            return self.client.models.register(args.name, args.run, tags=tags, description=args.description)
        try:
            model = self.client.models.register(args.name, args.path, run_id=args.run, tags=tags,
                                                description=args.description)
        except NotFound:
            if os.path.exists(args.run):  # a file of the notebook's folder, not a run
                raise UsageError(f"no run is called {args.run!r}, but that is a file here: to register it, add "
                                 f"--local (%aml register {args.run} --name {args.name} --local)") from None
            raise
        status = self.client.runs.get(model.run_id or args.run, with_metrics=False).status
        if status != "Completed":  # registered all the same (v1 registers from any run), with what that means
            print(f"Note: run {model.run_id} is {status}: "
                  + ("its outputs may still change; this version holds them as they were now."
                     if status in ACTIVE_STATES else "this version holds what it left before it ended."),
                  file=sys.stderr)
        return model

    def _cmd_models(self, args):
        models = self.client.models.list(name=args.name, tags=checks.tag_filter(args.tag) or None)
        if args.name and not models:  # a typo or a version it does not have: said ("No models match" before)
            self.client.models.get(args.name)  # raises NotFound: which names there are, or which versions
        return models

    def _cmd_deploy(self, args):
        caps = self.client.capabilities
        if args.target and args.target != caps.deploy_target:
            raise UsageError(f"--target {args.target}: services of this workspace run {caps.where} (--target "
                             f"{caps.deploy_target}); to deploy with --target {args.target}, "
                             f"{HOW_TO_OPEN.get(args.target, '%aml workspace use PATH')} and register the model there")
        try:
            service = self.client.deployments.create(args.name, args.models, score=args.score, host=args.host,
                                                     port=args.port, auth=False if args.no_auth else None,
                                                     update=args.update,
                                                     environment=args.environment,
                                                     instance_type=args.instance_type, workers=args.workers)
        except KeyboardInterrupt:  # ("Interrupted." alone left the user thinking the deploy had stopped)
            from ..core.names import default_service_name

            name = args.name or default_service_name(args.models[0])
            try:
                state = self.client.deployments.get_info(name).state
            except Exception:  # noqa: BLE001 - not recorded yet (or unreadable): nothing was started
                state = None
            if state is None:
                print(f"\nInterrupted; service {name} was not deployed.", file=sys.stderr)
            else:
                print(f"\nStopped waiting; service {name} goes on ({state}): %aml services shows it, "
                      f"%aml service {name} --delete stops it.", file=sys.stderr)
            return None
        host = None if caps.remote else self.client.deployments.get_info(service.name).host
        if host and not checks.loopback_host(host):  # (keyed: --no-auth there is refused by deployments.create)
            print(f"Warning: the service listens on {host}, reachable from other machines.", file=sys.stderr)
        return service

    def _cmd_env(self, args):
        envs = self.client.environments
        extra = [args.name, *args.spec][1 if args.action == "build" else 0:] if args.action != "register" else []
        if any(extra):  # "%aml env list myenv" listed them all; "%aml env build e x" built e
            got = checks.shown(" ".join(filter(None, extra)), 60)
            raise UsageError(f"%aml env list takes no name (got {got}); it lists every environment" if args.action ==
                             "list" else f"%aml env build takes one NAME[:VERSION] (got {got} after it)")
        if args.action == "list":
            return envs.list()
        if not args.name:
            raise UsageError(f"give the environment's name: %aml env {args.action} NAME")
        if args.action == "register":
            if not args.spec:
                raise UsageError("give a requirements.txt / environment.yml or requirements: %aml env register NAME FILE")
            one = args.spec[0]
            return envs.register(args.name, one if len(args.spec) == 1 and _names_a_file(one) else args.spec)
        print(f"python: {envs.build(args.name)}")
        return None

    def _cmd_services(self, args):
        return self.client.deployments.list()

    def _cmd_service(self, args):
        asked = [flag for flag, on in (("--logs", args.logs), ("--keys", args.keys), ("--test", args.test is not None),
                                       ("--delete", args.delete), ("--build-image", args.build_image)) if on]
        if len(asked) > 1:  # one of them was done and the others dropped: `--test … --delete` deleted untested
            raise UsageError(f"%aml service takes one of --logs, --keys, --test, --delete, --build-image at a time; "
                             f"give {' and '.join(asked)} in separate lines")
        service = self.client.deployments.get(args.name)
        if args.delete:
            service.delete()
            print(f"Deleted service {args.name}.")
            return None
        if args.logs:
            print(service.get_logs(tail=200) or "(no log yet)")
            return None
        if args.build_image:
            print(self.client.deployments.build_image(args.name))
            return None
        if args.keys:
            # keys never go into a notebook's output: masked here, copied to the clipboard on a click,
            # or read in Python with service.get_keys()
            primary, secondary = service.get_keys()
            masked = "\n".join(f"{label}: {key[:4]}…{'•' * 8} ({len(key)} characters)"
                               for label, key in (("primary  ", primary), ("secondary", secondary)))
            if self.dashboards and _in_kernel(self.shell):
                import ipywidgets as w

                from ..widgets.components import CopySecret

                return w.VBox([w.HTML(f"<pre style='margin:0'>{masked}</pre>"), w.HBox([
                    CopySecret(lambda: service.get_keys()[0], label="copy primary key"),
                    CopySecret(lambda: service.get_keys()[1], label="copy secondary key")])])
            print(masked + "\nRead them in Python with service.get_keys() (they are never printed).")
            return None
        if args.test is not None:
            import time as _time

            body = _test_body(args.test)
            started = _time.perf_counter()
            answer = service.run(body)
            print(f"{(_time.perf_counter() - started) * 1000:.1f} ms")
            return answer
        return service

    # -- workspace, experiments, compute, datastores ---------------------------------------------------

    def _cmd_experiments(self, args):
        return self.client.experiments.list()

    def _cmd_compute(self, args):
        if args.action == "create":
            if not args.name:
                raise UsageError("give a name: %aml compute create NAME --max-concurrent N")
            return self.client.computes.create(args.name, args.max_concurrent)  # default: the backend's size
        if args.name or args.max_concurrent:  # "%aml compute gpu --max-concurrent 4" listed, and made nothing
            raise UsageError(f"%aml compute {args.action} lists the compute targets and takes no name or "
                             "--max-concurrent; to add one: %aml compute create NAME --max-concurrent N")
        return self.client.computes.list()

    def _cmd_datastore(self, args):
        ds = self.client.datastores
        if args.action == "upload":
            if not args.path:
                raise UsageError("give what to upload: %aml datastore upload SRC --target PATH")
            with progress_line("Uploading") as line:
                done = ds.upload(args.path, args.target or "", datastore=args.datastore, overwrite=args.overwrite,
                                 progress=line)
            if not done:
                print(f"Nothing was uploaded: {args.path} holds no files.")
                return None
            print(f"Uploaded {counted(len(done), 'file')} to the datastore: {', '.join(done[:5])}"
                  f"{' …' if len(done) > 5 else ''}")
            return None
        if args.action == "ls":
            if args.target is not None or args.overwrite:  # (they were ignored: a download meant, say)
                raise UsageError("--target and --overwrite go with upload and download; %aml datastore ls [PATH] "
                                 "lists what is at PATH")
            return ds.ls(args.path, datastore=args.datastore)
        if not args.path:
            raise UsageError("give the datastore path: %aml datastore download PATH --target DIR")
        with progress_line("Downloading") as line:
            done = ds.download(args.path, args.target or ".", datastore=args.datastore, overwrite=args.overwrite,
                               progress=line)
        print(f"Downloaded {counted(len(done), 'file')} to {args.target or '.'}")
        return None

    def _cmd_workspace(self, args):
        if args.action == "use":
            if not args.path:
                raise UsageError("give the workspace folder: %aml workspace use PATH")
            client = Client.shared(args.path)
            client.backend  # open (and create) it now, so errors show here
            self.workspace = str(client.config.path)
            self._client = client
            _follow_v1(client)
        return self.client.workspace

    def _cmd_v1(self, args):
        from .. import v1

        if args.action == "off":
            v1.uninstall()
            print("Azure ML v1 names are off: `import azureml` is no longer aml-magics")
            return None
        v1.install(client=self.client)
        return None

    def _cmd_doctor(self, args):
        return self.client.doctor(recover=args.recover)


def _follow_v1(client) -> None:
    """The v1 objects use the workspace the magics switched to (``%aml workspace use``, ``%aml connect``)."""
    from .. import v1

    if v1.installed():
        v1.set_client(client)


def _names_a_file(spec: str) -> bool:
    """Whether ``%aml env register NAME SPEC``'s one SPEC is a file: one that exists, or a path or file name that does
    not (``requirments.txt``: a typo is "not found", not a package of that name)."""
    if os.path.exists(os.path.expanduser(spec)):
        return True
    if "://" in spec or "@" in spec:  # a URL requirement ("pkg @ https://…", "git+https://…")
        return False
    return os.path.splitext(spec)[1].lower() in (".txt", ".yml", ".yaml", ".in") or "/" in spec or os.sep in spec


def _test_body(text: str) -> str | bytes:
    """What ``%aml service NAME --test`` sends: the text, or ``@FILE``'s bytes. Text that starts as JSON and is not
    JSON is refused here, with how to quote it (the line's quoting took off the quotes of ``{"data": …}`` given
    bare) — the service's own 400 named a character of the mangled text. Other text goes as it is: a score.py may
    take CSV or plain text."""
    import json

    if text.startswith("@"):
        path = checks.expand_home(text[1:])
        # a long path is shown by its end: the file's name is what tells it (the start was shown, the name cut off)
        named = checks.shown(str(path), 10_000)
        named = named if len(named) <= 90 else "…" + named[-89:]
        if not path.is_file():
            raise UsageError(f"--test @FILE: {named} is not a file; give the request's JSON in single quotes, or "
                             "@FILE of a file that holds it")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--test @FILE: cannot read {named} ({exc.strerror or exc})") from None
    if text.lstrip()[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--test {checks.shown(text, 60)} is not JSON ({exc}); put the JSON in single quotes, as "
                             """--test '{"data": [[1, 2]]}', or give a file: --test @request.json""") from None
    return text

