"""``Webservice``: a deployed scoring service, with Azure ML's names (run, scoring_uri, get_keys, get_logs, delete)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checks
from .errors import AmlError, AuthError, InvalidInput
from .types import DeploymentInfo

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client


class Webservice:
    def __init__(self, client: "Client", name: str):
        self._client = client
        self.name = name

    @property
    def info(self) -> DeploymentInfo:
        return self._client.deployments.get_info(self.name)

    state = property(lambda self: self.info.state)
    scoring_uri = property(lambda self: self.info.scoring_uri)
    swagger_uri = property(lambda self: self.info.swagger_uri)
    models = property(lambda self: self.info.models)

    def get_keys(self) -> tuple[str, str]:
        """(primary, secondary) keys; send one as ``Authorization: Bearer <key>``."""
        return self._client.deployments.get_keys(self.name)

    def regen_key(self, key: str) -> None:
        """Rotate the ``Primary`` or ``Secondary`` key (the service keeps answering meanwhile)."""
        self._client.deployments.regenerate_key(self.name, key)

    def run(self, input_data: Any, timeout: float = 60) -> Any:
        """POST ``input_data`` (a JSON string, or any JSON-able value) to the service and return its answer."""
        import requests

        from .plain import plain_value

        try:  # X_test[:5] as it is (a numpy array), a DataFrame's rows, numpy numbers (NaN goes as Python's NaN)
            body = input_data if isinstance(input_data, (str, bytes)) else json.dumps(input_data, default=plain_value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidInput(f"service.run(input_data): {exc}; give JSON text, or lists, dicts, numbers, strings, "
                               "numpy arrays or DataFrames") from None
        if isinstance(body, str):
            try:
                body = body.encode("utf-8")
            except UnicodeEncodeError:  # (it was a UnicodeEncodeError from inside requests)
                raise InvalidInput("service.run(input_data): the text holds a lone surrogate character, which cannot "
                                   "be sent as UTF-8; fix the string (it often comes from decoding bytes with "
                                   "errors='surrogateescape')") from None
        timeout = checks.positive("timeout", timeout, 24 * 3600)
        info = self.info
        headers = {"Content-Type": "application/json"}
        if info.auth:
            headers["Authorization"] = f"Bearer {self.get_keys()[0]}"
        try:
            resp = requests.post(info.scoring_uri, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            raise AmlError(f"service {self.name} did not answer ({type(exc).__name__}); state: {info.state}") from None
        try:
            payload = resp.json()
        except ValueError:
            payload = resp.text
        if resp.status_code == 401:
            raise AuthError(f"service {self.name} refused the key: {payload}")
        if resp.status_code >= 400:
            message = payload.get("message") if isinstance(payload, dict) else payload
            if resp.status_code == 500 and info.host != "azure":  # "check the logs": what they say, here
                message = f"{message}{self._last_error()}"
            raise (InvalidInput if resp.status_code < 500 else AmlError)(
                f"service {self.name} answered {resp.status_code}: {message}")
        return payload

    def _last_error(self) -> str:
        """" — its log's last error: JSONDecodeError: … (score.py line 8)": the exception that score.py's run() (or
        init()) raised, from the end of the local service's log, so "check the logs" needs no second step."""
        import re

        try:
            lines = self._client.deployments.get_logs(self.name, tail=200).splitlines()
        except Exception:  # (a courtesy: a log that cannot be read leaves it out)
            return ""
        for i in range(len(lines) - 1, -1, -1):
            found = re.match(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b)(:.*)?$", lines[i])
            if found is None:
                continue
            where = ""
            for frame in reversed(lines[:i]):
                at = re.match(r'\s*File "([^"]+)", line (\d+)', frame)
                if at and "site-packages" not in at.group(1) and "/aml_magics/" not in at.group(1) \
                        and not at.group(1).startswith(sys.base_prefix):
                    where = f" ({Path(at.group(1)).name} line {at.group(2)})"
                    break
            said = (found.group(1).rsplit(".", 1)[-1] + (found.group(2) or ""))[:300]
            return f" — its log's last error: {said}{where}; service.get_logs() has the traceback"
        return ""

    def get_logs(self, tail: int | None = None) -> str:
        return self._client.deployments.get_logs(self.name, tail=tail)

    def delete(self) -> None:
        self._client.deployments.delete(self.name)

    def update(self, models: list[str] | None = None, score: str | None = None) -> "Webservice":
        self._client.deployments.create(self.name, models or self.models, score=score, update=True)
        return self

    def wait_for_deployment(self, show_output: bool = False) -> str:
        return self.state

    def __repr__(self) -> str:
        return repr(self.info)  # keys never appear here

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.info._repr_mimebundle_(include, exclude)
