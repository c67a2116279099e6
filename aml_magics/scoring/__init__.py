"""Scoring web services: Azure ML's ``score.py`` contract (``init()``, ``run(raw_data)``).

``raise BadRequest("expected 64 features per row, got 3")`` in ``run()`` answers 400 with that message:
the client sent something wrong. Any other exception is a fault of the service (500, traceback in the log).
"""


class BadRequest(Exception):
    """Raised by ``run()`` for a request the client must fix: answered 400 with this message."""
