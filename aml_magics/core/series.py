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

    def extend(self, steps: Iterable[int], stamps: Iterable[float], values: Iterable[float]) -> None:
        start = len(self.values)
        self.steps.extend(steps)
        self.stamps.extend(stamps)
        self.values.extend(values)
        finite = [v for v in self.values[start:] if v == v and v not in (math.inf, -math.inf)]
        if finite:
            self.vmin = min(self.vmin, min(finite))
            self.vmax = max(self.vmax, max(finite))

    def __len__(self) -> int:
        return len(self.values)

    def bucket_size(self, n: int | None = None) -> int:
        n = len(self.values) if n is None else n
        if n <= self.limit:
            return 1
        size = 2
        while -(-n // size) * 2 > self.limit:
            size *= 2
        return size

    def _bucket_points(self, start: int, stop: int, size: int, out: Triple) -> None:
        steps, stamps, values = self.steps, self.stamps, self.values
        if size == 1:
            out[0].extend(steps[start:stop])
            out[1].extend(stamps[start:stop])
            out[2].extend(values[start:stop])
            return
        for b in range(start, stop, size):
            end = min(b + size, stop)
            lo = hi = b
            vlo = vhi = values[b]
            for i in range(b + 1, end):
                v = values[i]
                if v < vlo or vlo != vlo:  # NaN never wins over a number
                    lo, vlo = i, v
                if v > vhi or vhi != vhi:
                    hi, vhi = i, v
            for i in ((lo, hi) if lo <= hi else (hi, lo)) if lo != hi else (lo,):
                out[0].append(steps[i])
                out[1].append(stamps[i])
                out[2].append(values[i])

    def update(self) -> SeriesUpdate:
        """The points a view needs since the previous update (everything after a reset)."""
        n = len(self.values)
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
        n = len(self.values)
        size = self.bucket or self.bucket_size(n)
        fixed: Triple = ([], [], [])
        self._bucket_points(0, self.sent_buckets * size, size, fixed)
        tail: Triple = ([], [], [])
        if self.sent_buckets * size < n:
            self._bucket_points(self.sent_buckets * size, n, size, tail)
        return SeriesUpdate(True, fixed, tail, size, n)


def downsample(values: list[float], limit: int) -> tuple[list[int], list[float]]:
    """Indices and values of a static min/max downsampling of ``values`` to at most ``limit`` points."""
    s = DownsampledSeries(limit=limit)
    s.extend(range(len(values)), [0.0] * len(values), values)
    u = s.update()
    return u.fixed[0] + u.tail[0], u.fixed[2] + u.tail[2]


def _json_floats(values: list[float]) -> list:
    # JSON has no NaN/Infinity: send them as null (a gap in the line)
    return [v if v == v and v not in (float("inf"), float("-inf")) else None for v in values]
