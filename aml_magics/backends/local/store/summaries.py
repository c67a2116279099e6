"""Long scalar series for display, in compiled code: the same min/max buckets as ``core.series.DownsampledSeries``
(every bucket a power of two of points, shown as its minimum and maximum point in logging order; NaN never wins
over a number), computed with numpy over the packed chunks, and for long series from ``metric_summaries``: the
minimum and maximum point of every block of ``base`` points, written by the first reader and extended by later
ones. A display bucket of a 10,000,000-point series is then 16 or more whole blocks: a first paint reads ~10,000
summaries (a few rows) instead of 240 MB of points.

numpy is imported only here and only when a long series is read (run processes log through the store without it);
without numpy the caller falls back to ``DownsampledSeries``.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from ....core.series import bucket_size
from .metrics import CHUNK_OF

BASE = 1024  # points per summary block: summaries are used once display buckets hold at least this many points
PAGE = 1024  # blocks per row of metric_summaries
_DTYPES = ("<i8", "<i8", "<f8", "<f8", "<i8", "<i8", "<f8", "<f8")  # lo index, step, time, value; hi the same

# (steps, timestamps, values, total points, cursor): the points to draw; the cursor is where a live view's reads go
# on from
Display = tuple[list[int], list[float], list[float], int, int]


def numpy_or_none() -> Any:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy comes with every ML stack; the pure Python path stays
        return None
    return numpy


class SummaryRows:
    def series_arrays(self, key_id: int, start: int, stop: int) -> tuple[Any, Any, Any]:
        """numpy arrays (steps, timestamps, values) of points ``start`` to ``stop`` of a scalar series."""
        np = numpy_or_none()
        steps, stamps, values = [], [], []
        for first, n, s_blob, t_blob, v_blob in self.query(
            f"SELECT first_index, n, steps, ts, vals FROM metric_chunks WHERE key_id=? AND first_index >= {CHUNK_OF} "
            "AND first_index < ? ORDER BY first_index",
            (key_id, key_id, start, stop),
        ):
            lo, hi = max(0, start - first), min(n, stop - first)
            steps.append(_frombuffer(np, s_blob, "<i8")[lo:hi])
            stamps.append(_frombuffer(np, t_blob, "<f8")[lo:hi])
            values.append(_frombuffer(np, v_blob, "<f8")[lo:hi])
        if not values:
            return np.zeros(0, "<i8"), np.zeros(0, "<f8"), np.zeros(0, "<f8")
        return np.concatenate(steps), np.concatenate(stamps), np.concatenate(values)

    def display_series(self, key_id: int, limit: int, base: int = BASE) -> Display | None:
        """The min/max points of a whole series for a chart of ``limit`` points, or None without numpy."""
        np = numpy_or_none()
        if np is None:
            return None
        n = self.series_length(key_id)
        size = bucket_size(n, limit)
        if size < base:  # up to ~limit/2 × base points: read them
            steps, stamps, values = self.series_arrays(key_id, 0, n)
            idx = minmax_indices(np, values, size)
            return steps[idx].tolist(), stamps[idx].tolist(), values[idx].tolist(), n, n
        blocks = n // base
        lo_i, lo_s, lo_t, lo_v, hi_i, hi_s, hi_t, hi_v = self._summaries(np, key_id, base, blocks)
        per = size // base
        full = n // size  # complete display buckets
        out_i, out_s, out_t, out_v = [], [], [], []
        if full:
            shape = (full, per)
            a = pick(np, lo_v[: full * per].reshape(shape), lowest=True) + np.arange(full) * per
            b = pick(np, hi_v[: full * per].reshape(shape), lowest=False) + np.arange(full) * per
            out_i += [lo_i[a], hi_i[b]]
            out_s += [lo_s[a], hi_s[b]]
            out_t += [lo_t[a], hi_t[b]]
            out_v += [lo_v[a], hi_v[b]]
        # the partial last bucket: its whole blocks' summaries and the points after the last whole block
        steps, stamps, values = self.series_arrays(key_id, blocks * base, n)
        rest = slice(full * per, blocks)
        index = np.arange(blocks * base, n)
        for lowest, (ci, cs, ct, cv) in ((True, (lo_i, lo_s, lo_t, lo_v)), (False, (hi_i, hi_s, hi_t, hi_v))):
            cand_i = np.concatenate([ci[rest], index])
            if len(cand_i):
                cand_v = np.concatenate([cv[rest], values])
                k = pick(np, cand_v.reshape(1, -1), lowest=lowest)[0]
                out_i.append(cand_i[k:k + 1])
                out_s.append(np.concatenate([cs[rest], steps])[k:k + 1])
                out_t.append(np.concatenate([ct[rest], stamps])[k:k + 1])
                out_v.append(cand_v[k:k + 1])
        all_i = np.concatenate(out_i)
        order = np.argsort(all_i, kind="stable")
        all_i = all_i[order]
        keep = np.ones(len(all_i), bool)
        keep[1:] = all_i[1:] != all_i[:-1]  # a bucket whose minimum is its maximum: one point
        return tuple(np.concatenate(c)[order][keep].tolist() for c in (out_s, out_t, out_v)) + (n, n)

    def _summaries(self, np, key_id: int, base: int, blocks: int) -> tuple:
        """Block summaries 0 … ``blocks`` - 1 as arrays (index, step, time, value of the minimum, then of the maximum),
        computing the missing ones and saving them when the store can be written."""
        cols: list[list] = [[] for _ in range(8)]
        have = 0
        for page, count, *blobs in self.query(
            "SELECT page, count, lo_i, lo_s, lo_t, lo_v, hi_i, hi_s, hi_t, hi_v FROM metric_summaries "
            "WHERE key_id=? AND base=? ORDER BY page", (key_id, base)):
            if page * PAGE != have:
                break  # only a whole prefix counts (a slower reader may have rewritten a page shorter)
            for col, blob, dtype in zip(cols, blobs, _DTYPES):
                col.append(_frombuffer(np, blob, dtype)[:count])
            have += count
            if count < PAGE:
                break
        arrays = [np.concatenate(c) if c else np.zeros(0, d) for c, d in zip(cols, _DTYPES)]
        if have < blocks:
            steps, stamps, values = self.series_arrays(key_id, have * base, blocks * base)
            m = values.reshape(-1, base)
            offsets = np.arange(len(m)) * base
            lo = pick(np, m, lowest=True) + offsets
            hi = pick(np, m, lowest=False) + offsets
            first = have * base
            new = [lo + first, steps[lo], stamps[lo], values[lo], hi + first, steps[hi], stamps[hi], values[hi]]
            arrays = [np.concatenate([a, b]) for a, b in zip(arrays, new)]
            self._save_summaries(key_id, base, have // PAGE, [a[(have // PAGE) * PAGE:blocks] for a in arrays])
        return tuple(a[:blocks] for a in arrays)

    def _save_summaries(self, key_id: int, base: int, first_page: int, arrays: list) -> None:
        from ....core.errors import StorageError

        rows = []
        for p in range(0, len(arrays[0]), PAGE):
            part = [a[p:p + PAGE] for a in arrays]
            rows.append((key_id, base, first_page + p // PAGE, len(part[0]),
                         *(a.astype(d, copy=False).tobytes() for a, d in zip(part, _DTYPES))))
        try:
            with self.write() as c:
                c.executemany("INSERT OR REPLACE INTO metric_summaries VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        except (sqlite3.Error, OSError, StorageError):
            pass  # a read-only or full workspace: the series is shown all the same, and summarized again next time


def pick(np, m, *, lowest: bool):
    """Per row of ``m``, the index of its first minimum (``lowest``) or first maximum; NaN never wins over a number
    (an all-NaN row gives its first point), as ``DownsampledSeries`` does."""
    nan = np.isnan(m)
    bound = np.inf if lowest else -np.inf
    key = np.where(nan, bound, m)
    idx = key.argmin(axis=1) if lowest else key.argmax(axis=1)
    rows = np.arange(len(m))
    bad = nan[rows, idx] & ~nan.all(axis=1)  # a NaN tied with a real ±inf: the first real one wins
    if bad.any():
        real = ~nan[bad] & (m[bad] == bound)
        idx[bad] = real.argmax(axis=1)
    return idx


def minmax_indices(np, values, size: int):
    """Indices of the min/max points of ``values`` in buckets of ``size`` (the last one partial), in order."""
    n = len(values)
    if size == 1:
        return np.arange(n)
    full = n // size
    parts = []
    if full:
        m = values[: full * size].reshape(full, size)
        offsets = np.arange(full) * size
        parts += [pick(np, m, lowest=True) + offsets, pick(np, m, lowest=False) + offsets]
    if full * size < n:
        tail = values[full * size:].reshape(1, -1)
        parts += [pick(np, tail, lowest=True) + full * size, pick(np, tail, lowest=False) + full * size]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, "i8")


def _frombuffer(np, blob: bytes, dtype: str):
    blob = blob or b""  # a torn blob yields its whole items; the '<' dtypes read right on any machine
    return np.frombuffer(blob[: len(blob) - len(blob) % 8], dtype=dtype)
