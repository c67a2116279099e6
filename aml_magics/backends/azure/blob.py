"""Azure Blob storage over REST for datastores (Shared Key, SAS, or the caller's Entra ID token for identity-based
datastores), no azure-storage-blob dependency.

Put Blob for small files, Put Block + Put Block List for large ones, Get Blob (whole or from an offset), List Blobs. The account key
is only held in memory for the request being signed; it never appears in errors or reprs.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterator
from urllib.parse import quote, unquote, urlsplit

from ...core.errors import AmlError, AuthError, NotFound

if TYPE_CHECKING:
    from pathlib import Path

    from ..common.transfer import Transfer

VERSION = "2021-08-06"
BLOCK = 4 << 20


class BlobContainer:
    """One container: ``base`` is its URL (``https://ACCOUNT.blob.core.windows.net/CONTAINER``, or an
    emulator's path-style ``http://127.0.0.1:10000/ACCOUNT/CONTAINER``)."""

    def __init__(self, base: str, account: str, *, key: str | None = None, sas: str | None = None,
                 token: Callable[[], str] | None = None):
        import requests

        if not key and not sas and token is None:
            raise AuthError("the datastore gave no credential (account key or SAS)")
        self._token = token  # identity-based access: asked for a (cached) token per request, never kept
        self.base = base.rstrip("/")
        self.account = account
        try:
            self._key = base64.b64decode(key, validate=True) if key else None
        except ValueError:
            raise AuthError("the datastore's account key is not a valid key; check its credentials in the Azure ML "
                            "studio") from None
        self._sas = (sas or "").lstrip("?")
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"BlobContainer({self.base})"

    def _sign(self, method: str, url: str, headers: dict[str, str], length: int) -> None:
        headers["x-ms-date"] = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
        headers["x-ms-version"] = VERSION
        if self._token is not None and self._key is None and not self._sas:
            headers["Authorization"] = f"Bearer {self._token()}"
            return
        if self._key is None:
            return
        parts = urlsplit(url)
        canonical_headers = "".join(f"{k.lower()}:{v.strip()}\n" for k, v in sorted(headers.items(), key=lambda i: i[0].lower())
                                    if k.lower().startswith("x-ms-"))
        resource = f"/{self.account}{parts.path}" if parts.path else f"/{self.account}/"  # the encoded path
        query: dict[str, list[str]] = {}
        for pair in filter(None, parts.query.split("&")):
            k, _, v = pair.partition("=")
            query.setdefault(unquote(k).lower(), []).append(unquote(v))
        for k in sorted(query):
            resource += f"\n{k}:{','.join(sorted(query[k]))}"
        to_sign = "\n".join([method, "", "", str(length) if length else "", "", headers.get("Content-Type", ""),
                             "", "", "", "", "", ""]) + "\n" + canonical_headers + resource
        signature = base64.b64encode(hmac.new(self._key, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers["Authorization"] = f"SharedKey {self.account}:{signature}"

    def _request(self, method: str, path: str, query: str = "", data: bytes = b"", extra: dict | None = None,
                 stream: bool = False):
        url = f"{self.base}/{quote(path)}" if path else self.base
        if query:
            url += "?" + query
        if self._sas:
            url += ("&" if "?" in url else "?") + self._sas
        headers = dict(extra or {})
        self._sign(method, url, headers, len(data))
        import requests

        try:
            resp = self.session.request(method, url, data=data if method == "PUT" else None, headers=headers,
                                        timeout=300, stream=stream)
        except requests.RequestException as exc:
            raise _unreachable(method, path, exc) from None
        if resp.status_code == 416 and "x-ms-range" in headers:
            return None  # nothing past the asked start (the blob has not grown)
        if resp.status_code == 404:
            raise NotFound(f"no blob {path or self.base.rsplit('/', 1)[-1]} in the datastore")
        if resp.status_code in (401, 403):
            raise AuthError(f"the storage account refused access (HTTP {resp.status_code}); check the datastore's "
                            "credentials in the Azure ML studio")
        if resp.status_code >= 300:
            code = re.search(r"<Code>([^<]+)</Code>", resp.text or "")
            raise AmlError(f"blob storage {method} {path}: HTTP {resp.status_code} {code.group(1) if code else ''}".strip())
        return resp

    def create(self) -> None:
        """Create the container (the emulator starts empty; real datastores have theirs)."""
        self._request("PUT", "", "restype=container")

    def put(self, path: str, data: bytes, block_size: int = BLOCK) -> None:
        if len(data) <= block_size:
            self._request("PUT", path, data=data, extra={"x-ms-blob-type": "BlockBlob",
                                                         "Content-Type": "application/octet-stream"})
            return
        ids = []
        for i in range(0, len(data), block_size):
            block_id = base64.b64encode(f"{i // block_size:08d}".encode()).decode()
            self._request("PUT", path, f"comp=block&blockid={quote(block_id, safe='')}", data[i:i + block_size])
            ids.append(block_id)
        self._commit_blocks(path, ids)

    def put_file(self, path: str, local: "Path", transfer: "Transfer | None" = None, block_size: int = BLOCK) -> None:
        """A local file as a blob, read one block at a time (a 20 GB file costs one block of memory, not 20 GB)."""
        size = local.stat().st_size
        with open(local, "rb") as f:
            if size <= block_size:
                data = f.read()
                self._request("PUT", path, data=data, extra={"x-ms-blob-type": "BlockBlob",
                                                             "Content-Type": "application/octet-stream"})
                if transfer is not None:
                    transfer.add(len(data))
                return
            ids = []
            while True:
                data = f.read(block_size)
                if not data:
                    break
                block_id = base64.b64encode(f"{len(ids):08d}".encode()).decode()
                self._request("PUT", path, f"comp=block&blockid={quote(block_id, safe='')}", data)
                ids.append(block_id)
                if transfer is not None:
                    transfer.add(len(data))
        self._commit_blocks(path, ids)

    def _commit_blocks(self, path: str, ids: list[str]) -> None:
        body = ("<?xml version='1.0' encoding='utf-8'?><BlockList>" + "".join(f"<Latest>{b}</Latest>" for b in ids)
                + "</BlockList>").encode()
        self._request("PUT", path, "comp=blocklist", body, extra={"Content-Type": "application/xml"})

    def get(self, path: str) -> bytes:
        return self._request("GET", path).content

    def get_file(self, path: str, local: "Path", transfer: "Transfer | None" = None) -> None:
        """The blob into the new file ``local``, streamed (a block of memory at a time)."""
        import requests

        resp = self._request("GET", path, stream=True)
        try:
            with open(local, "wb") as f:
                for chunk in resp.iter_content(chunk_size=1 << 20):
                    f.write(chunk)
                    if transfer is not None:
                        transfer.add(len(chunk))
        except requests.RequestException as exc:  # the connection broke mid-download
            raise _unreachable("GET", path, exc) from None
        finally:
            resp.close()

    def read(self, path: str, start: int = 0) -> bytes:
        """The blob's bytes from ``start`` on (empty when it has no more): how a growing log is tailed."""
        resp = self._request("GET", path, extra={"x-ms-range": f"bytes={int(start)}-"} if start else None)
        return b"" if resp is None else resp.content

    def list(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        marker = ""
        while True:
            query = "restype=container&comp=list" + (f"&prefix={quote(prefix, safe='')}" if prefix else "") \
                + (f"&marker={quote(marker, safe='')}" if marker else "")
            root = _xml(self._request("GET", "", query).content)
            for blob in root.iter("Blob"):
                name = blob.find("Name")
                text = name.text or "" if name is not None else ""
                # XML-escaped text (a&amp;b); a name XML cannot hold comes URL-encoded with Encoded="true"
                yield unquote(text) if name is not None and name.get("Encoded") == "true" else text, \
                    int(blob.findtext("Properties/Content-Length") or 0)
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return


def _unreachable(method: str, path: str, exc: Exception) -> AmlError:
    return AmlError(f"blob storage {method} {path}: the storage account could not be reached or the connection broke "
                    f"({type(exc).__name__}); check the network and try again")


def _xml(body: bytes):
    """A List Blobs answer as an element tree (entities resolved; no DTDs or external entities are read)."""
    from xml.etree import ElementTree

    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise AmlError("the storage account answered a listing that is not XML; try again") from None
