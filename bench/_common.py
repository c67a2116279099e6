"""Shared by the bench scripts: --quick / --json, medians, a printed table, JSON results."""
from __future__ import annotations

import argparse
import atexit
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer repeats and points: finishes in under a minute")
    p.add_argument("--json", metavar="PATH", help="write the figures as one JSON object ('-' for stdout)")
    return p.parse_args()


def scratch(prefix: str) -> str:
    """A new temporary folder, removed when the bench exits: a bench leaves nothing behind (CI runs every bench on
    machines that live on, and a reliability run alone writes gigabytes of models)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def median_of(fn: Callable[[], float], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(fn() for _ in range(repeats))


def print_table(title: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    headers = ("figure", "ours", "anchor", "ratio", "target")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(5)]
    print(f"\n{title}  ({platform.python_implementation()} {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')})")
    for row in [headers, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def write_json(name: str, figures: dict[str, Any], path: str | None) -> None:
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(figures, indent=2)
    (RESULTS / f"{name}.json").write_text(text + "\n")
    if path == "-":
        sys.stdout.write(text + "\n")
    elif path:
        Path(path).write_text(text + "\n")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def timed_gets(session, urls, headers: dict, check: Callable[[Any], None], warmup: int = 0) -> list[float]:
    """Milliseconds of each GET of ``urls`` (after ``warmup`` untimed ones of the first), every answer ``check``ed."""
    urls = list(urls)
    for _ in range(warmup):
        session.get(urls[0], headers=headers).raise_for_status()
    times = []
    for url in urls:
        t = time.perf_counter()
        r = session.get(url, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        check(r)
    return times


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.3g}x"
