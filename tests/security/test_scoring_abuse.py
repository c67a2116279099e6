"""A scoring service under abuse keeps answering keyed requests: thousands of idle, partial-header and
slow-drip connections; an oversized header; a score.py that swallows exceptions while past its time limit;
a flood of failing requests that would grow its log."""
from __future__ import annotations

import json
import os
import resource
import socket
import stat
import time
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.slow


@pytest.fixture
def model(client, tmp_path):
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=300).fit(X[:500], y[:500]), tmp_path / "model.pkl")
    client.models.register("abuse", tmp_path / "model.pkl")
    return X


def _hostport(svc):
    parts = urlsplit(svc.scoring_uri)
    return parts.hostname, parts.port


def _open(host, port, n, payload: bytes = b""):
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        if payload:
            s.sendall(payload)
        socks.append(s)
    return socks


def test_thousands_of_idle_and_slow_connections_do_not_stop_keyed_requests(client, model, monkeypatch):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"the hard limit on open files here is {hard}; the test opens 2,000 connections")
    monkeypatch.setenv("AML_MAGICS_HEADER_TIMEOUT_S", "4")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # the common default: the service inherits it
    try:
        svc = client.deployments.create("abuse-conns", "abuse")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    host, port = _hostport(svc)
    auth = {"Authorization": f"Bearer {svc.get_keys()[0]}", "Content-Type": "application/json"}
    body = json.dumps({"data": model[:1].tolist()})
    idle = _open(host, port, 1500)
    partial = _open(host, port, 400, b"POST /score HTTP/1.1\r\nHost: x\r\n")
    drip = _open(host, port, 100, b"P")
    try:
        for s in drip:  # slow drip: a byte at a time
            s.sendall(b"O")
        for i in range(20):
            r = requests.post(svc.scoring_uri, data=body, headers=auth, timeout=10)
            assert r.status_code == 200, (i, r.status_code, r.text)
        assert requests.get(f"http://{host}:{port}/", timeout=5).text == "Healthy"
        # the header-read timeout closes them: idle ones silently, partial ones with a 408
        time.sleep(5.5)
        s = partial[0]
        s.settimeout(5)
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        idle[0].settimeout(5)
        assert idle[0].recv(10) == b""
    finally:
        for s in idle + partial + drip:
            s.close()
    assert client.deployments.get_info("abuse-conns").state == "Healthy"
    client.deployments.delete("abuse-conns")


def test_the_connection_cap_answers_503_and_makes_room_from_idle_ones(client, model, monkeypatch):
    monkeypatch.setenv("AML_MAGICS_MAX_CONNECTIONS", "100")
    svc = client.deployments.create("abuse-cap", "abuse")
    host, port = _hostport(svc)
    auth = {"Authorization": f"Bearer {svc.get_keys()[0]}"}
    idle = _open(host, port, 100)
    try:  # idle connections make room: a keyed request still gets in
        assert requests.post(svc.scoring_uri, json={"data": model[:1].tolist()}, headers=auth).status_code == 200
    finally:
        for s in idle:
            s.close()
    time.sleep(0.5)
    busy = _open(host, port, 100, b"POST /score HTTP/1.1\r\nHost: x\r\n")  # each has started a request
    try:
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = s.recv(4096)
        s.close()
        assert answer.startswith(b"HTTP/1.1 503") and b"too many open connections" in answer, answer[:200]
    finally:
        for s in busy:
            s.close()
    time.sleep(0.5)
    assert requests.get(f"http://{host}:{port}/", timeout=5).text == "Healthy"
    client.deployments.delete("abuse-cap")


def test_an_oversized_header_is_answered_431_without_growing_the_server(client, model):
    svc = client.deployments.create("abuse-header", "abuse")
    host, port = _hostport(svc)
    pid = client.backend.store.query_one("SELECT server_pid FROM deployments WHERE name='abuse-header'")[0]

    def rss_kb() -> int:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    before = rss_kb()
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nX-Big: ")
    answer = b""
    try:
        for _ in range(200):  # up to 200 MB, sent in 1 MB pieces
            s.sendall(b"a" * (1 << 20))
    except OSError:
        pass  # refused and closed: the rest is never read
    s.settimeout(5)
    try:
        answer = s.recv(4096)
    except OSError:
        pass
    s.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert rss_kb() - before < 20_000
    assert requests.get(f"http://{host}:{port}/", timeout=5).text == "Healthy"
    client.deployments.delete("abuse-header")


SWALLOWING = '''
import json, time
def init():
    pass
def run(raw):
    request = json.loads(raw)
    for attempt in range(30):           # retries, swallowing every Exception
        try:
            time.sleep(request["sleep"] / 30)
            if attempt < 29:
                raise ValueError("flaky")
            return "done"
        except Exception:
            continue
    return "done"
'''


def test_the_time_limit_cannot_be_swallowed_and_liveness_answers_meanwhile(client, model, tmp_path):
    (tmp_path / "swallow.py").write_text(SWALLOWING)
    svc = client.deployments.create("abuse-limit", "abuse", score=tmp_path / "swallow.py", request_timeout_s=2)
    host, port = _hostport(svc)
    auth = {"Authorization": f"Bearer {svc.get_keys()[0]}"}
    import threading

    result = {}

    def slow():
        t = time.monotonic()
        r = requests.post(svc.scoring_uri, data=json.dumps({"sleep": 12}), headers=auth, timeout=30)
        result.update(status=r.status_code, took=time.monotonic() - t)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    t = time.monotonic()
    assert requests.get(f"http://{host}:{port}/", timeout=5).text == "Healthy"
    assert time.monotonic() - t < 0.5, "liveness waited behind run()"
    thread.join(30)
    assert result["status"] == 504 and result["took"] < 3.5, result
    time.sleep(0.6)
    quick = requests.post(svc.scoring_uri, data=json.dumps({"sleep": 0}), headers=auth, timeout=10)
    assert quick.status_code == 200 and quick.json() == "done"
    client.deployments.delete("abuse-limit")


def test_the_service_log_is_private_and_bounded(client, model, tmp_path, monkeypatch):
    monkeypatch.setenv("AML_MAGICS_SERVICE_LOG_MAX_BYTES", "20000")
    (tmp_path / "fails.py").write_text("def init():\n    pass\ndef run(raw):\n    raise RuntimeError('x' * 500)\n")
    svc = client.deployments.create("abuse-log", "abuse", score=tmp_path / "fails.py")
    auth = {"Authorization": f"Bearer {svc.get_keys()[0]}"}
    for _ in range(300):
        assert requests.post(svc.scoring_uri, data="{}", headers=auth).status_code == 500
    folder = client.backend.path / "deployments" / "abuse-log"
    logs = [folder / "service.log", folder / "service.log.1"]
    assert all(p.exists() for p in logs)
    assert sum(p.stat().st_size for p in logs) < 3 * 20000
    for p in logs:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, oct(os.stat(p).st_mode)
    assert "RuntimeError" in svc.get_logs(tail=50)
    client.deployments.delete("abuse-log")


def test_the_body_timer_covers_slow_bodies_only(client, model, monkeypatch):
    """A body that arrives in pieces within the limit is answered, and the connection kept alive past the limit
    serves its next request (the timer went with the body); a body that stops is answered 408; a request answered
    413 before its body came gets no 408 after it."""
    from tests.integration.test_scoring import _read_answer

    monkeypatch.setenv("AML_MAGICS_BODY_TIMEOUT_S", "1")
    svc = client.deployments.create("abuse-body", "abuse", max_body_bytes=10_000)
    host, port = _hostport(svc)
    key = svc.get_keys()[0]
    body = json.dumps({"data": model[:1].tolist()}).encode()
    head = (f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head + body[:10])
        time.sleep(0.4)
        s.sendall(body[10:30])
        time.sleep(0.4)
        s.sendall(body[30:])  # 0.8 s after the head: in time
        status, _, answer = _read_answer(s)
        assert status == "HTTP/1.1 200 OK" and json.loads(answer) == [0]
        time.sleep(1.5)  # past the limit, idle between requests: not a slow body
        s.sendall(head + body)
        status, _, answer = _read_answer(s)
        assert status == "HTTP/1.1 200 OK" and json.loads(answer) == [0]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head + body[:10])
        t = time.monotonic()
        status, headers, answer = _read_answer(s)
        assert status == "HTTP/1.1 408 Request Timeout" and 0.9 < time.monotonic() - t < 3
        assert "did not arrive within 1 s" in json.loads(answer)["message"]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head.replace(f"Content-Length: {len(body)}".encode(), b"Content-Length: 50000") + b"{")
        status, _, answer = _read_answer(s)
        assert status.startswith("HTTP/1.1 413")
        s.settimeout(2.5)
        rest = b""
        try:
            while chunk := s.recv(65536):
                rest += chunk
        except socket.timeout:
            pass
        assert b"408" not in rest
    assert requests.post(svc.scoring_uri, data=body, headers={"Authorization": f"Bearer {key}"}).json() == [0]


def test_a_kept_alive_connection_whose_next_head_stalls_is_answered_408(client, model, monkeypatch):
    """After an answered request, the next request's head that stops half-way, or drips a byte at a time, is
    answered 408 once the header timeout has passed since its first byte (uvicorn's keep-alive timer ends when a
    byte comes, so this timer alone closes such a connection); a head that is whole in time is answered. The timer
    is now armed only when a read leaves a head unfinished, not for every request."""
    from tests.integration.test_scoring import _read_answer

    monkeypatch.setenv("AML_MAGICS_HEADER_TIMEOUT_S", "1.5")
    svc = client.deployments.create("abuse-head", "abuse")
    host, port = _hostport(svc)
    key = svc.get_keys()[0]
    body = json.dumps({"data": model[:1].tolist()}).encode()
    head = (f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    for drip in (False, True):
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(head + body)
            assert _read_answer(s)[0] == "HTTP/1.1 200 OK"
            s.sendall(head[:12])  # the next request begins, and stalls (or drips)
            t = time.monotonic()
            if drip:
                for byte in head[12:20]:
                    time.sleep(0.25)
                    s.sendall(bytes([byte]))
            status, _, answer = _read_answer(s)
            assert status == "HTTP/1.1 408 Request Timeout", (drip, status)
            assert 1.2 < time.monotonic() - t < 4, time.monotonic() - t
            assert "head did not arrive within 1.5 s" in json.loads(answer)["message"]
    with socket.create_connection((host, port), timeout=10) as s:  # a head in pieces, whole in time
        for _ in range(3):
            s.sendall(head[:12])
            time.sleep(0.5)
            s.sendall(head[12:] + body)
            assert _read_answer(s)[0] == "HTTP/1.1 200 OK"
    client.deployments.delete("abuse-head")


def test_a_pipelined_body_waiting_behind_a_slow_run_is_not_timed_out(client, model, monkeypatch, tmp_path):
    """A request pipelined behind another is not read until that one is answered (uvicorn stops reading): its body
    waits in the socket through no fault of the client, and must not be answered 408 however long the first
    run() takes."""
    from tests.integration.test_scoring import _read_answer

    (tmp_path / "slow.py").write_text(
        "import json, time\ndef init():\n    pass\n"
        "def run(raw):\n    time.sleep(json.loads(raw)['sleep'])\n    return 'done'\n")
    monkeypatch.setenv("AML_MAGICS_BODY_TIMEOUT_S", "1")
    svc = client.deployments.create("abuse-pipe", "abuse", score=tmp_path / "slow.py", request_timeout_s=10)
    host, port = _hostport(svc)
    key = svc.get_keys()[0]

    def request(body: bytes) -> tuple[bytes, bytes]:
        return (f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode(), body

    head1, body1 = request(b'{"sleep": 2.5}')
    head2, body2 = request(b'{"sleep": 0, "pad": "' + b"x" * 200 + b'"}')
    with socket.create_connection((host, port), timeout=15) as s:
        t = time.monotonic()
        s.sendall(head1 + body1)
        time.sleep(0.3)  # the first run() has its body and sleeps
        s.sendall(head2 + body2[:5])  # pipelined: uvicorn reads no more of it until the first is answered
        time.sleep(0.3)
        s.sendall(body2[5:])
        for _ in range(2):
            status, _, answer = _read_answer(s)
            assert status == "HTTP/1.1 200 OK" and json.loads(answer) == "done", (status, answer)
        assert time.monotonic() - t > 2


def test_a_typo_in_a_tuning_knob_is_one_warning_and_the_default(client, model, monkeypatch):
    """Before: ``AML_MAGICS_BODY_TIMEOUT_S=3O`` made the service fail to start with a traceback."""
    monkeypatch.setenv("AML_MAGICS_BODY_TIMEOUT_S", "3O")
    monkeypatch.setenv("AML_MAGICS_HEADER_TIMEOUT_S", "inf")
    monkeypatch.setenv("AML_MAGICS_MAX_CONNECTIONS", "-5")
    monkeypatch.setenv("AML_MAGICS_SERVICE_LOG_MAX_BYTES", "5MB")
    svc = client.deployments.create("abuse-knobs", "abuse")
    auth = {"Authorization": f"Bearer {svc.get_keys()[0]}"}
    assert requests.post(svc.scoring_uri, json={"data": model[:1].tolist()}, headers=auth).status_code == 200
    logs = client.deployments.get_logs("abuse-knobs")
    for name in ("BODY_TIMEOUT_S='3O'", "HEADER_TIMEOUT_S='inf'", "MAX_CONNECTIONS='-5'", "LOG_MAX_BYTES='5MB'"):
        assert sum(name in line and "using" in line for line in logs.splitlines()) == 1, (name, logs)
    assert "Traceback" not in logs
    client.deployments.delete("abuse-knobs")
