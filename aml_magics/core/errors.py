"""The error hierarchy of aml-magics.

Every error a user can cause is an ``AmlError`` whose message is one line that says what
to do. Front ends map them: magics raise ``UsageError`` (no traceback), the server answers
with an HTTP status (``http_status``).
"""
from __future__ import annotations

import difflib
from typing import Iterable


class AmlError(Exception):
    """Base class: a problem the user can act on. ``str(err)`` is the whole message."""

    http_status = 500


class NotFound(AmlError, LookupError):
    http_status = 404

    @classmethod
    def with_suggestions(cls, what: str, name: str, candidates: Iterable[str], hint: str = "") -> "NotFound":
        """``NotFound`` with a "did you mean" built from the names that do exist."""
        close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
        msg = f"{what} {name!r} not found"
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif hint:
            msg += f"; {hint}"
        return cls(msg)


class Conflict(AmlError):
    http_status = 409


class InvalidInput(AmlError, ValueError):
    http_status = 400


class BackendUnavailable(AmlError):
    http_status = 503


class AuthError(AmlError):
    http_status = 401
