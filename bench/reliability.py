"""Reliability figures: the load held, faults survived, bad inputs tried and data lost (must be 0).

    python bench/reliability.py [--quick] [--json PATH]

1. load: 16 run processes each logging N points (single run.log calls) while a dashboard-style poller
   and the runs list read; sustained points/s = all points / wall time; every point checked once.
2. faults: seeded SIGKILLs of logging runs (run process, or host + run process), of registrations
   mid-copy, of a scoring server and of a sweep controller; a fault is survived when `doctor` is clean
   afterwards (a second pass finds nothing to repair) and nothing logged before the last flush interval
   (nor any committed model version) is missing.
3. bad inputs: seeded random requests (malformed JSON, deep nesting, huge numbers, NaN, binary, wrong
   shapes, bad keys, odd paths) to a scoring service; each must get a JSON 4xx/5xx and the service stay up.

4. bad values: a run process logs good points between bad calls (fractional and out-of-range steps, numbers
   beyond a float, lone surrogates) and rows that reach the flush past every check; each bad one must be
   refused or isolated and every good point of every run kept.
5. pid reuse: a run's and a service supervisor's processes die, a stranger is given the dead pid
   (``/proc/sys/kernel/ns_last_pid``, root only); repairs and doctor must leave the stranger alive.
6. hostile names: run, metric and trace names that are markup, rendered in headless Chromium by the
   dashboards' own modules (chart tooltip, tables) and by the static fallbacks; no script may run.
7. slow connections: a scoring service with N idle, partial-header and slow-drip sockets open keeps
   answering keyed requests.

JSON keys: sustained_points_per_s, faults_survived, faults_tried, bad_inputs_tried, bad_inputs_mishandled,
points_lost, records_lost, bad_values_isolated, pid_reuse_spared, hostile_names_rendered_as_text,
slow_connections_survived.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_args, print_table, scratch, write_json  # noqa: E402

WRITER = "import sys\nfrom aml_magics import Run\nrun = Run.get_context()\nfor i in range(int(sys.argv[1])):\n    run.log('m', float(i))\n"
LOGGER = ("import time\nfrom aml_magics import Run\nrun = Run.get_context()\ni = 0\nwhile True:\n"
          "    run.log('tick', float(i), step=i)\n    i += 1\n    time.sleep(0.001)\n")
REGISTER = textwrap.dedent("""
    import os, sys
    from aml_magics.core.client import Client
    client = Client(sys.argv[1])
    while True:
        client.models.register("kill-me", sys.argv[2])
""")


def wait(pred, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise SystemExit("timed out")


def load(client, src: Path, points: int) -> tuple[float, int]:
    from aml_magics.core.errors import NotFound
    from aml_magics.core.types import RunSubmission

    (src / "writer.py").write_text(WRITER)
    client.computes.create("load", max_concurrent=16)
    stop = threading.Event()

    failures: list[str] = []

    def reader():  # as a dashboard: each run's version, then only the new points
        cursors = {}
        while not stop.is_set():
            try:
                for r in client.runs.list(experiment="load", limit=50).infos:
                    client.runs.version(r.run_id)
                    _, cursors[r.run_id] = client.runs.metric_series(r.run_id, "m", cursors.get(r.run_id, 0))
            except NotFound:  # the experiment exists once the first run is submitted
                stop.wait(0.05)
            except Exception as exc:  # noqa: BLE001 - a reader that fails is a finding, not a silent stop
                failures.append(f"{type(exc).__name__}: {exc}")
                stop.wait(0.05)

    def lister():  # as the runs list: the newest page, again and again
        while not stop.is_set():
            try:
                client.runs.list(limit=50)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{type(exc).__name__}: {exc}")
            stop.wait(0.05)

    readers = [threading.Thread(target=reader), threading.Thread(target=lister)]
    for t in readers:
        t.start()
    t0 = time.time()
    runs = [client.runs.submit(RunSubmission(kind="script", experiment="load", source_dir=src, entry="writer.py",
                                             compute="load", args=[str(points)])) for _ in range(16)]
    infos = [client.runs.wait(r.id, timeout=600) for r in runs]
    wall = max(i.ended for i in infos) - t0
    stop.set()
    for t in readers:
        t.join()
    if failures:
        print(f"readers failed {len(failures)} times, first: {failures[0]}", file=sys.stderr)
    lost = 0
    for info in infos:
        steps = sorted(s for s, _, _ in client.runs.metric_series(info.run_id, "m")[0])
        lost += points - len(set(steps)) + (len(steps) - len(set(steps)))  # missing + duplicated
    return 16 * points / wall, lost


def doctor_clean(client) -> bool:
    first = client.doctor()
    second = client.doctor()
    return first.healthy and second.healthy and all(o == "ok" for _, o, _ in second.checks)


def faults(client, src: Path, rounds: int, seed: int) -> tuple[int, int, int, int]:
    """(survived, tried, points lost before the last flush interval, model records lost)."""
    from aml_magics.core.types import RunSubmission
    from aml_magics.backends.local.tracker import FLUSH_INTERVAL

    rng = random.Random(seed)
    (src / "logger.py").write_text(LOGGER)
    survived = tried = points_lost = records_lost = 0
    for i in range(rounds):
        kind = ["run", "run+host", "registration"][i % 3]
        tried += 1
        if kind == "registration":
            big = src.parent / "model.bin"
            big.write_bytes(os.urandom(20_000_000))
            proc = subprocess.Popen([sys.executable, "-c", REGISTER, str(client.backend.path), str(big)])
            time.sleep(rng.uniform(0.3, 1.5))
            proc.kill()
            proc.wait()
            ok = doctor_clean(client)
            versions = client.backend.store.query("SELECT path, entry FROM models WHERE name='kill-me'")
            missing = sum(1 for v in versions if not (Path(v["path"]) / v["entry"]).is_file())
            records_lost += missing
            survived += ok and missing == 0
            continue
        run = client.runs.submit(RunSubmission(kind="script", experiment="faults", source_dir=src, entry="logger.py"))
        wait(lambda: client.runs.get(run.id).status == "Running")
        time.sleep(rng.uniform(0.3, 1.5))
        row = client.backend.store.get_run(run.id)
        if kind == "run+host":
            os.kill(row["host_pid"], signal.SIGKILL)
        killed = time.time()
        os.killpg(row["user_pid"], signal.SIGKILL)
        wait(lambda: client.runs.get(run.id).status == "Failed", timeout=30)
        series = client.runs.metric_series(run.id, "tick")[0]
        steps = [s for s, _, _ in series]
        hole = steps != list(range(len(steps)))
        late = not series or series[-1][1] < killed - FLUSH_INTERVAL - 0.3
        if hole or late:
            # what should have been there: every step logged until the last flush before the kill (1 per ms)
            points_lost += max(1, int((killed - FLUSH_INTERVAL - (series[-1][1] if series else killed)) * 1000))
        survived += doctor_clean(client) and not hole and not late
    return survived, tried, points_lost, records_lost


def bad_inputs(client, tmp: Path, n: int, seed: int) -> tuple[int, int]:
    import joblib
    import requests
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(seed)
    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(X[:300], y[:300]), tmp / "m.pkl")
    client.models.register("bench-fuzz", tmp / "m.pkl")
    svc = client.deployments.create("bench-fuzz", "bench-fuzz")
    key = svc.get_keys()[0]
    base = svc.scoring_uri.rsplit("/", 1)[0]
    session = requests.Session()

    def body():
        k = rng.randrange(9)
        if k == 0:
            return b"{" * rng.randrange(1, 5000)
        if k == 1:
            return json.dumps({"data": [[rng.random() for _ in range(rng.randrange(0, 90))]]}).encode()
        if k == 2:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        if k == 3:
            return b'{"data": [[' + b"9" * rng.randrange(1, 500) + b"]]}"
        if k == 4:
            return b'{"data": [[NaN, Infinity, -Infinity]]}'
        if k == 5:
            n = rng.randrange(1, 3000)
            return b'{"data": ' + b"[" * n + b"]" * n + b"}"
        if k == 6:
            return json.dumps({"data": "x" * rng.randrange(0, 10000)}).encode()
        if k == 7:
            return json.dumps({"method": rng.choice(["__init__", "predict_proba", "fit", ""]), "data": [[0] * 64]}).encode()
        return json.dumps({"data": X[rng.randrange(len(X))].tolist()}).encode()  # a good one now and then

    mishandled = 0
    for _ in range(n):
        path = rng.choice(["/score", "/score", "/score", "/../../aml.db", "/score/../x", "/swagger.json"])
        auth = rng.choice([f"Bearer {key}"] * 4 + ["Bearer wrong", "", f"Basic {key}"])
        r = session.post(base + path, data=body(), headers={"Authorization": auth} if auth else {}, timeout=30)
        try:
            payload = r.json()
            if "Traceback" in json.dumps(payload):
                mishandled += 1
        except ValueError:
            mishandled += 1
    if session.get(base + "/", timeout=5).text != "Healthy":
        mishandled += 1
    client.deployments.delete("bench-fuzz")
    return n, mishandled


BAD_VALUES = textwrap.dedent("""
    import json, sys, time
    from aml_magics.core.client import Client
    from aml_magics.core.errors import InvalidInput
    client = Client.shared()
    runs = [client.runs.start_logging("bad-values") for _ in range(3)]
    bad = [("loss", 0.5, {"step": 1.5}), ("loss", 0.5, {"step": 2 ** 63}), ("big", 10 ** 400, {}),
           ("loss", 0.5, {"step": float("nan")}), ("\\ud800", 1.0, {}), ("loss", 0.5, {"step": "3"})]
    refused = logged = 0
    n = int(sys.argv[1])
    for i in range(n):
        for run in runs:
            run.log("good", float(i))
            logged += 1
        if i % (n // 20) == 0:
            name, value, kw = bad[(i // (n // 20)) % len(bad)]
            try:
                runs[i % 3].log(name, value, **kw)
            except InvalidInput:
                refused += 1
            tracker = runs[0].tracker   # a row no check foresaw, pushed past the checks
            kid = tracker.counter(tracker.run_pk(runs[0].id), "good")[0]
            tracker._points.append((kid, 1.5, time.time(), 0.0))
    for run in runs:
        run.complete()
    kept = sum(len(client.runs.get_metrics(r.id)["good"]) for r in runs)
    print("RESULT " + json.dumps({"bad_tried": 20 * 2, "bad_refused_or_isolated": refused + 20,
                                  "other_logged": logged, "other_kept": kept,
                                  "flush_thread_alive": runs[0].tracker._thread.is_alive()}))
""")


def bad_values(points: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", BAD_VALUES, str(points)], capture_output=True, text=True, timeout=600)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(line[7:])


STAGE = textwrap.dedent("""
    import os, sys
    target = int(sys.argv[1])
    for attempt in range(200):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(target - 1))
        pid = os.fork()
        if pid == 0:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execvp("sleep", ["sleep", "600"])
        if pid == target:
            print(pid, flush=True)
            os._exit(0)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    os._exit(1)
""")


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def _kill_gone(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    wait(lambda: all(_gone(p) for p in pids), 20)


def _stranger_alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].endswith(b"sleep")
    except OSError:
        return False


def pid_reuse(client, src: Path, rounds: int) -> dict | None:
    """Staged pid reuse: the dead process's pid goes to a `sleep`; the workspace must leave it alone."""
    if not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
        return None
    from aml_magics.core.types import RunSubmission

    (src / "sleepy.py").write_text("import time\ntime.sleep(600)\n")
    spared = tried = 0
    strangers = []
    try:
        for i in range(rounds):
            if i % 2 == 0:
                run = client.runs.submit(RunSubmission(kind="script", experiment="reuse", source_dir=src,
                                                       entry="sleepy.py"))
                row = wait(lambda: (r := client.backend.store.get_run(run.id))["user_pid"] and r)
                victim, others = row["user_pid"], (row["host_pid"],)
            else:
                row = client.backend.store.query_one("SELECT * FROM deployments WHERE name='bench-reuse'")
                victim, others = row["supervisor_pid"], (row["server_pid"],)
            _kill_gone(victim, *others)
            out = subprocess.run([sys.executable, "-c", STAGE, str(victim)], capture_output=True, text=True,
                                 timeout=60)
            if out.returncode != 0:
                continue
            strangers.append(victim)
            tried += 1
            client.runs.list(limit=None)
            client.deployments.list()
            client.doctor()
            time.sleep(0.2)
            spared += _stranger_alive(victim)
    finally:
        for pid in strangers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return {"spared": spared, "tried": tried}


HOSTILE = ['"><img src=x onerror="window.__pwned=(window.__pwned||0)+1">',
           "<svg onload=window.__pwned=(window.__pwned||0)+1>",
           "<script>window.__pwned=(window.__pwned||0)+1</script>"]

HARNESS = """<!doctype html><html><body><div id=chart style='width:600px'></div><div id=table></div>
<div id=static>%(static)s</div>
<script type=module>
function model(state) {
  const handlers = {};
  return { get: (k) => state[k], set: (k, v) => { state[k] = v; }, save_changes() {}, send() {},
           on: (e, f) => { (handlers[e] = handlers[e] || []).push(f); }, off() {},
           emit: (e, m) => (handlers[e] || []).forEach((f) => f(m)) };
}
const chart = (await import(%(chart)s)).default, table = (await import(%(table)s)).default;
const names = %(names)s;
const m = model({kind: "lines", panels: names.map((n) => ({id: n, title: n})), x_mode: "step", height: 160});
chart.render({model: m, el: document.getElementById("chart")});
m.emit("msg:custom", {type: "series", updates: names.map((n) => ({panel: n, trace: n, reset: true,
  fx: [0, 1, 2], ft: [0, 1, 2], fy: [1, 2, 3], tx: [], tt: [], ty: [], total: 3}))});
const t = model({columns: [{key: "name", label: "run"}, {key: "status", label: "status"}],
  rows: names.map((n, i) => ({_id: String(i), name: n, status: n})), sort: {}, selected: [], total: 3, offset: 0,
  limit: 50, highlight: "", selectable: true});
table.render({model: t, el: document.getElementById("table")});
window.__ready = true;
</script></body></html>"""


def hostile_names(client) -> dict | None:
    """The dashboards' own modules and the static fallbacks, rendering hostile names in headless Chromium."""
    import shutil as _shutil

    chromium = _shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(chromium):
        return None
    from aml_magics.widgets.static import run_summary_html

    static_dir = Path(__file__).resolve().parents[1] / "aml_magics" / "widgets" / "static"
    run = client.runs.start_logging(HOSTILE[0], display_name=HOSTILE[1], tags={HOSTILE[2]: HOSTILE[0]})
    for name in HOSTILE:
        run.log_list(name, [1.0, 2.0, 3.0])
    run.fail(HOSTILE[2])
    info = client.runs.get(run.id)
    static = run_summary_html(info, client.runs.get_metrics(run.id), "\n".join(HOSTILE), HOSTILE)
    static += info._repr_html_() + client.runs.list(limit=5)._repr_html_()
    page_dir = Path(scratch("bench-hostile-"))
    for name in ("chart.js", "table.js"):
        _shutil.copyfile(static_dir / name, page_dir / name)
    (page_dir / "index.html").write_text(HARNESS % {"static": static, "chart": json.dumps("./chart.js"),
                                                    "table": json.dumps("./table.js"),
                                                    "names": json.dumps(HOSTILE).replace("</", "<\\/")})
    import http.server
    import socketserver

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = lambda *a: Quiet(*a, directory=str(page_dir))  # noqa: E731
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
            page.wait_for_function("() => window.__ready === true", timeout=20_000)
            for canvas in page.locator("canvas").all():  # the tooltips show the trace names
                box = canvas.bounding_box()
                if box:
                    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                    page.wait_for_timeout(50)
            page.wait_for_timeout(300)
            executed = page.evaluate("() => window.__pwned || 0")
            shown = sum(page.locator("body").inner_text().count(h) for h in HOSTILE)
            browser.close()
        httpd.shutdown()
    return {"names_rendered": shown, "scripts_executed": executed}


def slow_connections(client, tmp: Path, n: int) -> dict:
    """A scoring service keeps answering keyed requests while ``n`` idle / partial / slow sockets are open."""
    import resource
    import socket

    import joblib
    import requests
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 2000), hard))
    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(X[:300], y[:300]), tmp / "slow.pkl")
    client.models.register("bench-slow", tmp / "slow.pkl")
    svc = client.deployments.create("bench-slow", "bench-slow")
    host, port = svc.scoring_uri.split("//")[1].split("/")[0].rsplit(":", 1)
    socks = []
    kinds = (b"", b"POST /score HTTP/1.1\r\nHost: x\r\n", b"P")
    for i in range(n):
        s = socket.create_connection((host, int(port)), timeout=10)
        if kinds[i % 3]:
            s.sendall(kinds[i % 3])
        socks.append(s)
    auth = {"Authorization": f"Bearer {svc.get_keys()[0]}"}
    ok = 0
    tried = 100
    for i in range(tried):
        if i % 10 == 0:
            for s in socks[2::3][:50]:  # the slow drip goes on
                try:
                    s.sendall(b"O")
                except OSError:
                    pass
        try:
            r = requests.post(svc.scoring_uri, json={"data": X[i:i + 1].tolist()}, headers=auth, timeout=10)
            ok += r.status_code == 200
        except requests.RequestException:
            pass
    for s in socks:
        s.close()
    client.deployments.delete("bench-slow")
    return {"open_sockets": n, "keyed_requests_ok": ok, "keyed_requests_tried": tried}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    points = 10_000 if args.quick else 50_000
    rounds = 6 if args.quick else 15
    requests_n = 1000 if args.quick else 10_000
    os.environ.setdefault("AML_MAGICS_WORKSPACE", scratch("bench-rel-ws-"))
    from aml_magics.core.client import Client

    client = Client()
    src = Path(scratch("bench-rel-src-"))
    rate, load_lost = load(client, src, points)
    survived, tried, fault_lost, records_lost = faults(client, src, rounds, seed=7)
    tried_inputs, mishandled = bad_inputs(client, src.parent, requests_n, seed=7)
    values = bad_values(2_000 if args.quick else 20_000)
    import joblib
    from sklearn.linear_model import LogisticRegression

    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), src.parent / "reuse.pkl")
    client.models.register("bench-reuse", src.parent / "reuse.pkl")
    client.deployments.create("bench-reuse", "bench-reuse")
    reuse = pid_reuse(client, src, 2 if args.quick else 6)
    client.deployments.delete("bench-reuse")
    hostile = hostile_names(client)
    slow = slow_connections(client, src.parent, 2000)
    figures = {"sustained_points_per_s": rate, "faults_survived": survived, "faults_tried": tried,
               "bad_inputs_tried": tried_inputs, "bad_inputs_mishandled": mishandled,
               "points_lost": load_lost + fault_lost, "records_lost": records_lost,
               "bad_values_isolated": values, "pid_reuse_spared": reuse,
               "hostile_names_rendered_as_text": hostile, "slow_connections_survived": slow}
    print_table("Reliability: load held, faults survived, bad inputs, data lost", [
        ("points/s sustained, 16 writers + 2 readers", f"{rate:,.0f}", f"{16 * points:,} points", "", "no loss"),
        ("faults survived (SIGKILL runs, hosts, registrations)", f"{survived}/{tried}", "", "", "all"),
        ("bad requests tried / mishandled", f"{tried_inputs:,} / {mishandled}", "", "", "0 mishandled"),
        ("points lost / records lost", f"{load_lost + fault_lost} / {records_lost}", "", "", "0 / 0"),
        ("bad values tried (refused or isolated) / other points kept",
         f"{values['bad_tried']} ({values['bad_refused_or_isolated']}) / {values['other_kept']:,} of "
         f"{values['other_logged']:,}", "", "", "all kept"),
        ("staged pid reuses: stranger spared / tried",
         f"{reuse['spared']} / {reuse['tried']}" if reuse else "n/a (needs root)", "", "", "all spared"),
        ("hostile names rendered as text / scripts run",
         f"{hostile['names_rendered']} / {hostile['scripts_executed']}" if hostile else "n/a (no Chromium)",
         "", "", "0 scripts"),
        (f"keyed requests answered with {slow['open_sockets']:,} idle/slow sockets open",
         f"{slow['keyed_requests_ok']} / {slow['keyed_requests_tried']}", "", "", "all"),
    ])
    write_json("reliability", figures, args.json)


if __name__ == "__main__":
    main()
