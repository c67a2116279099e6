"""How long the Azure clients wait on a 429 or a 5xx: the server's Retry-After when it is seconds, within a cap.
The MLflow client read it with float() — an HTTP date (which the header may carry) raised ValueError out of the
metrics flush — and had no cap; the ARM client passed NaN or a negative number on to time.sleep."""
from __future__ import annotations

import pytest

from aml_magics.backends.azure.mlflow_rest import retry_delay


@pytest.mark.parametrize("header, expected", [
    ("5", 5.0), ("0.25", 0.25), ("0", 0.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 2.0),  # an HTTP date: the backoff
    ("nan", 2.0), ("-3", 2.0), ("inf", 2.0), ("", 2.0), (None, 2.0),
    ("86400", 60.0),  # a day: the cap
])
def test_retry_after_is_seconds_within_the_cap(header, expected):
    assert retry_delay(header, 2.0, 60.0) == expected
