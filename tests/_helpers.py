"""Small helpers shared by several test folders."""
from __future__ import annotations

import textwrap


def logging_script(client, run, body: str) -> str:
    """A Python program that logs to ``run`` through Run.get_context(), as a submitted run would."""
    return (f"import os, sys, time\nos.environ['AML_MAGICS_RUN_ID'] = {run.id!r}\n"
            f"os.environ['AML_MAGICS_TRACKING_URI'] = {client.backend.tracking_uri!r}\n"
            "from aml_magics import Run\nrun = Run.get_context()\n" + textwrap.dedent(body))
