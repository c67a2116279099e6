"""A contract-checking fake of Azure Resource Manager for Azure ML, built from Microsoft's published files.

``azureml-rest-2024-10-01/`` holds unmodified copies of Microsoft's OpenAPI (swagger 2.0) files and
example request/response pairs for api-version 2024-10-01 (see its INDEX.md for provenance). The fake:

- routes a request by the swagger paths (every file), method and api-version; an unknown path,
  method or api-version is a contract violation;
- validates path parameters (patterns) and the JSON body against the operation's body schema,
  following ``$ref`` across files, ``allOf`` and ``discriminator`` subtypes (``x-ms-discriminator-value``),
  rejecting unknown properties where the schema closes them and read-only properties in requests;
- answers with the operation's published example response (the example that matches the request's
  discriminator, else the first), adapted only by substituting the example's ids with the request's, and by
  writing ``systemData`` times the way the live service does: seven fractional digits
  (``2020-01-01T12:34:56.9990000Z`` for the example's ``…56.999Z``, the same instant) — Python 3.10's
  ``datetime.fromisoformat`` cannot read them, so every Azure test reads them.

Every violation is recorded; the test fixture fails the test if any request broke the contract.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

SPEC_DIR = Path(__file__).resolve().parent / "azureml-rest-2024-10-01"
API_VERSION = "2024-10-01"
SPEC_FILES = ("mfe.json", "machineLearningServices.json", "workspaceRP.json", "registries.json", "workspaceFeatures.json")


class Spec:
    """The swagger files with ``$ref`` resolution across them."""

    def __init__(self, folder: Path = SPEC_DIR):
        self.folder = folder
        self.docs: dict[str, dict] = {}
        self.routes: list[tuple[re.Pattern, str, str, str, dict]] = []  # (regex, template, method, file, operation)
        for name in SPEC_FILES:
            doc = self.load(name)
            for template, item in doc.get("paths", {}).items():
                rx = re.compile("^" + re.sub(r"\{([^}]+)\}", r"(?P<\1>[^/]+)", template) + "$")
                for method, op in item.items():
                    if method in ("get", "put", "post", "patch", "delete"):
                        self.routes.append((rx, template, method.upper(), name, op))

    def load(self, name: str) -> dict:
        if name not in self.docs:
            # the specs point at ../../../../../common-types/…; here that folder sits beside them
            relative = name[len("../../../../../"):] if name.startswith("../../../../../") else name
            self.docs[name] = json.loads((self.folder / relative).read_text(encoding="utf-8"))
        return self.docs[name]

    def resolve(self, node: dict, current: str) -> tuple[dict, str]:
        """Follow ``$ref`` (possibly into another file); returns (schema, file it lives in)."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            file_part, _, pointer = ref.partition("#")
            target = current
            if file_part:
                base = current.rsplit("/", 1)[0] + "/" if "/" in current else ""
                target = _normalize(base + file_part)
            doc = self.load(target)
            for part in pointer.strip("/").split("/"):
                doc = doc[part.replace("~1", "/").replace("~0", "~")]
            node, current = doc, target
            seen += 1
            if seen > 50:
                raise RuntimeError(f"$ref loop at {ref}")
        return node, current

    def subtypes(self, base_name: str, current: str) -> dict[str, tuple[str, str]]:
        """discriminator value → (definition name, file) for definitions extending ``base_name``."""
        out = {}
        doc = self.load(current)
        for name, schema in doc.get("definitions", {}).items():
            for part in schema.get("allOf", []):
                if part.get("$ref", "").endswith(f"/definitions/{base_name}"):
                    out[schema.get("x-ms-discriminator-value", name)] = (name, current)
        return out

    def match(self, method: str, path: str):
        for rx, template, m, name, op in self.routes:
            if m == method:
                found = rx.match(path)
                if found:
                    return template, name, op, found.groupdict()
        return None


def _normalize(path: str) -> str:
    parts: list[str] = []
    for p in path.split("/"):
        if p == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            else:
                parts.append(p)
        elif p not in ("", "."):
            parts.append(p)
    return "/".join(parts)


class Validator:
    """Enough of JSON schema (swagger 2.0 flavour) for Azure ML request bodies."""

    def __init__(self, spec: Spec):
        self.spec = spec

    def validate(self, value: Any, schema: dict, current: str, where: str = "body", dispatched: bool = False,
                 request: bool = True) -> list[str]:
        schema, current = self.spec.resolve(schema, current)
        errors: list[str] = []
        if value is None:
            return [] if schema.get("x-nullable", False) or not schema else [f"{where}: null is not allowed"]
        disc = schema.get("discriminator")
        if disc and not dispatched and isinstance(value, dict):
            name = self._definition_name(schema, current)
            subtypes = self.spec.subtypes(name, current) if name else {}
            kind = value.get(disc)
            if kind is None:
                return [f"{where}: the discriminator {disc!r} is missing"]
            if kind not in subtypes:
                return [f"{where}.{disc}: {kind!r} is not one of {sorted(subtypes)}"]
            sub_name, sub_file = subtypes[kind]
            return self.validate(value, {"$ref": f"#/definitions/{sub_name}"}, sub_file, where, dispatched=True,
                                 request=request)
        t = schema.get("type")
        if t == "object" or "properties" in schema or "allOf" in schema:
            if not isinstance(value, dict):
                return errors + [f"{where}: expected an object, got {type(value).__name__}"]
            props = self._all_properties(schema, current)  # own and inherited (allOf), checked once
            for req in self._all_required(schema, current):
                if req not in value:
                    errors.append(f"{where}: required property {req!r} is missing")
            for key, item in value.items():
                if key in props:
                    sub_schema, sub_file = props[key]
                    resolved, _ = self.spec.resolve(sub_schema, sub_file)
                    if request and (sub_schema.get("readOnly") or resolved.get("readOnly")):
                        errors.append(f"{where}.{key}: read-only property sent in a request")
                        continue
                    errors += self.validate(item, sub_schema, sub_file, f"{where}.{key}", request=request)
                elif isinstance(schema.get("additionalProperties"), dict):
                    errors += self.validate(item, schema["additionalProperties"], current, f"{where}.{key}",
                                            request=request)
                elif props and not schema.get("additionalProperties") and not self._open(schema, current):
                    errors.append(f"{where}: unknown property {key!r} (known: {', '.join(sorted(props)[:12])})")
        elif t == "array":
            if not isinstance(value, list):
                return errors + [f"{where}: expected an array"]
            for i, item in enumerate(value):
                errors += self.validate(item, schema.get("items", {}), current, f"{where}[{i}]", request=request)
        elif t == "string":
            if not isinstance(value, str):
                return errors + [f"{where}: expected a string, got {type(value).__name__}"]
            enum = schema.get("enum")
            # an x-ms-enum with modelAsString is extensible: other values are allowed by the contract
            if enum and value not in enum and not schema.get("x-ms-enum", {}).get("modelAsString", False):
                errors.append(f"{where}: {value!r} is not one of {enum}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
            if len(value) < schema.get("minLength", 0):
                errors.append(f"{where}: shorter than {schema['minLength']}")
        elif t == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                errors.append(f"{where}: expected an integer")
        elif t == "number":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                errors.append(f"{where}: expected a number")
        elif t == "boolean":
            if not isinstance(value, bool):
                errors.append(f"{where}: expected a boolean")
        return errors

    def _definition_name(self, schema: dict, current: str) -> str | None:
        for name, d in self.spec.load(current).get("definitions", {}).items():
            if d is schema:
                return name
        return None

    def _all_properties(self, schema: dict, current: str) -> dict[str, tuple[dict, str]]:
        props = {k: (v, current) for k, v in schema.get("properties", {}).items()}
        for part in schema.get("allOf", []):
            base, base_file = self.spec.resolve(part, current)
            for k, v in self._all_properties(base, base_file).items():
                props.setdefault(k, v)
        return props

    def _all_required(self, schema: dict, current: str) -> list[str]:
        out = list(schema.get("required", []))
        for part in schema.get("allOf", []):
            base, base_file = self.spec.resolve(part, current)
            out += self._all_required(base, base_file)
        return out

    def _open(self, schema: dict, current: str) -> bool:
        """ARM models are open unless they say otherwise: swagger 2.0 allows additional properties by
        default. We stay strict (unknown properties are violations) except where a base is open."""
        if schema.get("additionalProperties"):
            return True
        for part in schema.get("allOf", []):
            base, base_file = self.spec.resolve(part, current)
            if self._open(base, base_file):
                return True
        return False


@dataclass
class Call:
    method: str
    path: str
    operation: str
    query: dict
    body: Any
    headers: dict
    status: int | None = None  # what the fake answered


@dataclass
class FakeArm:
    """The fake server: ``base_url`` is what the client uses instead of https://management.azure.com."""

    spec: Spec = field(default_factory=Spec)
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)  # operationId → callable(call, example_response) -> (status, body)
    blobs: dict[str, bytes] = field(default_factory=dict)
    blob_requests: int = 0
    pending_uploads: int = 0
    tolerate: tuple[str, ...] = ()  # violations (substrings) the service is known to accept: recorded, not refused
    tolerated: list[str] = field(default_factory=list)
    blob_metadata: dict[str, dict[str, str]] = field(default_factory=dict)  # blob path → its x-ms-meta-* values
    token: str = "fake-arm-token-0123456789"
    storage_token: str | None = None  # the Entra ID token storage accepts (identity-based datastores)
    storage_key: str | None = None  # the account key Shared Key signatures are checked with
    storage_sas: str | None = None  # the SAS token the datastore hands out (its parameters must all be sent)
    blob_auth: list[str] = field(default_factory=list)  # how each blob request authenticated: Bearer, SharedKey, SAS
    tls: tuple[str, str] | None = None  # (certificate, key) files: serve HTTPS
    any_api_version: bool = False  # Microsoft's SDK sends other api-versions: bodies are still checked against ours

    def __post_init__(self):
        self.validator = Validator(self.spec)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = fake.handle(self.command, self.path, dict(self.headers), raw)
                data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else (body or b"")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if data and "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                if self.command != "HEAD":  # HEAD answers the headers GET would, without the body
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # socketserver's default backlog of 5 drops concurrent connects (1 s retries)
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        scheme = "http"
        if self.tls is not None:  # (certificate file, key file): HTTPS, as clients that refuse bearer tokens over HTTP need
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.base_url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # -- the stated adaptations of Microsoft's examples the tests use ---------------------------------------

    def snapshots_here(self) -> "FakeArm":
        """startPendingUpload's example SAS points at contoso.com: hand out this fake's storage instead."""
        def local_sas(call, status, body):
            # a fresh folder per pending upload, as the service gives (the same name twice is a new location)
            self.pending_uploads += 1
            where = f"{self.base_url}/blob/c/snap" + (str(self.pending_uploads) if self.pending_uploads > 1 else "")
            body["blobReferenceForConsumption"]["credential"]["sasUri"] = f"{where}?sv=1&sig=x"
            body["blobReferenceForConsumption"]["blobUri"] = where
            return status, body

        self.overrides["CodeVersions_CreateOrGetStartPendingUpload"] = local_sas
        return self

    def keeping_state(self, page_size: int = 2) -> "FakeArm":
        """Answer like a workspace that keeps what it is sent, for code, model and environment versions, online
        endpoints and deployments, and jobs (a job never submitted here is the example's): a PUT is echoed by the next GET (on the example response's frame: ids, systemData, read-only
        states), a GET of what was never PUT is 404, lists hold what was PUT and come in pages of ``page_size``
        (``nextLink`` with ``$skip``), a container's ``nextVersion`` counts every version, ``CodeVersions_List`` with
        ``hash`` finds the workspace's code versions of any name PUT with that ``hash_sha256``, and a second PUT of a
        different path onto an existing code or model version is refused as the service refuses it ("Asset paths
        cannot be updated", 409), as is another definition (image, conda file, build) onto an existing environment
        version (the same definition again is accepted)."""
        self.assets: dict[str, dict] = {}
        uri_keys = {"CodeVersions": "codeUri", "ModelVersions": "modelUri"}

        def not_found(call):
            return 404, {"error": {"code": "UserError", "message": f"{call.path.rsplit('/', 1)[-1]} not found"}}

        def put(call, status, body):
            family = call.operation.split("_")[0]
            key = uri_keys.get(family)
            old = self.assets.get(call.path)
            new_props = (call.body or {}).get("properties") or {}
            if key and old is not None and (old.get("properties") or {}).get(key) != new_props.get(key):
                return 409, {"error": {"code": "UserError", "message": "Asset paths cannot be updated."}}
            if family == "EnvironmentVersions" and old is not None and any(
                    (old.get("properties") or {}).get(k) != new_props.get(k) for k in ENVIRONMENT_DEFINITION):
                # an environment version is immutable: the same definition again is accepted, another refused
                return 409, {"error": {"code": "UserError", "message": "This environment version exists with another "
                                                                       "definition; register a new version."}}
            # the example's frame (id, name, type, systemData) around what the request said; the example's own
            # kind, sku, location … placeholders are not what was PUT
            merged = {k: v for k, v in (body or {}).items() if k in ("id", "name", "type", "systemData")}
            merged.update({k: v for k, v in (call.body or {}).items() if k != "properties"})
            frame = (body or {}).get("properties") or {}  # what the service sets itself, from the example
            # what the request left out comes back as the service's empty default ({}), as clients expect — except a
            # discriminated object (one with a …Type key: distribution, limits, identity), which stays out as the
            # service leaves it (clients read {} as a type named None)
            defaults = {k: {} for k, v in frame.items() if isinstance(v, dict) and k not in new_props
                        and not any(key.endswith("Type") for key in v)}
            filled = {k: v for k, v in frame.items() if k in SERVICE_SET or (k in SERVICE_DEFAULTS and k not in new_props)}
            merged["properties"] = {**defaults, **filled, **new_props}
            if "provisioningState" in merged["properties"]:
                merged["properties"]["provisioningState"] = "Succeeded"  # kept state: the operation is done
            merged["name"] = call.path.rsplit("/", 1)[-1]
            merged["id"] = call.path
            self.assets[call.path] = merged
            return (200 if status == 202 else status), merged

        def get(call, status, body):
            found = self.assets.get(call.path)
            return (200, found) if found is not None else not_found(call)

        def listing(call, status, body):
            prefix = call.path.rstrip("/") + "/"
            wanted = call.query.get("hash")
            if wanted:  # a lookup by content: every code version of the workspace, whatever its name (the SDK
                # asks under a fresh random name and takes the name and version from the answer's id)
                prefix = call.path.split("/codes/", 1)[0] + "/codes/"
            items = [v for k, v in sorted(self.assets.items(), key=lambda kv: _version_order(kv[0]))
                     if k.startswith(prefix) and (wanted or "/" not in k[len(prefix):])]
            if wanted:
                items = [v for v in items if "/versions/" in v.get("id", "") and
                         ((v.get("properties") or {}).get("properties") or {}).get("hash_sha256") == wanted]
            if "desc" in str(call.query.get("$orderBy", "")).lower():
                items = items[::-1]  # newest first (created in PUT order here)
            if call.query.get("$top"):
                items = items[:int(call.query["$top"])]
            skip = int(call.query.get("$skip") or 0)
            page = {"value": items[skip:skip + page_size]}
            if skip + page_size < len(items):
                extra = "".join(f"&{k}={v}" for k, v in call.query.items() if k not in ("api-version", "$skip"))
                page["nextLink"] = f"{self.base_url}{call.path}?api-version={API_VERSION}&$skip={skip + page_size}{extra}"
            return 200, page

        def container(call, status, body):
            versions = [int(k.rsplit("/", 1)[-1]) for k in self.assets
                        if k.startswith(call.path + "/versions/") and k.rsplit("/", 1)[-1].isdigit()]
            if not versions:
                return not_found(call)
            body = dict(body or {})
            body["properties"] = {**(body.get("properties") or {}), "latestVersion": str(max(versions)),
                                  "nextVersion": str(max(versions) + 1)}
            body["name"] = call.path.rsplit("/", 1)[-1]
            return 200, body

        for family in ("CodeVersions", "ModelVersions", "EnvironmentVersions", "DataVersions", "ComponentVersions"):
            self.overrides[f"{family}_CreateOrUpdate"] = put
            self.overrides[f"{family}_Get"] = get
            self.overrides[f"{family}_List"] = listing
        for family in ("ModelContainers", "EnvironmentContainers", "DataContainers", "ComponentContainers"):
            self.overrides[f"{family}_Get"] = container
        self.overrides["OnlineEndpoints_CreateOrUpdate"] = put
        self.overrides["OnlineEndpoints_Get"] = get
        self.overrides["OnlineDeployments_CreateOrUpdate"] = put
        self.overrides["OnlineDeployments_Get"] = get
        self.overrides["OnlineDeployments_List"] = listing
        for family in ("BatchEndpoints", "BatchDeployments"):
            self.overrides[f"{family}_CreateOrUpdate"] = put
            self.overrides[f"{family}_Get"] = get
            self.overrides[f"{family}_List"] = listing
        # jobs: a submitted job is echoed; one never submitted here is the example's (a workspace's older job)
        self.overrides["Jobs_CreateOrUpdate"] = put
        self.overrides["Jobs_Get"] = lambda call, status, body: (200, self.assets[call.path]) \
            if call.path in self.assets else (status, body)
        return self

    def datastores_here(self, credentials: str) -> "FakeArm":
        """Microsoft's example datastore (account and container "string"), its storage served by this fake at
        ``string.blob.core.localhost:PORT`` (``endpoint`` "core.localhost:PORT", as a sovereign cloud names its own:
        azure-storage-blob finds the account name before ".blob.core."), with ``credentials`` "AccountKey" (a usable key, Shared Key signatures verified), "Sas" (a SAS token
        that must come back whole) or "None" (identity-based: the caller's storage token)."""
        port = self.server.server_address[1]
        self.storage_key = base64.b64encode(b"fake-account-key-0123456789abcdef").decode()
        self.storage_sas = "sv=2021-08-06&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&sig=c2lnbmF0dXJl"
        self.storage_token = self.storage_token or "storage-token-abc"

        def here(call, status, body):
            for store in body.get("value", [body]):
                props = store["properties"]
                props.update(endpoint=f"core.localhost:{port}", protocol="https", isDefault=True)
                props["credentials"] = {"credentialsType": credentials} if credentials == "None" else \
                    {"credentialsType": credentials, "secrets": {"secretsType": credentials}}
            body.pop("nextLink", None)  # the example's "string" is no link: one page
            return status, body

        def secrets(call, status, body):
            if credentials == "AccountKey":
                return status, {"secretsType": "AccountKey", "key": self.storage_key}
            if credentials == "Sas":
                return status, {"secretsType": "Sas", "sasToken": self.storage_sas}
            return 400, {"error": {"code": "UserError", "message": "the datastore holds no secret"}}

        self.overrides["Datastores_List"] = self.overrides["Datastores_Get"] = here
        self.overrides["Datastores_ListSecrets"] = secrets
        return self

    def datastore_key(self, key: str) -> "FakeArm":
        """Datastores_ListSecrets' example key is the placeholder "string": answer a usable one (Azurite's)."""
        self.overrides["Datastores_ListSecrets"] = lambda call, status, body: (status, {**body, "key": key})
        return self

    # -- requests --------------------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: dict, raw: bytes):
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        host = next((v for k, v in headers.items() if k.lower() == "host"), "")
        if re.match(r"^[a-z0-9]+\.blob\.core\.localhost(:\d+)?$", host):  # a storage account's own host name
            return self.handle_blob(method, "/blob" + unquote(parts.path), query, headers, raw, parts)
        if parts.path.startswith("/blob/"):  # a blob's name is the decoded path, as Azure Storage keeps it
            return self.handle_blob(method, unquote(parts.path), query, headers, raw, parts)
        if parts.path == "/lro":
            # ARM's generic long-running-operation protocol (not an Azure ML operation, so not in these
            # files): the status monitor answers {"status": "Succeeded"} when the operation is done
            self.calls.append(Call(method, parts.path, "LRO-status", query, None, headers))
            return 200, {}, {"status": "Succeeded"}
        if headers.get("Authorization") != f"Bearer {self.token}":
            self.violations.append(f"{method} {parts.path}: no or wrong bearer token")
            return 401, {}, {"error": {"code": "AuthenticationFailed", "message": "missing token"}}
        found = self.spec.match(method, parts.path)
        if found is None:
            self.violations.append(f"{method} {parts.path}: no such operation in the contract")
            return 404, {}, {"error": {"code": "NotInContract", "message": f"{method} {parts.path}"}}
        template, file, op, params = found
        opid = op["operationId"]
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self.violations.append(f"{opid}: the body is not JSON")
                return 400, {}, {"error": {"code": "BadJson", "message": "not JSON"}}
        problems = self.check(op, file, query, params, body)
        self.calls.append(Call(method, parts.path, opid, query, body, headers))
        known = [p for p in problems if any(t in f"{opid}: {p}" for t in self.tolerate)]
        self.tolerated += [f"{opid}: {p}" for p in known]
        problems = [p for p in problems if p not in known]
        if problems:
            self.violations += [f"{opid}: {p}" for p in problems]
            return 400, {}, {"error": {"code": "ContractViolation", "message": "; ".join(problems[:5])}}
        status, resp_headers, resp_body = self.example_response(op, file, params, body)
        if opid in self.overrides:
            status, resp_body = self.overrides[opid](self.calls[-1], status, resp_body)
        self.calls[-1].status = status
        return status, resp_headers, resp_body

    def check(self, op: dict, file: str, query: dict, params: dict, body: Any) -> list[str]:
        problems = []
        for p in op.get("parameters", []):
            p, pfile = self.spec.resolve(p, file)
            name, where = p.get("name"), p.get("in")
            if where == "query":
                if name == "api-version" and query.get("api-version") != API_VERSION and not self.any_api_version:
                    problems.append(f"api-version {query.get('api-version')!r}, the contract is {API_VERSION}")
                elif p.get("required") and name not in query:
                    problems.append(f"required query parameter {name!r} is missing")
            elif where == "path":
                value = params.get(name, "")
                if p.get("pattern") and not re.search(p["pattern"], value):
                    problems.append(f"path parameter {name}={value!r} does not match {p['pattern']}")
            elif where == "body":
                if body is None:
                    if p.get("required"):
                        problems.append("the body is required")
                else:
                    problems += self.validator.validate(body, p["schema"], pfile)
        return problems

    def example_response(self, op: dict, file: str, params: dict, body: Any):
        examples = []
        for ref in (op.get("x-ms-examples") or {}).values():
            path = (self.spec.folder / _normalize(ref["$ref"].lstrip("./"))) if not ref["$ref"].startswith("./") \
                else self.spec.folder / ref["$ref"][2:]
            examples.append(json.loads(path.read_text(encoding="utf-8")))
        if not examples:
            return 200, {}, {}
        chosen = examples[0]
        wanted = _discriminators(body)
        for ex in examples:
            req = ex.get("parameters", {}).get("body")
            if wanted and _discriminators(req) & wanted:
                chosen = ex
                break
        responses = chosen["responses"]
        # a long-running operation answers as ARM does when it is still working: 202 (or 201) with a monitor
        order = ("202", "201", "200", "204") if op.get("x-ms-long-running-operation") else ("200", "201", "202", "204")
        code = next((c for c in order if c in responses), next(iter(responses)))
        resp = responses[code]
        text = json.dumps(resp.get("body")) if "body" in resp else None
        if text is not None:  # systemData times as Azure writes them: 7 fractional digits (.NET's round-trip format)
            text = re.sub(r'("(?:createdAt|lastModifiedAt)": "[0-9T:-]+\.)(\d{1,6})(Z|[+-]\d\d:\d\d)"',
                          lambda m: f'{m.group(1)}{m.group(2).ljust(7, "0")}{m.group(3)}"', text)
        for key, value in chosen.get("parameters", {}).items():
            if isinstance(value, str) and key in params and value and key != "api-version":
                if text is not None:
                    text = text.replace(value, params[key])
        headers = {}
        for k, v in (resp.get("headers") or {}).items():
            if k.lower() in ("location", "azure-asyncoperation"):
                headers[k] = self.base_url + "/lro"  # the example's monitor URL, pointed at this fake
            else:
                headers[k] = str(v)
        return int(code), headers, json.loads(text) if text is not None else None

    # -- blob storage (Put Blob, Put Block, Put Block List, Get Blob, Get Blob Properties, Set Blob Metadata,
    #    List Blobs; errors as Azure Storage writes them: x-ms-error-code and an XML body) ---------------------

    def handle_blob(self, method: str, path: str, query: dict, headers: dict, raw: bytes, parts=None):
        self.blob_requests += 1
        bearer = headers.get("Authorization", "")
        refused = (403, {"x-ms-error-code": "AuthenticationFailed"}, b"<?xml version='1.0' encoding='utf-8'?><Error>"
                   b"<Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message></Error>")
        self.blob_auth.append(bearer.split(" ", 1)[0] if bearer else ("SAS" if "sig" in query else "none"))
        host = next((v for k, v in headers.items() if k.lower() == "host"), "")
        account = ".blob.core.localhost" in host  # a datastore's account (datastores_here), not a code upload's SAS
        if bearer.startswith("Bearer "):  # identity-based access: only a token for storage is good here
            if self.storage_token is None or bearer != f"Bearer {self.storage_token}":
                self.violations.append(f"blob {method} {path}: a bearer token that is not a storage token")
                return refused
        elif bearer.startswith("SharedKey "):
            expected = shared_key(method, parts, headers, self.storage_key) \
                if self.storage_key and parts and ".blob.core.localhost" in host else None
            if expected is None or bearer != expected:
                self.violations.append(f"blob {method} {path}: a Shared Key signature that does not verify")
                return refused
        elif "sig" not in query or "sv" not in query:
            self.violations.append(f"blob {method} {path}: no SAS signature")
            return refused
        elif self.storage_sas and account and \
                not set(self.storage_sas.split("&")) <= set((parts.query if parts else "").split("&")):
            self.violations.append(f"blob {method} {path}: a SAS that is not the one the datastore gave")
            return refused
        if not headers.get("x-ms-version"):
            self.violations.append(f"blob {method} {path}: x-ms-version header missing")
        meta = {k.lower()[len("x-ms-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}
        not_found = (404, {"x-ms-error-code": "BlobNotFound", "Content-Type": "application/xml"},
                     b"<?xml version='1.0' encoding='utf-8'?><Error><Code>BlobNotFound</Code>"
                     b"<Message>The specified blob does not exist.</Message></Error>")
        if method == "HEAD":  # Get Blob Properties: the metadata as x-ms-meta-* headers
            if path not in self.blobs:
                return not_found
            return 200, {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream",
                         **{f"x-ms-meta-{k}": v for k, v in self.blob_metadata.get(path, {}).items()}}, \
                self.blobs[path]
        if method == "PUT" and query.get("comp") == "metadata":  # Set Blob Metadata: replaces all of it
            if path not in self.blobs:
                return not_found
            self.blob_metadata[path] = meta
            return 200, {}, b""
        if method == "PUT" and query.get("comp") == "block":
            if not query.get("blockid"):
                self.violations.append("Put Block without blockid")
            self.blobs[f"{path}#{query.get('blockid')}"] = raw
            return 201, {}, b""
        if method == "PUT" and query.get("comp") == "blocklist":
            ids = re.findall(rb"<(?:Latest|Uncommitted|Committed)>([^<]+)</", raw)
            missing = [i for i in ids if f"{path}#{i.decode()}" not in self.blobs]
            if missing:
                self.violations.append(f"Put Block List names blocks never uploaded: {missing[:3]}")
            self.blobs[path] = b"".join(self.blobs.pop(f"{path}#{i.decode()}", b"") for i in ids)
            self.blob_metadata[path] = meta
            return 201, {}, b""
        if method == "PUT":
            if headers.get("x-ms-blob-type") != "BlockBlob":
                self.violations.append(f"Put Blob {path}: x-ms-blob-type must be BlockBlob")
            self.blobs[path] = raw
            self.blob_metadata[path] = meta
            return 201, {}, b""
        if method == "GET" and query.get("comp") == "list":  # List Blobs (one page)
            prefix = f"{path.rstrip('/')}/{query.get('prefix', '')}"
            names = sorted(k for k in self.blobs if k.startswith(prefix) and "#" not in k)
            items = "".join(f"<Blob><Name>{xml_escape(k[len(path.rstrip('/')) + 1:])}</Name><Properties>"
                            f"<Content-Length>{len(self.blobs[k])}</Content-Length></Properties></Blob>" for k in names)
            xml = f"<?xml version='1.0' encoding='utf-8'?><EnumerationResults><Blobs>{items}</Blobs><NextMarker/>" \
                  "</EnumerationResults>"
            return 200, {"Content-Type": "application/xml"}, xml.encode()
        if method == "GET" and path in self.blobs:
            return 200, {"Content-Type": "application/octet-stream"}, self.blobs[path]
        return not_found


#: properties the service sets on what it keeps (the rest of an echo is what the request said)
#: what defines an environment version (a PUT of another definition onto an existing version is refused)
ENVIRONMENT_DEFINITION = ("image", "condaFile", "build", "inferenceConfig", "osType")
SERVICE_SET = frozenset({"provisioningState", "scoringUri", "swaggerUri", "status"})
#: settings the service fills in when a request leaves them out; the example's values are its defaults (the Default
#: scale type, the documented probe and request timings)
SERVICE_DEFAULTS = frozenset({"scaleSettings", "requestSettings", "livenessProbe", "readinessProbe"})


@contextlib.contextmanager
def client_on(fake: "FakeArm", **connect):
    """Our Client on ``fake`` (workspace my-ws, no waiting between polls); on exit the fake is closed and the test
    fails if any request broke the contract."""
    from aml_magics.core.client import Client

    from .test_rest_contract import StaticToken

    client = Client.connect("00000000-1111-2222-3333-444444444444", "my-rg", "my-ws",
                            credential=StaticToken(fake.token), base_url=fake.base_url, **connect)
    client.backend.arm._sleep = lambda s: None
    try:
        yield client
    finally:
        fake.close()
    assert not fake.violations, "requests broke the contract:\n" + "\n".join(fake.violations)


#: RFC 6761: names under .localhost are loopback (systemd-resolved and browsers answer so; this machine's resolver
#: does not): the storage accounts of ``FakeArm.datastores_here`` live at ACCOUNT.blob.core.localhost
RESOLVE_LOCALHOST = """
import socket as _socket
_getaddrinfo = _socket.getaddrinfo
def _loopback_localhost(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)
_socket.getaddrinfo = _loopback_localhost
"""


def resolve_localhost(monkeypatch) -> None:
    """``RESOLVE_LOCALHOST`` in this process, for the test's duration."""
    import socket

    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(
        "127.0.0.1" if isinstance(host, str) and host.endswith(".localhost") else host, *a, **k))


def loopback_certificate(folder: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, localhost and storage accounts at *.blob.core.localhost (valid for an
    hour) and its key, as files in ``folder``: for HTTPS peers on loopback, trusted through ``REQUESTS_CA_BUNDLE``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost"), x509.DNSName("*.blob.core.localhost")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "loopback-cert.pem", folder / "loopback-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def shared_key(method: str, parts, headers: dict, key: str) -> str:
    """The ``Authorization`` a request signed with ``key`` carries, built as Azure Storage documents Shared Key
    (api-version 2015-02-21 and later): the verb, eleven standard headers (Content-Length empty when 0), the x-ms-*
    headers lower-cased and sorted, then /account/path and each query parameter (lower-cased names, sorted; values
    decoded, sorted, comma-joined)."""
    from urllib.parse import unquote

    h = {k.lower(): v for k, v in headers.items()}
    account, path = h.get("host", "").split(".", 1)[0], parts.path  # ACCOUNT.blob.core.localhost:PORT/CONTAINER/BLOB
    length = h.get("content-length", "")
    standard = [h.get(k, "") for k in ("content-encoding", "content-language")] + \
        ["" if length == "0" else length] + \
        [h.get(k, "") for k in ("content-md5", "content-type", "date", "if-modified-since", "if-match",
                                "if-none-match", "if-unmodified-since", "range")]
    canonical = "".join(f"{k}:{' '.join(v.split())}\n" for k, v in sorted(h.items()) if k.startswith("x-ms-"))
    resource = f"/{account}{path}"
    params: dict[str, list[str]] = {}
    for pair in filter(None, parts.query.split("&")):
        k, _, v = pair.partition("=")
        params.setdefault(unquote(k).lower(), []).append(unquote(v))
    for k in sorted(params):
        resource += f"\n{k}:{','.join(sorted(params[k]))}"
    to_sign = "\n".join([method, *standard]) + "\n" + canonical + resource
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode()}"


def _version_order(path: str):
    last = path.rsplit("/", 1)[-1]
    return (path.rsplit("/", 1)[0], int(last) if last.isdigit() else 0, last)


def _discriminators(body: Any) -> set:
    found = set()
    if isinstance(body, dict):
        for k, v in body.items():
            if k.endswith("Type") and isinstance(v, str):
                found.add((k, v))
            found |= _discriminators(v)
    return found
