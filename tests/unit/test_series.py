"""Display downsampling: bounded, extremes kept, stable buckets, nothing resent."""
from __future__ import annotations

import math
import random

from aml_magics.core.series import DownsampledSeries, downsample


def _feed(series, values, start=0):
    series.extend(range(start, start + len(values)), [float(i) for i in range(start, start + len(values))], values)


def test_small_series_is_sent_whole_then_only_new_points():
    s = DownsampledSeries(limit=100)
    _feed(s, [1.0, 2.0, 3.0])
    u = s.update()
    assert u.reset and u.fixed[2] == [1.0, 2.0, 3.0] and u.tail[0] == []
    assert s.update().is_empty()
    _feed(s, [4.0], start=3)
    u = s.update()
    assert not u.reset and u.fixed[2] == [4.0]


def test_bounded_and_extremes_kept_for_100k_points():
    rng = random.Random(0)
    values = [rng.gauss(0, 1) for _ in range(100_000)]
    values[31_337], values[77_777] = 50.0, -50.0
    s = DownsampledSeries(limit=2000)
    _feed(s, values)
    u = s.update()
    shown = u.fixed[2] + u.tail[2]
    assert len(shown) <= 2000
    assert max(shown) == 50.0 and min(shown) == -50.0
    shown_steps = u.fixed[0] + u.tail[0]
    assert shown_steps == sorted(shown_steps)  # in logging order
    assert 31_337 in shown_steps and 77_777 in shown_steps


def test_live_updates_never_resend_completed_buckets():
    s = DownsampledSeries(limit=2000)
    _feed(s, [math.sin(i / 50) for i in range(100_000)])
    first = s.update()
    sent_fixed = len(first.fixed[0])
    resets = 0
    for batch in range(1, 101):  # 100 updates of 100 new points
        start = 100_000 + (batch - 1) * 100
        _feed(s, [math.sin(i / 50) for i in range(start, start + 100)], start=start)
        u = s.update()
        resets += u.reset
        if not u.reset:
            assert len(u.fixed[0]) <= 2 * (100 // s.bucket + 2)
            assert len(u.tail[0]) <= 2
        sent_fixed += len(u.fixed[0])
    assert resets == 0  # 110,000 points stay in the same bucket size
    assert sent_fixed <= 2000
    full = s.full()
    assert len(full.fixed[0]) + len(full.tail[0]) <= 2000


def test_bucket_size_doubles_rarely():
    s = DownsampledSeries(limit=1000)
    resets = 0
    for i in range(0, 64_000, 500):
        _feed(s, [float(v) for v in range(i, i + 500)], start=i)
        resets += s.update().reset
    # the first update plus at most one per doubling of the bucket size (1 → 128)
    assert s.bucket == 128
    assert 2 <= resets <= 1 + int(math.log2(s.bucket))


def test_nan_is_a_gap_not_an_extreme():
    s = DownsampledSeries(limit=10)
    _feed(s, [1.0, float("nan"), 3.0] * 20)
    msg = s.update().to_message()
    assert None not in msg["fy"] or all(v is None or v >= 1.0 for v in msg["fy"])
    assert max(v for v in msg["fy"] + msg["ty"] if v is not None) == 3.0


def test_static_downsample_helper():
    idx, vals = downsample([float(i % 7) for i in range(10_000)], 300)
    assert len(vals) <= 300 and max(vals) == 6.0 and min(vals) == 0.0
