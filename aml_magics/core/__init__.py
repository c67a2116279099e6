"""The client core: one ``Client`` over one backend contract. No IPython, widgets or tornado here."""
from .client import Client
from .errors import AmlError, AuthError, BackendUnavailable, Conflict, InvalidInput, NotFound

__all__ = ["Client", "AmlError", "AuthError", "BackendUnavailable", "Conflict", "InvalidInput", "NotFound"]
