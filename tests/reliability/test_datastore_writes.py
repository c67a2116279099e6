"""Datastore uploads from two notebooks at once and on a full disk: a file in the datastore is always one whole
upload, an upload that cannot finish says so in one line and leaves nothing half-written."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.reliability

UPLOAD = textwrap.dedent("""
    import json, resource, signal, sys
    from aml_magics.core.client import Client
    ws, src, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = Client(ws)
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        client.datastores.upload(src, "shared/data.bin", overwrite=True)
        print("RESULT " + json.dumps("ok"))
    except Exception as e:
        print("RESULT " + json.dumps([type(e).__name__, str(e)]))
""")


def _upload(script, workspace, src, limit=0):
    return subprocess.Popen([sys.executable, str(script), str(workspace), str(src), str(limit)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc):
    out, err = proc.communicate(timeout=120)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    assert line, out[-2000:] + err[-2000:]
    return json.loads(line[7:])


def test_two_notebooks_uploading_one_name_at_once_never_mix_the_files(client, workspace, tmp_path):
    """Two processes upload different 20 MB files to one datastore name, five times: the name always holds one of
    them whole and neither process fails (one temporary name for both once interleaved them)."""
    script = tmp_path / "upload.py"
    script.write_text(UPLOAD)
    sources = {}
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(os.urandom(20 << 20))
        sources[hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()] = name
    stored = tmp_path / "got.bin"
    for _ in range(5):
        procs = [_upload(script, workspace, tmp_path / n) for n in ("a.bin", "b.bin")]
        assert [_result(p) for p in procs] == ["ok", "ok"]
        client.datastores.download("shared/data.bin", tmp_path, overwrite=True)
        os.replace(tmp_path / "data.bin", stored)
        assert hashlib.sha256(stored.read_bytes()).hexdigest() in sources
    assert [e.path for e in client.datastores.ls("shared")] == ["shared/data.bin"]  # no temporary file listed


def test_an_upload_on_a_full_disk_says_so_and_keeps_the_file_that_was_there(client, workspace, tmp_path):
    script = tmp_path / "upload.py"
    script.write_text(UPLOAD)
    (tmp_path / "small.bin").write_bytes(b"kept")
    (tmp_path / "big.bin").write_bytes(os.urandom(4 << 20))
    assert _result(_upload(script, workspace, tmp_path / "small.bin")) == "ok"
    kind, message = _result(_upload(script, workspace, tmp_path / "big.bin", limit=1 << 20))
    assert kind == "StorageError" and "cannot upload big.bin" in message and "free space" in message
    folder = client.datastores.resolve_input("datastore:shared")
    assert sorted(os.listdir(folder)) == ["data.bin"]  # nothing half-written left beside it
    client.datastores.download("shared/data.bin", tmp_path / "out")
    assert (tmp_path / "out" / "data.bin").read_bytes() == b"kept"


INTERRUPTED = textwrap.dedent("""
    import json, sys, time
    from aml_magics.core.client import Client
    ws, src = sys.argv[1], sys.argv[2]
    client = Client(ws)
    def moving(done, total):
        print("MOVING", flush=True)
        time.sleep(0.2)  # a slow disk: the Ctrl-C lands while the file is being copied
    try:
        client.datastores.upload(src, "shared/data.bin", overwrite=True, progress=moving)
        print("RESULT " + json.dumps("ok"))
    except KeyboardInterrupt:
        print("RESULT " + json.dumps("interrupted"))
""")


def test_an_upload_stopped_by_ctrl_c_leaves_no_hidden_partial_file(client, workspace, tmp_path):
    """Ctrl-C (SIGINT, as the kernel's interrupt sends) in the middle of an upload: the file that was there is kept
    and no hidden ``….uploading`` file is left in the datastore (it was, until the workspace was removed)."""
    (tmp_path / "small.bin").write_bytes(b"kept")
    client.datastores.upload(tmp_path / "small.bin", "shared/data.bin")
    (tmp_path / "big.bin").write_bytes(os.urandom(64 << 20))
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    proc = subprocess.Popen([sys.executable, str(script), str(workspace), str(tmp_path / "big.bin")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "MOVING", proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGINT)
    assert _result(proc) == "interrupted"
    folder = client.datastores.resolve_input("datastore:shared")
    assert sorted(os.listdir(folder)) == ["data.bin"]
    assert open(os.path.join(folder, "data.bin"), "rb").read() == b"kept"


DOWNLOAD = textwrap.dedent("""
    import json, resource, signal, sys
    from aml_magics.core.client import Client
    ws, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = Client(ws)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        client.datastores.download("big/data.bin", target, overwrite=True)
        print("RESULT " + json.dumps("ok"))
    except Exception as e:
        print("RESULT " + json.dumps([type(e).__name__, str(e)]))
""")


def test_a_download_that_cannot_finish_leaves_the_file_that_was_there(client, workspace, tmp_path):
    """``download --overwrite`` onto a full disk: the user's file is as it was and no half-written one is left (it
    used to be truncated and half overwritten)."""
    (tmp_path / "data.bin").write_bytes(os.urandom(8 << 20))
    client.datastores.upload(tmp_path / "data.bin", "big/data.bin")
    here = tmp_path / "here"
    here.mkdir()
    (here / "data.bin").write_bytes(b"the user's own copy")
    script = tmp_path / "download.py"
    script.write_text(DOWNLOAD)
    proc = subprocess.Popen([sys.executable, str(script), str(workspace), str(here), str(1 << 20)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kind, message = _result(proc)
    assert kind in ("StorageError", "InvalidInput") and "\n" not in message
    assert (here / "data.bin").read_bytes() == b"the user's own copy"
    assert os.listdir(here) == ["data.bin"]
