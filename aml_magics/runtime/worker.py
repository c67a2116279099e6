"""The first code of a batch scoring worker process (spawned by ``batch.engine``): like ``launch`` for a run, it
installs the Azure ML v1 names when the run came from a v1 notebook, then loads the scorer."""
from __future__ import annotations


def init_batch_worker(cfg: dict) -> None:
    import os

    os.environ.update(cfg.get("env") or {})
    from ..v1 import install_from_environment

    try:
        install_from_environment()  # `from azureml.core.model import Model` in a v1 entry script
    except Exception:  # noqa: BLE001 - the scorer's own import then says what is missing
        pass
    from ..batch.engine import _init_worker

    _init_worker(cfg)
