"""Test support: kmock 0.8 as a Kubernetes API server the official `kubernetes` client can use.

kmock emulates the API in memory over real HTTP, so the client's whole path (URLs, serialisation,
errors) runs for real. Version 0.8 has gaps this module closes (see TESTING.md):

- namespace create/read/delete paths (`/api/v1/namespaces[/NAME]`) are mis-parsed;
- label and field selectors are ignored when listing;
- PUT (replace) is not mapped to anything;
- creates answer 200 where clients expect 201;
- `/version/` (with the slash) is missing;
- uid, resourceVersion, creationTimestamp and (from generateName) name are never set;
- objects created through a namespaced URL lack `metadata.namespace`, so watches miss them;
- deleting a namespace leaves its contents behind.

It also plays one part of a real API server kmock leaves out: with `authorize` set, every request
is first put to that function (authorization and RBAC escalation checks, see host_rbac.py), and
a refusal answers 403 Forbidden with a Kubernetes Status, as the API server would.

`EmulatorThread` runs one emulator on its own asyncio loop in a thread, on a real local port.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import aiohttp.web
import attrs
import kmock
from kmock._internal import enums, parsing, rendering
from kubernetes import client

# Resources the tests use: declared so that listing an empty collection answers [] instead of 404.
RESOURCES: dict[str, dict[str, Any]] = {
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
    "v1/pods": {"kind": "Pod", "namespaced": True},
    "v1/secrets": {"kind": "Secret", "namespaced": True},
    "v1/configmaps": {"kind": "ConfigMap", "namespaced": True},
    "v1/services": {"kind": "Service", "namespaced": True},
    "v1/events": {"kind": "Event", "namespaced": True},
    "v1/persistentvolumeclaims": {"kind": "PersistentVolumeClaim", "namespaced": True},
    "v1/resourcequotas": {"kind": "ResourceQuota", "namespaced": True},
    "v1/limitranges": {"kind": "LimitRange", "namespaced": True},
    "v1/serviceaccounts": {"kind": "ServiceAccount", "namespaced": True},
    "apps/v1/statefulsets": {"kind": "StatefulSet", "namespaced": True},
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True},
    "networking.k8s.io/v1/ingresses": {"kind": "Ingress", "namespaced": True},
    "networking.k8s.io/v1/networkpolicies": {"kind": "NetworkPolicy", "namespaced": True},
    "policy/v1/poddisruptionbudgets": {"kind": "PodDisruptionBudget", "namespaced": True},
    "rbac.authorization.k8s.io/v1/roles": {"kind": "Role", "namespaced": True},
    "rbac.authorization.k8s.io/v1/rolebindings": {"kind": "RoleBinding", "namespaced": True},
    "rbac.authorization.k8s.io/v1/clusterroles": {"kind": "ClusterRole", "namespaced": False},
    "rbac.authorization.k8s.io/v1/clusterrolebindings": {
        "kind": "ClusterRoleBinding",
        "namespaced": False,
    },
    "storage.k8s.io/v1/storageclasses": {"kind": "StorageClass", "namespaced": False},
}

TEST_TOKEN = "test-token"
# Decides whether the API server lets a request through: None, or the reason it is forbidden.
Authorize = Callable[["KubeEmulator", rendering.Request], "str | None"]
_original_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    """kmock's path parser, taught that `/api/v1/namespaces[/NAME[/status]]` is the namespaces
    resource itself rather than a namespace prefix."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (
        len(parts) <= 4 or (len(parts) == 5 and parts[4] in ("status", "finalize"))
    ):
        name = parts[3] if len(parts) > 3 else None
        subresource = parts[4] if len(parts) > 4 else None
        return parsing.ParsedPath("", "v1", "namespaces", None, name, subresource)
    return _original_parse_path(path)


# kmock parses each request through this module attribute, so replacing it is enough.
parsing.parse_path = _parse_path

_SELECTOR_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[^\s=!(),]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)|\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return terms


def matches_label_selector(labels: Mapping[str, str], selector: str) -> bool:
    """Kubernetes label selector semantics: =, ==, !=, in, notin, exists and !exists."""
    for term in _split_terms(selector):
        match = _SELECTOR_TERM.match(term)
        if match is None:
            raise ValueError(f"unparseable label selector term {term!r}")
        key, op, value = match["key"], match["op"], match["value"]
        if match["neg"]:
            ok = key not in labels
        elif op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif match["set"]:
            choices = {v.strip() for v in match["values"].split(",")}
            ok = (labels.get(key) in choices) == (match["set"] == "in") and (
                key in labels or match["set"] == "notin"
            )
        else:
            ok = key in labels
        if not ok:
            return False
    return True


def matches_field_selector(obj: Mapping[str, Any], selector: str) -> bool:
    """Field selectors on dotted paths, e.g. `metadata.name=x,involvedObject.kind!=Pod`."""
    for term in _split_terms(selector):
        negate = "!=" in term
        path, _, value = term.partition("!=" if negate else "=")
        node: Any = obj
        for part in path.strip().lstrip("=").split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        actual = "" if node is None else str(node)
        if (actual == value.lstrip("=").strip()) == negate:
            return False
    return True


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """`kmock.KubernetesEmulator` with the gaps above closed."""

    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    authorize: Authorize | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback["get /version/"] << self._serve_server_version
        for resource, info in RESOURCES.items():
            self.resources[resource] = info

    def _stamp_new(self, request: rendering.Request) -> None:
        data = request.data
        if not isinstance(data, dict):
            return
        metadata = data.setdefault("metadata", {})
        if request.namespace and not metadata.get("namespace"):
            metadata["namespace"] = request.namespace
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(
                secrets.choice(string.ascii_lowercase + string.digits) for _ in "12345"
            )
            metadata["name"] = metadata["generateName"] + suffix
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", _now())
        metadata["resourceVersion"] = str(next(self._versions))

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if self.authorize is not None and request.resource is not None:
            refusal = self.authorize(self, request)
            if refusal is not None:
                return _forbidden(refusal)
        if request.resource is not None and request.method == enums.method.PUT and request.name:
            return await self._replace(request)
        if request.action == enums.action.CREATE:
            self._stamp_new(request)
        response = await super()._handle(request)
        if request.action == enums.action.CREATE and response.status == 200:
            response.set_status(201)
        if request.action == enums.action.UPDATE and response.status == 200:
            await self._bump_version(request)
        if (
            request.action == enums.action.DELETE
            and request.resource is not None
            and request.resource.plural == "namespaces"
            and request.name
            and response.status == 200
        ):
            await self._delete_contents(request.name)
        return response

    async def _replace(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            data = dict(request.data or {})
            metadata = {**self.objects[key].raw.get("metadata", {}), **data.get("metadata", {})}
            metadata["resourceVersion"] = str(next(self._versions))
            data["metadata"] = metadata
            self.objects[key].create(data)
            raw = self.objects[key].raw
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)

    async def _bump_version(self, request: rendering.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key in self.objects and not self.objects[key].deleted:
                version = str(next(self._versions))
                self.objects[key].patch({"metadata": {"resourceVersion": version}})

    async def _delete_contents(self, namespace: str) -> None:
        async with self._lock:
            for (resource, object_namespace, _name), obj in list(self.objects.items()):
                if object_namespace == namespace and not obj.deleted:
                    raw = obj.raw
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": raw})

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_list(request)
        labels = request.params.get("labelSelector", "")
        fields = request.params.get("fieldSelector", "")
        if isinstance(payload, dict) and (labels or fields):
            payload["items"] = [
                item
                for item in payload["items"]
                if (
                    not labels
                    or matches_label_selector(item.get("metadata", {}).get("labels") or {}, labels)
                )
                and (not fields or matches_field_selector(item, fields))
            ]
        return payload


def _forbidden(message: str) -> aiohttp.web.Response:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "code": 403,
    }
    return aiohttp.web.json_response(status, status=403)


class EmulatorThread:
    """One `KubeEmulator` serving HTTP on 127.0.0.1 from its own event loop thread."""

    def __init__(self, configure: Callable[[KubeEmulator], None] | None = None) -> None:
        self._configure = configure
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)
        self.emulator: KubeEmulator | None = None
        self.url = ""

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def serve() -> None:
            self._stop = asyncio.Event()
            async with KubeEmulator() as emulator, kmock.Server(emulator) as server:
                if self._configure is not None:
                    self._configure(emulator)
                self.emulator = emulator
                self.url = str(server.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()

        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the Kubernetes API emulator did not start: {self._error!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def objects(self) -> kmock.ObjectsArray:
        assert self.emulator is not None
        return self.emulator.objects

    def exists(self, resource: str, namespace: str | None, name: str) -> bool:
        """Whether the object is there and not deleted."""
        key = (kmock.resource(resource), namespace, name)
        return any(k == key and not obj.deleted for k, obj in self.objects.items())

    def api_client(
        self, api_client_class: type[client.ApiClient] = client.ApiClient, token: str = ""
    ) -> Any:
        """A client for this emulator; with `token`, it authenticates as that bearer token."""
        configuration = client.Configuration(host=self.url)
        configuration.retries = 0
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return api_client_class(configuration)

    def set_authorizer(self, authorize: Authorize | None) -> None:
        assert self.emulator is not None
        self.emulator.authorize = authorize

    def kubeconfig(self, token: str = TEST_TOKEN, server: str = "") -> dict[str, Any]:
        """A kubeconfig for this emulator, as vCluster exports them (one cluster, one user)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "vcluster", "cluster": {"server": server or self.url}}],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "vcluster", "context": {"cluster": "vcluster", "user": "admin"}}],
            "current-context": "vcluster",
        }


def api_json(obj: Any) -> Any:
    """A raw dict as the API would send it, from a client model or a dict."""
    if isinstance(obj, Mapping):
        return json.loads(json.dumps(obj))
    return client.ApiClient().sanitize_for_serialization(obj)
