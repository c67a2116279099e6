"""%aml connect --device-code, the workshop sign-in, end to end: azure-identity's DeviceCodeCredential (and MSAL
under it) against a sign-in peer on loopback, then ARM requests (the contract fake) with the token it gave.

The peer speaks the OAuth 2.0 device authorization grant (RFC 8628) with OpenID Connect discovery, shaped as the
Microsoft identity platform documents it ("OAuth 2.0 device authorization grant": the device code response,
``authorization_pending`` while the user has not signed in, then the token response with an id token). It
serves HTTPS with a certificate made for this test (trusted through ``REQUESTS_CA_BUNDLE``); its authority is
given the way azure-identity reads one, ``AZURE_AUTHORITY_HOST``.
"""
from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from aml_magics.core.client import Client
from aml_magics.core.errors import AuthError

from .contract import FakeArm

pytestmark = pytest.mark.azure_contract

import azure.identity  # noqa: E402,F401  (the azure extra, part of the test extra: missing fails, never skips)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class SignInPeer:
    """The device code flow's two endpoints and discovery. ``answer`` decides the token endpoint's reply once
    the user "has signed in" (after ``pending`` polls): a token, or an error the platform documents."""

    def __init__(self, folder, access_token: str, *, pending: int = 1, answer: str = "token"):
        from .contract import loopback_certificate

        cert, key = loopback_certificate(folder)
        self.cert, self.key = Path(cert), Path(key)
        self.access_token, self.pending, self.answer = access_token, pending, answer
        self.requests: list[tuple[str, str, dict]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = urlsplit(self.path).path
                peer.requests.append(("GET", path, {}))
                tenant = path.split("/")[1]
                if path == f"/{tenant}/v2.0/.well-known/openid-configuration":
                    base = f"{peer.url}/{tenant}"
                    return self._reply(200, {"issuer": f"{base}/v2.0", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                                             "token_endpoint": f"{base}/oauth2/v2.0/token",
                                             "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"})
                self._reply(404, {"error": "invalid_request"})

            def do_POST(self):
                path = urlsplit(self.path).path
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0))
                                                     .decode()).items()}
                peer.requests.append(("POST", path, form))
                if path.endswith("/oauth2/v2.0/devicecode"):
                    return self._reply(200, {"device_code": "device-code-1", "user_code": "FQK5HW3UF",
                                             "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900,
                                             "interval": 1, "message": "To sign in, use a web browser."})
                if path.endswith("/oauth2/v2.0/token"):
                    if form.get("grant_type") == "refresh_token":  # azure-identity renewing silently
                        if form.get("refresh_token") != "refresh-1":
                            return self._reply(400, {"error": "invalid_grant", "error_description": "AADSTS70000"})
                    else:
                        polls = sum(1 for _, p, f in peer.requests
                                    if p.endswith("/token") and f.get("grant_type") != "refresh_token")
                        if polls <= peer.pending:
                            return self._reply(400, {"error": "authorization_pending",
                                                     "error_description": "AADSTS70016: the user has not signed in yet"})
                        if peer.answer != "token":
                            return self._reply(400, {"error": peer.answer, "error_description": f"AADSTS: {peer.answer}"})
                    claims = {"iss": f"{peer.url}/organizations/v2.0", "aud": form["client_id"], "sub": "student",
                              "oid": "0001", "tid": "0002", "preferred_username": "student@contoso.com",
                              "iat": int(time.time()), "exp": int(time.time()) + 3600}
                    return self._reply(200, {
                        "token_type": "Bearer", "expires_in": 3599, "access_token": peer.access_token,
                        "scope": "https://management.azure.com/user_impersonation", "refresh_token": "refresh-1",
                        "id_token": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
                        "client_info": _b64({"uid": "0001", "utid": "0002"})})
                self._reply(404, {"error": "invalid_request"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def arm():
    fake = FakeArm()
    yield fake
    fake.close()
    assert not fake.violations, fake.violations


def _peer(tmp_path, monkeypatch, fake, **kwargs):
    peer = SignInPeer(tmp_path, fake.token, **kwargs)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", peer.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(peer.cert))
    return peer


def test_device_code_sign_in_prompts_once_and_its_token_reaches_arm(arm, tmp_path, monkeypatch, capsys):
    peer = _peer(tmp_path, monkeypatch, arm, pending=2)
    try:
        client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "class-ws", device_code=True,
                                base_url=arm.base_url)
        computes = client.computes.list()  # the first request: the student signs in (two polls pending)
        assert computes and all(c.name for c in computes)
        client.computes.list()
        client.workspace  # more requests: the token is reused (in azure-identity's cache), no second prompt
        out = capsys.readouterr().out
        assert out.count("To sign in, open https://microsoft.com/devicelogin and enter the code FQK5HW3UF.") == 1
        assert arm.token not in out and "refresh-1" not in out
        devicecode = [f for m, p, f in peer.requests if p.endswith("/devicecode")]
        assert len(devicecode) == 1 and "https://management.azure.com/.default" in devicecode[0]["scope"]
        grants = [f["grant_type"] for m, p, f in peer.requests if p.endswith("/token")]
        assert grants[:3] == ["urn:ietf:params:oauth:grant-type:device_code"] * 3  # pending, pending, signed in
        assert set(grants[3:]) <= {"refresh_token"}  # later tokens come silently from the refresh token
        assert {c.headers.get("Authorization") for c in arm.calls} == {f"Bearer {arm.token}"}
        assert arm.token not in repr(client) and arm.token not in repr(client.backend.arm)
    finally:
        peer.close()


@pytest.mark.parametrize("answer", ["authorization_declined", "expired_token"])
def test_a_declined_or_expired_device_code_is_one_clear_error(arm, tmp_path, monkeypatch, capsys, answer, ip):
    from IPython.core.error import UsageError

    peer = _peer(tmp_path, monkeypatch, arm, pending=0, answer=answer)
    try:
        client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "class-ws", device_code=True,
                                base_url=arm.base_url)
        with pytest.raises(AuthError, match=r"could not get an Azure token .*%aml connect --device-code"):
            client.computes.list()
        assert not arm.calls  # nothing was asked of the workspace without a token
        magics = ip.magics_manager.registry["AmlMagics"]
        magics._client = client
        try:
            with pytest.raises(UsageError, match="could not get an Azure token"):  # one line in a notebook
                ip.run_line_magic("aml", "compute")
        finally:
            magics._client = None
    finally:
        peer.close()


def test_microsoft_authorities_keep_instance_discovery():
    from aml_magics.backends.azure.auth import _private_authority

    assert not _private_authority("") and not _private_authority("https://login.microsoftonline.com")
    assert not _private_authority("login.chinacloudapi.cn") and not _private_authority("https://login.microsoftonline.us/")
    assert _private_authority("https://adfs.contoso.local/adfs") and _private_authority("https://127.0.0.1:8443")



def test_a_failed_sign_in_is_one_line_not_azure_identitys_log():
    """No credential works: azure-identity logged every credential it had tried as a dozen warning lines (through
    logging's last resort) above our one-line error. Only the error is shown now; a user who set azure.identity's
    logging still gets what they asked for. (In a child process: pytest's own logging handler would hide both.)"""
    import os
    import subprocess
    import sys

    script = """if True:
        import logging, sys
        from azure.identity import ChainedTokenCredential, EnvironmentCredential
        from aml_magics.backends.azure.rest import ArmClient
        from aml_magics.core.errors import AuthError
        if sys.argv[1] == "configured":
            logging.getLogger("azure.identity").setLevel(logging.WARNING)
        try:
            ArmClient(ChainedTokenCredential(EnvironmentCredential())).token()  # fails without the network
        except AuthError as exc:
            print(exc)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    quiet, configured = (subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, env=env,
                                        timeout=60) for how in ("default", "configured"))
    assert quiet.stdout.startswith("could not get an Azure token (ClientAuthenticationError); sign in")
    assert quiet.stderr == ""
    assert configured.stdout.startswith("could not get an Azure token")
    assert "ChainedTokenCredential failed" in configured.stderr  # the user's own setting is kept
