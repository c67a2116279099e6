"""Tuning knobs read from the environment (``core.config.env_number``): a typo is one warning and the default."""
from __future__ import annotations

import pytest

from aml_magics.core.config import env_number


@pytest.mark.parametrize("raw, kind, expected", [
    ("", float, 7.0), ("2.5", float, 2.5), (" 3 ", int, 3), ("0", float, 0.0),
])
def test_numbers_and_unset(monkeypatch, capsys, raw, kind, expected):
    monkeypatch.setenv("AML_MAGICS_TEST_KNOB", raw)
    value = env_number("AML_MAGICS_TEST_KNOB", 7, kind)
    assert value == expected and type(value) is kind
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("raw, kind", [("3O", float), ("nan", float), ("inf", float), ("-1", float), ("2.5", int),
                                       ("1e400", float), ("1e300", float), ("99999999999999999999", int),
                                       ("\udcff", float)])
def test_a_typo_is_one_warning_and_the_default(monkeypatch, capsys, raw, kind):
    monkeypatch.setenv("AML_MAGICS_TEST_KNOB2", raw)
    assert env_number("AML_MAGICS_TEST_KNOB2", 7, kind) == 7
    assert env_number("AML_MAGICS_TEST_KNOB2", 7, kind) == 7
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "AML_MAGICS_TEST_KNOB2" in err and "using 7" in err


@pytest.mark.parametrize("raw, expected", [("", 0), (" 2 ", 2), ("²", 0), ("٣", 0), ("x", 0), ("-3", 0),
                                           ("1000000", 999_999), pytest.param("9" * 5000, 999_999, id="5000-digits")])
def test_a_runs_depth_from_the_environment(monkeypatch, raw, expected):
    """``AML_MAGICS_DEPTH`` (how many runs deep a run's process is): a superscript digit, which ``str.isdigit`` takes,
    raised ValueError at every submission; a depth of a million read as 0, which let runs that submit each other go on
    past ``MAX_DEPTH``."""
    from aml_magics.core.names import MAX_DEPTH, run_depth

    monkeypatch.setenv("AML_MAGICS_DEPTH", raw)
    assert run_depth() == expected
    assert (run_depth() >= MAX_DEPTH) == (expected >= MAX_DEPTH)
