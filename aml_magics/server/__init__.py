"""The Jupyter server extension: the workspace over REST (``/aml/api/…``) for the JupyterLab sidebar.

Enabled by ``etc/jupyter/jupyter_server_config.d/aml_magics.json`` (installed with the wheel).
The server resolves the workspace exactly as kernels do (``$AML_MAGICS_WORKSPACE``, else the
per-user default), so the sidebar and the notebooks see the same runs.
"""
from __future__ import annotations


def _jupyter_server_extension_points():
    return [{"module": "aml_magics.server"}]


def _load_jupyter_server_extension(serverapp) -> None:
    from jupyter_server.utils import url_path_join

    from ..core.client import Client
    from .handlers import ROUTES

    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "aml", "api")
    web_app.settings["aml_client"] = lambda: Client.shared()
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler) for pattern, handler in ROUTES])
    serverapp.log.info("aml-magics: workspace routes at %s", base)
