"""Fuzzing a real scoring service: generated and hand-made abuse, the service must stay up and honest."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import joblib
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

FUZZ_EXAMPLES = int(os.environ.get("AML_MAGICS_FUZZ_EXAMPLES", "10000"))
LEAKS = ("Traceback", 'File "', "site-packages", "aml_magics/", "secret internal detail")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """One service for the module (the default scorer of a digits model), in its own workspace."""
    from aml_magics.core.client import Client

    ws = tmp_path_factory.mktemp("fuzz") / "ws"
    client = Client(ws)
    X, y = load_digits(return_X_y=True)
    path = tmp_path_factory.mktemp("model") / "model.pkl"
    joblib.dump(LogisticRegression(max_iter=300).fit(X[:400], y[:400]), path)
    client.models.register("fuzz", path)
    os.environ["AML_MAGICS_BODY_TIMEOUT_S"] = "2"
    try:
        svc = client.deployments.create("fuzz", "fuzz:1")
    finally:
        os.environ.pop("AML_MAGICS_BODY_TIMEOUT_S", None)
    info = client.deployments.get_info("fuzz")
    yield svc, svc.get_keys()[0], X, client, info
    client.deployments.delete("fuzz")
    from tests.conftest import kill_workspace_processes

    kill_workspace_processes(ws)


def server_pid(client) -> int:
    return client.backend.store.query_one("SELECT server_pid FROM deployments WHERE name='fuzz'")[0]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def check(resp: requests.Response, name: str) -> None:
    assert 200 <= resp.status_code < 600, name
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"{name}: a non-JSON answer {resp.status_code} {resp.text[:200]!r}") from None
    text = json.dumps(body)
    for leak in LEAKS:
        assert leak not in text, f"{name}: {leak!r} leaked to the client: {text[:300]}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps({"data": v}, allow_nan=True).encode()),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(1, 3000).map(lambda n: b'{"data": ' + b"[" * n + b"]" * n + b"}"),  # deep nesting
    st.integers(1, 400).map(lambda n: b'{"data": [[' + b"9" * n + b"e99999]]}"),  # huge numbers
    st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=70), max_size=3)
      .map(lambda rows: json.dumps({"data": rows}, allow_nan=True).encode()),  # wrong shapes, NaN/Infinity
    st.sampled_from([b'{"data": [[NaN]]}', b'{"data": Infinity}', b'{"method": "predict_proba", "data": [[1]]}',
                     b'{"method": "__class__", "data": [[0]]}', b"\xff\xfe\x00\x00", b"null", b"[]", b'""']),
)
paths = st.sampled_from(["/score", "/score/", "//score", "/score?x=1", "/", "/swagger.json", "/../../etc/passwd",
                         "/%2e%2e/%2e%2e/etc/passwd", "/score/../score", "/static/../../aml.db", "/..%2f..%2fkeys.json",
                         "/" + "a" * 4000])
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200).map(str.strip)


def test_ten_thousand_generated_requests(service):
    svc, key, X, client, _ = service
    parts = urlsplit(svc.scoring_uri)
    base = f"{parts.scheme}://{parts.netloc}"
    session = requests.Session()
    pid = server_pid(client)
    counts = {"requests": 0, "answered": time.monotonic(), "before": None}
    rss_before = rss_kb(pid)

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies, path=paths, method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE"]),
           auth=st.sampled_from(["good", "good", "good", "none", "wrong", "scheme"]),
           content_type=st.sampled_from(["application/json", "text/plain", "", "multipart/form-data; boundary=x"]),
           extra=st.dictionaries(st.sampled_from(["X-Forwarded-For", "X-Request-Id", "Accept", "Cookie", "Range"]),
                                 header_values, max_size=3))
    def one(body, path, method, auth, content_type, extra):
        headers = dict(extra)
        if content_type:
            headers["Content-Type"] = content_type
        if auth == "good":
            headers["Authorization"] = f"Bearer {key}"
        elif auth == "wrong":
            headers["Authorization"] = "Bearer " + "x" * len(key)
        elif auth == "scheme":
            headers["Authorization"] = f"Basic {key}"
        try:
            resp = session.request(method, base + path, data=body, headers=headers, timeout=30)
        except requests.ConnectionError as exc:  # (one CI run: a kept-alive connection closed unanswered, once in
            # 10,000, not reproduced here in 4 runs): say what the server and the connection were doing
            raise AssertionError(
                f"{method} {path} {body[:60]!r}: {type(exc).__name__}; server pid {pid} -> {server_pid(client)}; "
                f"{time.monotonic() - counts['answered']:.2f} s after the answer before, {counts['before']}") from exc
        counts["requests"] += 1
        counts["answered"] = time.monotonic()
        counts["before"] = (f"{method} {path} -> {resp.status_code} connection={resp.headers.get('connection')!r} "
                            f"len={len(resp.content)}")
        if method == "GET" and path == "/" and resp.status_code == 200:
            assert resp.text == "Healthy"  # the liveness route's contract is plain text
            return
        check(resp, f"{method} {path} {body[:60]!r}")
        if auth != "good" and path.startswith("/score") and resp.status_code == 200:
            raise AssertionError("answered /score without the key")

    one()
    assert counts["requests"] >= FUZZ_EXAMPLES
    assert requests.get(base + "/", timeout=5).text == "Healthy"
    ok = requests.post(svc.scoring_uri, json={"data": X[:2].tolist()}, headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200 and len(ok.json()) == 2
    assert server_pid(client) == pid, "the server restarted: something crashed it"
    assert rss_kb(pid) - rss_before < 100_000, "the server's memory grew by more than 100 MB"


def read_all(s: socket.socket) -> bytes:
    """Everything the peer sends until it closes the connection (or the socket's timeout passes)."""
    chunks = []
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except socket.timeout:
        pass
    return b"".join(chunks)


def raw(host: str, port: int, data: bytes, *, read_timeout: float = 10) -> bytes:
    with socket.create_connection((host, port), timeout=read_timeout) as s:
        s.sendall(data)
        return read_all(s)


def test_hand_made_abuse(service):
    svc, key, X, client, _ = service
    parts = urlsplit(svc.scoring_uri)
    host, port = parts.hostname, parts.port
    auth = {"Authorization": f"Bearer {key}"}
    pid = server_pid(client)

    # a body over the 100 MB limit, announced: refused before it is read
    resp = requests.post(svc.scoring_uri, data=b"", headers={**auth, "Content-Length": str(100 * 1024 * 1024 + 1)},
                         timeout=30)
    check(resp, "huge content-length")
    assert resp.status_code == 413

    # a 101 MB body streamed without a length: cut off at the limit, memory not kept
    def chunks():
        block = b"[" * (1024 * 1024)
        for _ in range(101):
            yield block

    rss = rss_kb(pid)
    try:
        resp = requests.post(svc.scoring_uri, data=chunks(), headers=auth, timeout=60)
        check(resp, "chunked 101 MB")
        assert resp.status_code == 413
    except requests.ConnectionError:
        pass  # the server may close the connection once it has answered 413
    assert rss_kb(pid) - rss < 150_000

    # a slow body (slowloris): the service answers others meanwhile and cuts the slow one off
    slow = socket.create_connection((host, port))
    slow.sendall(f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: 100\r\n\r\n{{".encode())
    t = time.time()
    ok = requests.post(svc.scoring_uri, json={"data": X[:1].tolist()}, headers=auth, timeout=5)
    assert ok.status_code == 200 and time.time() - t < 2
    slow.settimeout(10)
    answer = read_all(slow)  # the answer may arrive in several segments (headers, then body)
    slow.close()
    assert b" 408 " in answer.split(b"\r\n", 1)[0] and b'"message"' in answer

    # header abuse: huge and many headers, a bad request line, a NUL in a header
    for data in (b"POST /score HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
                 b"POST /score HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n",
                 b"GARBAGE\r\n\r\n",
                 b"POST /score HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\nContent-Length: 2\r\n\r\n{}"):
        answer = raw(host, port, data)
        if answer:  # the HTTP layer may refuse outright (and close) instead of answering
            status_line = answer.split(b"\r\n", 1)[0]
            assert status_line.startswith(b"HTTP/1.1 4"), status_line
            assert b"Traceback" not in answer

    # path traversal in the URL never reaches a file
    for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/aml.db", "/score/..%2f..%2fkeys.json"):
        answer = raw(host, port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert b"root:" not in answer and b"SQLite" not in answer
        assert answer.split(b"\r\n", 1)[0].split(b" ")[1] in (b"404", b"400", b"405")

    assert requests.get(f"http://{host}:{port}/", timeout=5).text == "Healthy"
    assert server_pid(client) == pid
