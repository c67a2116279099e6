"""What user code imports inside a run: ``from aml_magics import Run``. Stdlib only."""
from .run import Run

__all__ = ["Run"]
