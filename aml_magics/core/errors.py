"""The error hierarchy of aml-magics.

Every error a user can cause is an ``AmlError`` whose message is one line that says what
to do. Front ends map them: magics raise ``UsageError`` (no traceback), the server answers
with an HTTP status (``http_status``).
"""
from __future__ import annotations

import contextlib
import difflib
import time
from typing import Any, Callable, Iterable, Iterator


class AmlError(Exception):
    """Base class: a problem the user can act on. ``str(err)`` is the whole message."""

    http_status = 500


class NotFound(AmlError, LookupError):
    http_status = 404

    @classmethod
    def with_suggestions(cls, what: str, name: str, candidates: Iterable[str], hint: str = "") -> "NotFound":
        """``NotFound`` with a "did you mean" built from the names that do exist."""
        # a name that is not text (None, a number: a careless call) is not found either, without suggestions
        close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6) if isinstance(name, str) else []
        shown = repr(name)
        if len(shown) > 80:  # a pasted page of text is not said back whole
            shown = shown[:79] + "…"
        msg = f"{what} {shown} not found"
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif hint:
            msg += f"; {hint}"
        return cls(msg)


class Conflict(AmlError):
    http_status = 409


class InvalidInput(AmlError, ValueError):
    http_status = 400


class InvalidType(InvalidInput, TypeError):
    """A value of the wrong kind (a list where a number goes, a string metric logged as a number)."""


class BackendUnavailable(AmlError):
    http_status = 503


class AuthError(AmlError):
    http_status = 401


class NotSupported(AmlError):
    """What this backend cannot do; the message says what to use instead."""

    http_status = 501


class EngineStopped(AmlError):
    """Raised by the sweep controller or the AutoML engine to end their run Failed with this message."""


class StorageError(AmlError):
    """The workspace's storage refused a write: the disk is full, or the workspace is read-only."""

    http_status = 507


class StoreDamaged(StorageError):
    """The workspace's database cannot be read: its file is damaged. ``examine(recover)`` is the doctor for it
    (set by the backend that found the damage, so the core never needs to know which backend that was)."""

    def __init__(self, message: str, examine=None):
        super().__init__(message)
        self.examine = examine


class StoreGone(StorageError):
    """The workspace's database was deleted or replaced after this process opened it: restart to open it again."""


def storage_reason(exc: BaseException) -> str | None:
    """What a failed write means for the user (disk full / read-only), or None for other errors."""
    import errno

    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG) or "disk is full" in text \
            or "file too large" in text:
        return "the disk is full"
    if "disk i/o error" in text:
        return "a write to the disk failed (is it full?)"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or "read-only" in text \
            or "unable to open database" in text:
        return "the workspace is read-only (or not writable by this user)"
    return None


@contextlib.contextmanager
def writing_to(target) -> Iterator[None]:
    """A download's local writes: a file where a folder must go, no permission, a full disk — one line naming the
    path, not a traceback. (Errors of the network below a download are the backend's own, and pass through.)"""
    import errno

    try:
        yield
    except OSError as exc:
        if type(exc).__module__.split(".")[0] in ("requests", "urllib3", "ssl"):
            raise
        why = {errno.ENOSPC: "the disk is full", errno.EEXIST: "a file is where a folder is needed",
               errno.ENOTDIR: "a file is where a folder is needed", errno.EACCES: "no permission to write there",
               errno.EPERM: "no permission to write there", errno.EROFS: "it is read-only",
               errno.ENOENT: "that folder cannot be made"}.get(exc.errno)
        why = why or (exc.strerror or type(exc).__name__).lower()
        raise InvalidInput(f"cannot write {exc.filename or target}: {why}; choose another folder") from None
    except UnicodeEncodeError:  # a lone surrogate no file name can have
        raise InvalidInput(f"cannot write {target!r}: the path contains a lone surrogate character; choose another "
                           "name") from None
    except ValueError as exc:  # os functions given a path with a NUL in it
        if "null" not in str(exc):
            raise
        raise InvalidInput(f"cannot write {target!r}: the path contains a NUL character; choose another folder"
                           ) from None


def through_a_full_disk(write: Callable[[], Any], what: str) -> Any:
    """``write()``, tried again while the workspace's disk is full (every 0.5 s, then up to 10 s apart, for up to
    ``AML_MAGICS_FINISH_WAIT_S``, as the run's host waits to record how a run ended), saying so once on stdout (the
    run's log): for an engine's results, kept in memory meanwhile, that failing would lose. Other errors, and a disk
    full past the wait, raise."""
    deadline, delay = None, 0.5
    while True:
        try:
            result = write()
        except (OSError, StorageError) as exc:
            if storage_reason(exc) != "the disk is full":
                raise
            if deadline is None:
                from .config import env_number

                deadline = time.monotonic() + env_number("AML_MAGICS_FINISH_WAIT_S", 3600)
                print(f"The disk is full: {what} as soon as there is space; free some (it is given up in "
                      f"{deadline - time.monotonic():.0f} s).", flush=True)
            elif time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        else:
            if deadline is not None:
                print(f"Space returned: {what}.", flush=True)
            return result
