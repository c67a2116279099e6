"""What a dashboard asks the workspace for: one version read per poll while nothing changes."""
from __future__ import annotations


class CountingRuns:
    """The workspace's real runs backend, with each call counted (every call goes through to it)."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return counted


def test_a_quiet_poll_is_one_version_read_and_a_change_reads_only_what_is_new(client):
    from aml_magics.widgets.run_details import RunDetails

    run = client.runs.start_logging("quiet")
    for i in range(50):
        run.log("loss", 1.0 / (i + 1))
    run.flush()
    details = RunDetails(run.id, client, live=False)
    runs = CountingRuns(client.backend.runs)
    client.backend.runs = runs
    try:
        results = [details.poll() for _ in range(10)]
        assert set(results) == {"idle"} and runs.calls == ["version"] * 10, runs.calls
        run.log("loss", 0.01)
        run.flush()
        runs.calls.clear()
        assert details.poll() == "changed"
        assert runs.calls.count("version") == 1 and runs.calls.count("metric_series") == 1, runs.calls
        assert len(runs.calls) <= 8, runs.calls  # version, the run, its series' names, the new points, log, children
        assert len(details.chart.series("loss", details.info.display_name or "value")) == 51  # the new point, once
        runs.calls.clear()
        assert details.poll() == "idle" and runs.calls == ["version"]
    finally:
        client.backend.runs = runs.inner
        run.complete()


def test_a_changed_tag_value_changes_the_version(client):
    """An AutoML run's phase is one tag whose value changes: the dashboard must see it."""
    run = client.runs.start_logging("phases")
    run.set_tags({"automl.phase": "searching"})
    run.flush()
    before = client.runs.version(run.id)
    run.set_tags({"automl.phase": "ensembling"})
    run.flush()
    assert client.runs.version(run.id) != before
    run.complete()


def test_a_run_of_thousands_of_metrics_keeps_saved_outputs_small_and_differences_in_view(client):
    """3,000 per-class metrics: every dashboard's fallback kept a row per metric (1.6 MB in the saved notebook for
    one RunDetails); now the first 100 and a line saying where the rest are. The comparison shows 200 rows, the
    differing ones first, and says how many more there are and whether any of them differ."""
    from aml_magics.widgets.run_details import RunDetails
    from aml_magics.widgets.runs import RunComparison

    names = [f"class_{i:04d}_f1" for i in range(3000)]
    ids = []
    for k in range(2):
        run = client.runs.start_logging("per-class")
        for i, name in enumerate(names):
            run.log_list(name, [0.5, 0.6 if i < 2990 else 0.6 + k])  # the last ten differ between the two runs
        run.complete()
        ids.append(run.id)
    details = RunDetails(ids[0], client, live=False)
    bundle = details._repr_mimebundle_()
    assert len(bundle["text/html"]) < 150_000 and len(bundle["text/plain"]) < 15_000
    for text in (bundle["text/html"], bundle["text/plain"]):
        assert names[99] in text and names[100] not in text
        assert f"… and 2,900 more: %aml metrics {ids[0]}" in text
    compare = RunComparison(ids, client=client, live=False)
    shown, note = compare.shown_diff_rows()
    assert len(shown) == 200 and [n for _, n, _, d in shown if d] == names[2990:]  # every difference is shown
    assert note == "… and 2,800 more rows, the same in every run"
    assert note in compare.static_html() and note in repr(compare)
