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


def _same_update(a, b) -> bool:
    def eq(x, y):
        return len(x) == len(y) and all(p == q or (p != p and q != q) for p, q in zip(x, y))

    return (a.reset, a.bucket, a.total, a.unchanged) == (b.reset, b.bucket, b.total, b.unchanged) and \
        all(eq(x, y) for x, y in zip(a.fixed + a.tail, b.fixed + b.tail))


def test_a_compacted_series_shows_exactly_what_every_point_shows_in_bounded_memory():
    rng = random.Random(7)
    for limit in (8, 50, 2000):
        bounded, everything = DownsampledSeries(limit=limit), DownsampledSeries(limit=limit, compact=False)
        n = 0
        for _ in range(400 if limit < 2000 else 120):
            k = rng.choice([1, 3, 17, 100, 1000, 5000])
            vals = [math.nan if rng.random() < 0.03 else math.inf if rng.random() < 0.01 else
                    float(rng.randrange(-9, 10)) for _ in range(k)]
            for s in (bounded, everything):
                s.extend(range(n, n + k), [1e9 + i for i in range(n, n + k)], vals)
            n += k
            if rng.random() < 0.7:
                assert _same_update(bounded.update(), everything.update())
            if rng.random() < 0.2:
                assert _same_update(bounded.full(), everything.full())
            assert len(bounded) == len(everything) == n
            assert len(bounded.values) <= 6 * limit + bounded.bucket_size() + 2
        assert n > 30 * limit
    assert len(bounded.values) < len(everything.values) / 5  # limit 2000: a few thousand of ~100,000 points held
