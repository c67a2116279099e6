"""Differential parity with Microsoft's azureml-inference-server-http: the same score.py and the same
requests against both servers give the same status codes and bodies, except where ours is
deliberately different — each difference is listed here with its reason."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests

import azureml_inference_server_http  # noqa: F401,E402  (the parity peer: in the test extra)
pytestmark = pytest.mark.slow

SCORE = textwrap.dedent(
    """
    import json

    def init():
        global factor
        factor = 2

    def run(raw_data):
        data = json.loads(raw_data)
        if isinstance(data, dict) and data.get("boom"):
            raise RuntimeError("secret internal detail")
        if isinstance(data, dict) and data.get("unserialisable"):
            return {1, 2}
        return [x * factor for x in data["data"]]
    """
)

WRAPPER = textwrap.dedent(
    """
    import os, sys
    os.environ["AZUREML_ENTRY_SCRIPT"] = sys.argv[1]
    os.environ["AZUREML_MODEL_DIR"] = sys.argv[2]
    from azureml_inference_server_http import amlserver_linux
    amlserver_linux.run("127.0.0.1", int(sys.argv[3]), 1)  # azmlinfsrv itself always binds 0.0.0.0
    """
)

REQUESTS = {
    "valid JSON": ("POST", "/score", b'{"data": [1, 2, 3]}'),
    "invalid JSON": ("POST", "/score", b"{not json"),
    "wrong shape": ("POST", "/score", b'{"x": 1}'),
    "empty body": ("POST", "/score", b""),
    "non-UTF-8": ("POST", "/score", b"\xff\xfe\xfa"),
    "run() raises": ("POST", "/score", b'{"boom": true}'),
    "large body (1.2 MB)": ("POST", "/score", b'{"data": [' + b",".join([b"7"] * 600_000) + b"]}"),
    "liveness": ("GET", "/", b""),
    "unknown path": ("GET", "/nope", b""),
    "wrong method on /": ("POST", "/", b""),
    "trailing slash": ("POST", "/score/", b'{"data": [1]}'),
    "query string": ("POST", "/score?verbose=1", b'{"data": [1]}'),
    "dot segment": ("POST", "/nope/../score", b'{"data": [1]}'),
}

# name -> why ours differs (the test fails if a listed difference disappears or an unlisted one appears)
DIFFERENCES = {
    "run() returns a set": "ours answers it as a JSON list (as it does numpy arrays and numbers, DataFrames and "
                           "dates); azmlinfsrv's json.dumps fails and it answers 500",
    "/swagger.json without inference-schema": "azmlinfsrv serves a generic document; ours answers 404 saying how "
                                              "to get a real schema (and, like /score, wants the key)",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def azmlinfsrv(score, model_dir, log_path):
    """Microsoft's server for ``score``, on a free loopback port; yields its base URL."""
    wrapper = model_dir / "azmlinfsrv_wrapper.py"
    wrapper.write_text(WRAPPER)
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(wrapper), str(score), str(model_dir), str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


@pytest.fixture
def peers(client, tmp_path):
    score = tmp_path / "score.py"
    score.write_text(SCORE)
    (tmp_path / "m.bin").write_bytes(b"unused")
    client.models.register("parity", tmp_path / "m.bin")
    ours = client.deployments.create("parity-svc", "parity", score=score)
    try:
        with azmlinfsrv(score, tmp_path, tmp_path / "azmlinfsrv.log") as base:
            yield ours, base
    finally:
        client.deployments.delete("parity-svc")


def _call(base: str, method: str, path: str, body: bytes, key: str | None = None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    r = requests.request(method, base + path, data=body, headers=headers, timeout=60)
    try:
        payload = r.json()
    except ValueError:
        payload = r.text
    return r.status_code, payload


def test_same_answers_as_azureml_inference_server(peers):
    ours, theirs = peers
    key = ours.get_keys()[0]
    our_base = ours.scoring_uri[: -len("/score")]
    mismatches = {}
    for name, (method, path, body) in REQUESTS.items():
        a = _call(our_base, method, path, body, key)
        b = _call(theirs, method, path, body)
        if a != b:
            mismatches[name] = (a, b)
    assert mismatches == {}, mismatches
    # set the same request apart where we differ on purpose
    a = _call(our_base, "POST", "/score", b'{"unserialisable": true}', key)
    b = _call(theirs, "POST", "/score", b'{"unserialisable": true}')
    assert a == (200, [1, 2]) and b[0] == 500
    assert (a != b) == bool(DIFFERENCES.get("run() returns a set"))


def test_deliberately_stricter_auth(peers):
    ours, theirs = peers
    body = b'{"data": [1]}'
    assert _call(theirs, "POST", "/score", body)[0] == 200  # azmlinfsrv serves anyone
    assert _call(ours.scoring_uri[: -len("/score")], "POST", "/score", body)[0] == 401  # ours wants a key
    # no schema without decorators (see DIFFERENCES)
    our_base = ours.scoring_uri[: -len("/score")]
    assert _call(theirs, "GET", "/swagger.json", b"")[0] == 200
    status, body = _call(our_base, "GET", "/swagger.json", b"", ours.get_keys()[0])
    assert status == 404 and "inference-schema" in body["message"]
    # liveness stays open on both, for health probes
    assert _call(ours.scoring_uri[: -len("/score")], "GET", "/", b"") == _call(theirs, "GET", "/", b"") == (200, "Healthy")


DECORATED = textwrap.dedent(
    """
    import numpy as np
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
    from inference_schema.schema_decorators import input_schema, output_schema

    def init():
        pass

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
    @output_schema(StandardPythonParameterType([3.0]))
    def run(data):
        return data.sum(axis=1).tolist()
    """
)


def test_inference_schema_decorated_run_and_swagger(client, tmp_path):
    score = tmp_path / "decorated.py"
    score.write_text(DECORATED)
    (tmp_path / "m.bin").write_bytes(b"unused")
    client.models.register("schema-model", tmp_path / "m.bin")
    ours = client.deployments.create("schema-svc", "schema-model", score=score)
    try:
        with azmlinfsrv(score, tmp_path, tmp_path / "azmlinfsrv.log") as base:
            key = ours.get_keys()[0]
            our_base = ours.scoring_uri[: -len("/score")]
            for body in (b'{"data": [[1, 2], [3, 4]]}', b'{"other": 1}', b"[1, 2]", b"", b"{bad"):
                assert _call(our_base, "POST", "/score", body, key) == _call(base, "POST", "/score", body), body
            assert _call(our_base, "POST", "/score", b'{"data": [[1, 2]]}', key) == (200, [3.0])
            r = requests.post(our_base + "/score", data=b'{"data": [[1, 2]]}',
                              headers={"Content-Type": "text/plain", "Authorization": f"Bearer {key}"})
            assert r.status_code == 415 and "application/json" in r.json()["message"]
            swagger = requests.get(our_base + "/swagger.json", headers={"Authorization": f"Bearer {key}"}).json()
            assert swagger["swagger"] == "2.0" and "/score" in swagger["paths"]
            assert swagger["definitions"]["ServiceInput"]["properties"]["data"]["type"] == "array"
            assert requests.get(our_base + "/swagger.json").status_code == 401  # the schema needs the key too
    finally:
        client.deployments.delete("schema-svc")
