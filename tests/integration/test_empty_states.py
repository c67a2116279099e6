"""Honest empty states: a sentence instead of an empty table, and a run's silence told apart from a run that has
not printed yet."""
from __future__ import annotations

import pytest


def test_an_empty_workspace_says_so(client):
    from aml_magics.widgets.runs import WorkspaceOverview

    overview = WorkspaceOverview(client, live=False)
    assert overview.active.rows == [] and overview.active.empty == "No active runs."
    assert "No experiments yet" in overview.experiments.empty
    assert "updated" in overview.header.value


def test_a_silent_run_is_told_apart_from_one_that_has_not_printed_yet(ip, client, capsys):
    from aml_magics.widgets.run_details import RunDetails

    running = client.runs.start_logging("quiet")
    live = RunDetails(running.id, client, live=False)
    assert "(no output yet)" in live.log.value
    running.complete()
    live.update(force=True)
    assert "(the run printed nothing)" in live.log.value and "No files." in live.files.value
    ip.run_line_magic("aml", f"logs {running.id}")
    assert "(the run printed nothing)" in capsys.readouterr().out


@pytest.mark.parametrize("live", [True, False])
def test_a_live_view_says_how_fresh_it_is(client, live):
    from aml_magics.widgets.run_details import RunDetails

    run = client.runs.start_logging("fresh")
    details = RunDetails(run.id, client, live=live)
    try:
        assert ("checked" in details.header.value) == live
    finally:
        details.close()
        run.complete()
