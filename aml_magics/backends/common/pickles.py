"""``--in`` values: pickled with cloudpickle before anything of the run is written."""
from __future__ import annotations

from typing import Any

from ...core.errors import InvalidInput


def pickle_inputs(values: dict[str, Any]) -> bytes | None:
    """The pickled ``--in`` values, or None when there are none; one clear error for what cannot be pickled."""
    if not values:
        return None
    import cloudpickle

    try:
        return cloudpickle.dumps(values)
    except Exception as exc:  # noqa: BLE001 - whatever cloudpickle refuses
        raise InvalidInput(f"--in: cannot pickle {', '.join(values)}: {exc}") from None
