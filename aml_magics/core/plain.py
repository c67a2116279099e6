"""Values as JSON takes them: what a scorer returns and what a notebook sends to a service (stdlib only)."""
from __future__ import annotations

from typing import Any


def plain_value(value: Any) -> Any:
    """``json.dumps``' ``default``: a numpy array or number, a pandas DataFrame (its rows as records) or Series, a
    set, a date — as JSON takes them; anything else stays refused."""
    import datetime

    kind = type(value).__module__.split(".")[0]
    if kind == "numpy":
        if hasattr(value, "tolist"):  # arrays and numpy scalars (float32, int64, bool_)
            return value.tolist()
    elif kind == "pandas":
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return value.to_dict(orient="records")
        if hasattr(value, "tolist"):
            return value.tolist()
        if hasattr(value, "isoformat"):  # Timestamp
            return value.isoformat()
    elif isinstance(value, (set, frozenset)):
        return list(value)
    elif isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
