"""Run ids in Azure ML's shape: ``<experiment>_<unix seconds>_<8 hex>``."""
from __future__ import annotations

import re
import secrets
import time


def new_run_id(experiment: str) -> str:
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", experiment)[:48] or "run"
    return f"{prefix}_{int(time.time())}_{secrets.token_hex(4)}"
