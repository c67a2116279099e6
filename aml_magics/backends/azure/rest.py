"""A small Azure Resource Manager client for Azure ML (``requests`` only; azure-identity for tokens).

- base ``https://management.azure.com``, ``api-version=2024-10-01`` on every call;
- retries with exponential backoff on 429 and 5xx (and connection errors), honouring ``Retry-After``;
- long-running operations followed through ``Azure-AsyncOperation`` / ``Location``;
- ARM error bodies (``{"error": {"code", "message"}}``) turned into one clear ``AmlError`` that says
  what to do; tokens are fetched per call from the credential (azure-identity caches them), never
  stored by us, never in a repr, a log or an error message.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from ...core import checks
from ...core.errors import AmlError, AuthError, BackendUnavailable, Conflict, InvalidInput, NotFound
from .mlflow_rest import retry_delay

ARM = "https://management.azure.com"
API_VERSION = "2024-10-01"
SCOPE = "https://management.azure.com/.default"
AML_SCOPE = "https://ml.azure.com/.default"  # pipeline jobs carry the caller's Azure ML token (x-azureml-token)
STORAGE_SCOPE = "https://storage.azure.com/.default"  # identity-based datastores: the caller's own access
RETRY_STATUS = (429, 500, 502, 503, 504)


_SUBSCRIPTION = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_RESOURCE_GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]")  # ARM: 1-90 of these (letters of any script), no "." last
_WORKSPACE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}")  # the contract's WorkspaceNameParameter pattern


@dataclass(frozen=True)
class WorkspaceRef:
    """Which workspace: checked when made, so that a typo is one line before any sign-in and no name can change
    the request's path (a workspace name ``../../x`` led somewhere else in Azure Resource Manager)."""

    subscription_id: str
    resource_group: str
    workspace_name: str

    def __post_init__(self) -> None:
        for value, pattern, what, looks in (
                (self.subscription_id, _SUBSCRIPTION, "subscription id",
                 "a GUID like 01234567-89ab-cdef-0123-456789abcdef"),
                (self.resource_group, _RESOURCE_GROUP, "resource group",
                 "1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'"),
                (self.workspace_name, _WORKSPACE, "workspace name",
                 "3-33 letters, digits, '-' or '_', starting with a letter or digit")):
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise InvalidInput(f"{checks.shown(value)} is not an Azure {what} ({looks}): copy it from the "
                                   "workspace's page in the Azure portal or its config.json")

    @property
    def path(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{self.workspace_name}")

    def __str__(self) -> str:
        return f"{self.workspace_name} (resource group {self.resource_group})"


def _quiet_identity_log() -> None:
    """azure-identity logs a failed sign-in as a dozen lines of warnings (every credential it tried), which reach
    the notebook through logging's last resort beside our one-line error. Only its errors are shown, unless the
    user has set azure.identity's logging themselves."""
    import logging

    log = logging.getLogger("azure.identity")
    if log.level == logging.NOTSET and not log.handlers:
        log.setLevel(logging.ERROR)


def _check_path(path: str) -> None:
    """A path of ours, with names from the user in it, must name what it was built for: the HTTP client resolves
    ``..`` (``onlineEndpoints/../computes/cpu`` is a DELETE of the compute), and ``?``, ``#`` or ``%`` would change
    the query or the path the service reads. No Azure ML name holds any of them, so such a path is refused, one line,
    before anything is sent."""
    for part in path.split("/")[1:]:
        if part in ("", ".", "..") or any(c in part for c in "?#%\\"):
            shown = checks.shown(part, 60) if part else "an empty name"
            raise InvalidInput(f"{shown} cannot be a name in an Azure ML workspace (no '/', '..', '?', '#', '%' or "
                               "'\\', and not empty); check the name")


class ArmClient:
    def __init__(self, credential: Any, *, base_url: str = ARM, api_version: str = API_VERSION,
                 max_attempts: int = 5, backoff_s: float = 0.5, max_wait_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep):
        import requests

        self._credential = credential
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"ArmClient({self.base_url}, api-version {self.api_version})"  # no credential, no token

    def token(self, scope: str = SCOPE) -> str:
        """A token of the signed-in identity for ``scope`` (azure-identity caches it); never stored here."""
        _quiet_identity_log()
        try:
            return self._credential.get_token(scope).token
        except Exception as exc:  # azure-identity raises ClientAuthenticationError and friends
            name = type(exc).__name__
            raise AuthError(f"could not get an Azure token ({name}); sign in with `az login`, or "
                            "%aml connect --device-code") from None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(SCOPE)}", "Accept": "application/json"}

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                absolute: bool = False, ok: tuple[int, ...] = (200, 201, 202, 204), headers: dict | None = None):
        import requests

        if absolute and not self.same_origin(path):
            # a nextLink or an operation monitor on another host would get our bearer token: never follow one
            raise AmlError(f"Azure answered with a link to another host ({_origin(path)}); it was not followed")
        url = path if absolute else self.base_url + path
        query = dict(params or {})
        values = [v for value in query.values() for v in (value if isinstance(value, (list, tuple)) else (value,))]
        for part in (*path.split("/"), *map(str, values)):  # a name no Azure resource can have: one line
            error = checks.unmatchable(part)
            if error is not None:
                raise error
        if not absolute:
            _check_path(path)
            query.setdefault("api-version", self.api_version)
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self.session.request(method, url, json=json, params=query,
                                            headers={**self._headers(), **(headers or {})}, timeout=60)
            except requests.RequestException as exc:
                if attempt >= self.max_attempts:
                    raise BackendUnavailable(f"Azure did not answer ({type(exc).__name__}) after {attempt} attempts; "
                                             "check the network and try again") from None
                self._sleep(self._delay(attempt, None))
                continue
            if resp.status_code in RETRY_STATUS and attempt < self.max_attempts:
                self._sleep(self._delay(attempt, resp.headers.get("Retry-After")))
                continue
            if resp.status_code not in ok:
                raise arm_error(resp, method, path)
            return resp

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        return retry_delay(retry_after, self.backoff_s * 2 ** (attempt - 1), self.max_wait_s)

    def get(self, path: str, **kw) -> dict:
        return _json(self.request("GET", path, **kw))

    def same_origin(self, url: str) -> bool:
        return _origin(url) == _origin(self.base_url)

    def list_all(self, path: str, *, params: dict | None = None, limit: int | None = None) -> list[dict]:
        """Every item of a list operation: its ``value``, page after page (``nextLink``, on the same host only),
        or the first ``limit`` items."""
        page = self.get(path, params=params)
        items = list(page.get("value") or [])
        while limit is None or len(items) < limit:
            nxt = page.get("nextLink")
            if not isinstance(nxt, str) or not nxt.startswith(("https://", "http://")):
                break  # the last page (a placeholder such as Microsoft's examples' "string" is no link either)
            page = self.get(nxt, absolute=True)
            items += page.get("value") or []
        return items if limit is None else items[:limit]

    def put(self, path: str, body: dict, *, wait: bool = True, headers: dict | None = None) -> dict:
        resp = self.request("PUT", path, json=body, headers=headers)
        return self.follow(resp, path) if wait else _json(resp)

    def post(self, path: str, body: dict | None = None, *, wait: bool = False) -> dict:
        resp = self.request("POST", path, json=body)
        return self.follow(resp, None) if wait else _json(resp)

    def delete(self, path: str, *, wait: bool = True) -> None:
        resp = self.request("DELETE", path, ok=(200, 202, 204))
        if wait:
            self.follow(resp, None)

    def follow(self, resp, resource_path: str | None, timeout_s: float = 1800) -> dict:
        """Wait for a long-running operation: poll Azure-AsyncOperation (or Location) until it ends."""
        monitor = resp.headers.get("Azure-AsyncOperation") or resp.headers.get("azure-asyncoperation")
        location = resp.headers.get("Location") or resp.headers.get("location")
        if resp.status_code not in (201, 202) or not (monitor or location):
            return _json(resp)
        deadline = time.monotonic() + timeout_s
        url = monitor or location
        while time.monotonic() < deadline:
            self._sleep(self._delay(1, resp.headers.get("Retry-After")) if resp is not None else self.backoff_s)
            poll = self.request("GET", url, absolute=True, ok=(200, 201, 202, 204))
            if poll.status_code == 202:
                resp = poll
                continue
            status = (_json(poll).get("status") or "").lower() if monitor else "succeeded"
            if status in ("succeeded", ""):
                return self.get(resource_path) if resource_path else _json(poll)
            if status in ("failed", "canceled", "cancelled"):
                err = _json(poll).get("error") or {}
                raise AmlError(f"Azure operation {status}: {err.get('code', '')} {err.get('message', '')}".strip())
            resp = poll
        raise BackendUnavailable("the Azure operation is still running; check it in the Azure ML studio")


def _json(resp) -> dict:
    if resp is None or not resp.content:
        return {}
    try:
        return resp.json()
    except ValueError:
        return {}


WHAT_TO_DO = {
    401: "sign in again: `az login`, or %aml connect --device-code",
    403: "your identity lacks a role on this workspace (AzureML Data Scientist or Contributor)",
    404: "check the subscription, resource group and workspace in config.json, and the name you used",
    409: "it exists or is busy; wait, or use another name",
    429: "Azure is throttling requests; wait a minute and try again",
}


def arm_error(resp, method: str, path: str) -> AmlError:
    """One clear error from an ARM error body: code, message, what to do."""
    body = _json(resp)
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    code = (err or {}).get("code") or f"HTTP {resp.status_code}"
    message = ((err or {}).get("message") or resp.reason or "").strip().splitlines()[0][:400] if err else ""
    hint = WHAT_TO_DO.get(resp.status_code, "see the message above")
    text = f"Azure ML refused {method} {_short(path)}: {code}: {message} — {hint}"
    cls = {400: InvalidInput, 401: AuthError, 403: AuthError, 404: NotFound, 409: Conflict}.get(resp.status_code)
    if cls is None:
        cls = BackendUnavailable if resp.status_code >= 500 or resp.status_code == 429 else AmlError
    return cls(text)


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _short(path: str) -> str:
    marker = "/providers/Microsoft.MachineLearningServices/"
    return path.split(marker, 1)[1] if marker in path else path
