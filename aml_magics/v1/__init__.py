"""Azure ML SDK v1 notebooks, unchanged, over our client: ``%aml v1`` (or ``aml_magics.v1.install()``) makes
``import azureml.core`` and the other v1 import paths resolve to this package's modules.

Only when the real ``azureml-core`` is not installed: if it is, ``install()`` says so in one line and changes
nothing. The aliases reach the run processes and scoring services a v1 notebook starts (``AML_MAGICS_V1=1`` in
their environment: ``runtime.launch`` and the scoring runner install them first), so a submitted ``train.py`` with
``from azureml.core import Run`` and a deployed ``score.py`` with ``from azureml.core.model import Model`` run
unchanged too.

This module stays light (a run process imports it before the user's script): the API lives in the submodules,
imported when a notebook first touches a name.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Any

ENV_FLAG = "AML_MAGICS_V1"


def client_of(workspace: Any, where: str):
    """The client of a v1 ``Workspace`` argument; anything else (a name, a list) is one clear error, not an
    AttributeError from inside."""
    client = getattr(workspace, "client", None)
    if client is None or not hasattr(client, "runs"):
        from ..core.checks import shown
        from ..core.errors import InvalidInput

        raise InvalidInput(f"{where}: give the Workspace (ws = Workspace.from_config()), got "
                           f"{type(workspace).__name__} {shown(workspace)}")
    return client

#: v1 module → the module of ours that holds its names ("" : a package with nothing of its own)
ALIASES = {
    "azureml": "",
    "azureml.core": "aml_magics.v1.api",
    "azureml.core.workspace": "aml_magics.v1.api",
    "azureml.core.experiment": "aml_magics.v1.api",
    "azureml.core.run": "aml_magics.v1.api",
    "azureml.core.script_run_config": "aml_magics.v1.api",
    "azureml.core.runconfig": "aml_magics.v1.api",
    "azureml.core.authentication": "aml_magics.v1.api",
    "azureml.core.compute": "aml_magics.v1.compute",
    "azureml.core.compute_target": "aml_magics.v1.compute",
    "azureml.core.environment": "aml_magics.v1.environment",
    "azureml.core.conda_dependencies": "aml_magics.v1.environment",
    "azureml.core.model": "aml_magics.v1.deploy",
    "azureml.core.webservice": "aml_magics.v1.deploy",
    "azureml.core.image": "aml_magics.v1.deploy",
    "azureml.core.dataset": "aml_magics.v1.data",
    "azureml.core.datastore": "aml_magics.v1.data",
    "azureml.data": "aml_magics.v1.data",
    "azureml.data.data_reference": "aml_magics.v1.data",
    "azureml.data.datapath": "aml_magics.v1.data",
    "azureml.exceptions": "aml_magics.v1.exceptions",
    "azureml.widgets": "aml_magics.v1.widgets",
    "azureml.train": "",
    "azureml.train.estimator": "aml_magics.v1.train",
    "azureml.train.sklearn": "aml_magics.v1.train",
    "azureml.train.dnn": "aml_magics.v1.train",
    "azureml.train.hyperdrive": "aml_magics.v1.hyperdrive",
    "azureml.train.automl": "aml_magics.v1.automl",
    "azureml.train.automl.run": "aml_magics.v1.automl",
    "azureml.train.automl.automlexplainer": "aml_magics.v1.automl",
    "azureml.automl": "",
    "azureml.automl.core": "",
    "azureml.automl.core.forecasting_parameters": "aml_magics.v1.automl",
    "azureml.pipeline": "",
    "azureml.pipeline.core": "aml_magics.v1.pipeline",
    "azureml.pipeline.steps": "aml_magics.v1.pipeline",
}

_state: dict[str, Any] = {"client": None, "installed": False, "noted": set()}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the v1 module names in ``ALIASES``; each is a module that forwards to ours."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in ALIASES:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if fullname.startswith("azureml.") and fullname.rsplit(".", 1)[0] in ALIASES:
            # no ``name=``: `from azureml.core import NotHere` asks for the submodule azureml.core.NotHere, and
            # Python would swallow an error named after it and say only "cannot import name"
            raise ModuleNotFoundError(
                f"aml-magics' Azure ML v1 layer has no {fullname} (module or name); the v1 names it supports are "
                "listed in the README (\"Bring your Azure ML v1 notebooks\"), or use the %aml magics (%aml?)")
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        target = ALIASES[spec.name]
        module.__path__ = []  # a package: its v1 submodules are found by this finder
        module.__aml_magics_target__ = target
        if target:
            real = importlib.import_module(target)
            module.__doc__ = real.__doc__
            module.__all__ = list(getattr(real, "__all__", ()))

            def forward(name: str, _real=real, _module=spec.name):
                try:
                    return getattr(_real, name)
                except AttributeError:
                    raise AttributeError(f"{_module}.{name} is not part of aml-magics' Azure ML v1 layer; "
                                         "the README lists what is (\"Bring your Azure ML v1 notebooks\")") from None

            module.__getattr__ = forward
        if spec.name == "azureml.core":
            from . import api

            module.VERSION = api.VERSION
        return module

    def exec_module(self, module):
        pass


_FINDER = _Finder()


def real_sdk_installed() -> bool:
    """Whether Microsoft's azureml-core is importable (then we change nothing)."""
    if installed():
        return False
    try:
        return importlib.util.find_spec("azureml.core") is not None
    except (ImportError, ValueError):
        return False


def install(client: Any = None, quiet: bool = False) -> bool:
    """Make the v1 import paths resolve to aml-magics (for this process and the runs and services it starts).
    ``client``: the workspace the v1 objects use (default: the notebook's, as ``%aml`` resolves it). Returns
    whether the aliases are in place."""
    if client is not None:
        _state["client"] = client
    if installed():
        return True
    if real_sdk_installed():
        if not quiet:
            print("Microsoft's azureml-core is installed: `import azureml` uses it; aml-magics' v1 layer is not "
                  "switched on (pip uninstall azureml-core to use it)")
        return False
    sys.meta_path.insert(0, _FINDER)
    os.environ[ENV_FLAG] = "1"
    _state["installed"] = True
    if not quiet:
        print("Azure ML v1 names (azureml.core, azureml.train, azureml.widgets …) now run on aml-magics' "
              f"{_describe()} — the notebook's v1 code runs unchanged from here on.")
    return True


def uninstall() -> None:
    """Take the aliases away again (modules already imported stay as they are)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == "azureml" or n.startswith("azureml.")]:
        if getattr(sys.modules[name], "__aml_magics_target__", None) is not None:
            del sys.modules[name]
    os.environ.pop(ENV_FLAG, None)
    _state["installed"] = False


def installed() -> bool:
    return _FINDER in sys.meta_path


def install_from_environment() -> None:
    """In a run process or a scoring service: the aliases when the notebook that started it had them."""
    if os.environ.get(ENV_FLAG) == "1" and not installed():
        install(quiet=True)


def client():
    """The workspace the v1 objects use: the one ``install`` was given (``%aml connect`` updates it), else the
    notebook's default."""
    if _state["client"] is None:
        from ..core.client import Client

        _state["client"] = Client.shared()
    return _state["client"]


def set_client(value) -> None:
    _state["client"] = value


def note_once(key: str, text: str) -> None:
    """A one-line note, said once per process (a v1 setting we accept but that means something else here)."""
    if key not in _state["noted"]:
        _state["noted"].add(key)
        print(f"Note: {text}")


def unknown_settings(what: str, call: Any, given: dict) -> None:
    """Keyword arguments a v1 call got beyond the ones it reads (``given``, its ``**kwargs``): a misspelling of one it
    reads (``auth_enable=True``, ``experiment_timeout_minute=20``) is refused with the right name — taken as unused,
    the setting would silently not happen; any other (a v1 setting that means nothing here) is noted once."""
    given = {name: value for name, value in given.items() if not name.startswith("_")}  # v1's private ones
    if not given:
        return
    from ..core.checks import misspelt, shown

    misspelt(what, call, given)
    names = ", ".join(shown(name, 60) for name in given)
    note_once(f"unused:{what}:{names}", f"{what}: {names} {'is' if len(given) == 1 else 'are'} not used here "
                                        "(ignored)")


class V1Names:
    """A v1 object's missing public names say so in one line (``run.get_snapshot_id()``, ``model.delete()``), not
    as a bare ``AttributeError``; private ones (``_repr_html_`` …) stay ordinary misses."""

    _V1_HAS = "see the README's v1 table for what it has here"

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"{type(self).__name__}.{name} is not part of aml-magics' Azure ML v1 layer: "
                             f"{self._V1_HAS}")


def _describe() -> str:
    try:
        config = client().config
        return f"{config.backend} workspace {config.name!r}"
    except Exception:  # noqa: BLE001 - describing is best effort; the first real call reports the problem
        return "workspace"
