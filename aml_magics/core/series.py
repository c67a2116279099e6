"""Metric series for display: incremental, extremes-preserving downsampling that never resends.

A series of any length is shown with at most ``limit`` points. Points fall into buckets whose
size is a power of two; each complete bucket is shown as its minimum and maximum (in logging
order), so the extremes of the whole series are always visible (the MinMax / M4 family). Bucket
boundaries are stable: once a bucket is complete, its points never change, so a live view only
ever receives the buckets completed since the last update plus the current partial bucket
("tail"). Only when the series outgrows ``limit`` does the bucket size double and the view get a
fresh copy — log2(n / limit) times in a series' life.

Pure Python on purpose: the dashboards, the Jupyter server extension and static renderers share it.
"""
from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Iterable

Triple = tuple[list[int], list[float], list[float]]  # steps, timestamps, values


@dataclass
class SeriesUpdate:
    """What a view must do: ``reset`` (replace everything) or append ``fixed`` and replace ``tail``."""

    reset: bool
    fixed: Triple
    tail: Triple
    bucket: int
    total: int

    def is_empty(self) -> bool:
        """Nothing changed since the previous update (a changed tail may be empty, so check total)."""
        return not self.reset and not self.fixed[0] and not self.tail[0] and self.unchanged

    unchanged: bool = False

    def to_message(self) -> dict:
        return {
            "reset": self.reset, "bucket": self.bucket, "total": self.total,
            "fx": self.fixed[0], "ft": self.fixed[1], "fy": _json_floats(self.fixed[2]),
            "tx": self.tail[0], "tt": self.tail[1], "ty": _json_floats(self.tail[2]),
        }


@dataclass
class DownsampledSeries:
    """A series of any length in bounded memory: once it holds more than ``4 × limit`` points, every complete block
    of ``bucket_size()`` points is kept as its minimum and maximum point only (``compact``). Display buckets are
    powers of two at least that large, so what any later bucket shows is exactly what the raw points would show:
    a 24-hour run's dashboard keeps a few thousand points, not every one."""

    limit: int = 2000
    # packed arrays: 24 bytes a point instead of ~100 for three lists of Python numbers
    steps: array = field(default_factory=lambda: array("q"))
    stamps: array = field(default_factory=lambda: array("d"))
    values: array = field(default_factory=lambda: array("d"))
    bucket: int = 0  # 0: nothing sent yet
    sent_buckets: int = 0
    _last_n: int = -1
    vmin: float = math.inf  # extremes of the finite values, kept as points arrive
    vmax: float = -math.inf
    compact: bool = True
    # the compacted prefix: the first ``kept`` points held are min/max points whose original indices are ``index``;
    # the points held after them are every point from original index ``raw_start`` on
    index: array = field(default_factory=lambda: array("q"))
    kept: int = 0
    raw_start: int = 0
    block: int = 0  # the block size the prefix was compacted at

    def extend(self, steps: Iterable[int], stamps: Iterable[float], values: Iterable[float]) -> None:
        start = len(self.values)
        self.steps.extend(steps)
        self.stamps.extend(stamps)
        self.values.extend(values)
        finite = [v for v in self.values[start:] if v == v and v not in (math.inf, -math.inf)]
        if finite:
            self.vmin = min(self.vmin, min(finite))
            self.vmax = max(self.vmax, max(finite))
        if self.compact and len(self.values) - self.kept > 4 * self.limit:
            self._compact()

    def __len__(self) -> int:
        """How many points were logged (more than are held once compacted)."""
        return self.raw_start + len(self.values) - self.kept

    def _pos(self, i: int) -> int:
        """Where the first held point of original index ``i`` or later is."""
        if i >= self.raw_start:
            return self.kept + (i - self.raw_start)
        return bisect_left(self.index, i)

    def _index(self, pos: int) -> int:
        return self.index[pos] if pos < self.kept else self.raw_start + (pos - self.kept)

    def _compact(self) -> None:
        n = len(self)
        size = self.bucket_size(n)
        if self.bucket:  # never coarser than what a view holds now: full() answers in its bucket size
            size = min(size, self.bucket)
        if size < 2:
            return
        end = (n // size) * size
        # the same block size: from the block the raw points start in; a new one: the whole prefix again
        same = size == self.block
        start = (self.raw_start // size) * size if same else 0
        if end <= (self.raw_start if same else 0):
            return  # no block completed since the last compaction
        p0, p1 = self._pos(start), self._pos(end)
        picked = self._extremes(start, end, size)
        steps, stamps, values = self.steps, self.stamps, self.values
        index = self.index[:p0] + array("q", (self._index(p) for p in picked)) + self.index[p1:]
        self.steps = steps[:p0] + array("q", (steps[p] for p in picked)) + steps[p1:]
        self.stamps = stamps[:p0] + array("d", (stamps[p] for p in picked)) + stamps[p1:]
        self.values = values[:p0] + array("d", (values[p] for p in picked)) + values[p1:]
        # held after the picked points: the rest of the old prefix (when the blocks grew past it), then raw points
        self.index, self.kept = index, len(index)
        self.raw_start, self.block = max(end, self.raw_start), size

    def bucket_size(self, n: int | None = None) -> int:
        return bucket_size(len(self) if n is None else n, self.limit)

    def _extremes(self, start: int, stop: int, size: int) -> list[int]:
        """Held positions of the minimum and maximum point of every bucket of ``size`` from original index ``start``
        to ``stop`` (in order; one where they are the same point; NaN never wins over a number)."""
        values = self.values
        out: list[int] = []
        for b in range(start, stop, size):
            a, z = self._pos(b), self._pos(min(b + size, stop))
            if a >= z:
                continue  # nothing held there (a view asked for finer buckets than the prefix keeps)
            lo = hi = a
            vlo = vhi = values[a]
            for i in range(a + 1, z):
                v = values[i]
                if v < vlo or vlo != vlo:  # NaN never wins over a number
                    lo, vlo = i, v
                if v > vhi or vhi != vhi:
                    hi, vhi = i, v
            out.extend(((lo, hi) if lo <= hi else (hi, lo)) if lo != hi else (lo,))
        return out

    def _bucket_points(self, start: int, stop: int, size: int, out: Triple) -> None:
        steps, stamps, values = self.steps, self.stamps, self.values
        if size == 1 and start >= self.raw_start:
            a, z = self._pos(start), self._pos(stop)
            out[0].extend(steps[a:z])
            out[1].extend(stamps[a:z])
            out[2].extend(values[a:z])
            return
        for i in self._extremes(start, stop, size):
            out[0].append(steps[i])
            out[1].append(stamps[i])
            out[2].append(values[i])

    def update(self) -> SeriesUpdate:
        """The points a view needs since the previous update (everything after a reset)."""
        n = len(self)
        size = self.bucket_size(n)
        reset = size != self.bucket
        if not reset and n == self._last_n:
            return SeriesUpdate(False, ([], [], []), ([], [], []), size, n, unchanged=True)
        self._last_n = n
        if reset:
            self.bucket, self.sent_buckets = size, 0
        complete = n // size
        fixed: Triple = ([], [], [])
        self._bucket_points(self.sent_buckets * size, complete * size, size, fixed)
        self.sent_buckets = complete
        tail: Triple = ([], [], [])
        if complete * size < n:
            self._bucket_points(complete * size, n, size, tail)
        return SeriesUpdate(reset, fixed, tail, size, n)

    def full(self) -> SeriesUpdate:
        """Everything a new view needs (does not change what the next ``update`` sends)."""
        n = len(self)
        size = self.bucket or self.bucket_size(n)
        fixed: Triple = ([], [], [])
        self._bucket_points(0, self.sent_buckets * size, size, fixed)
        tail: Triple = ([], [], [])
        if self.sent_buckets * size < n:
            self._bucket_points(self.sent_buckets * size, n, size, tail)
        return SeriesUpdate(True, fixed, tail, size, n)


def bucket_size(n: int, limit: int) -> int:
    """Points per display bucket of a series of ``n`` on a chart of ``limit``: 1, or the smallest power of two that
    keeps two points a bucket within ``limit``."""
    if n <= limit:
        return 1
    size = 2
    while -(-n // size) * 2 > limit:
        size *= 2
    return size


def downsample(values: list[float], limit: int) -> tuple[list[int], list[float]]:
    """Indices and values of a static min/max downsampling of ``values`` to at most ``limit`` points."""
    s = DownsampledSeries(limit=limit)
    s.extend(range(len(values)), [0.0] * len(values), values)
    u = s.update()
    return u.fixed[0] + u.tail[0], u.fixed[2] + u.tail[2]


def _json_floats(values: list[float]) -> list:
    # JSON has no NaN/Infinity: send them as null (a gap in the line)
    return [v if v == v and v not in (float("inf"), float("-inf")) else None for v in values]
