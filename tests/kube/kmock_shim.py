"""Test support: kmock 0.8 as a Kubernetes API server the official `kubernetes` client can use.

kmock emulates the API in memory over real HTTP, so the client's whole path (URLs, serialisation,
errors) runs for real. This module is the only one that knows kmock's internals; the other test
modules use `KubeEmulator`, `EmulatorThread` and `ApiRequest` from here. Version 0.8 (pinned in
requirements-dev.txt) has gaps that `KubeEmulator` closes:

- the namespaces resource's own paths (`/api/v1/namespaces[/NAME[/status|/finalize]]`) are read
  as a namespace prefix, and the bare collection fails to parse at all;
- label and field selectors are ignored when listing;
- PUT (replace) is not mapped to anything;
- creates answer 200 where clients expect 201;
- `/version/` (with the slash) is missing;
- uid, resourceVersion, creationTimestamp and (from generateName) name are never set;
- objects created through a namespaced URL lack `metadata.namespace`, so watches miss them;
- deleting a namespace leaves its contents behind.

It also plays two parts of a real API server that kmock leaves out:

- authorization: with `authorize` set, every API request is first put to that function (the
  worker's RBAC and escalation checks, see host_rbac.py), and a refusal answers 403 Forbidden;
- the namespace lifecycle. Deleting a namespace deletes what it holds: objects without finalizers
  go at once, objects with finalizers get a deletionTimestamp and stay until their last finalizer
  is removed. While any remain (or the namespace has finalizers of its own), the namespace stays,
  Terminating (`deletionTimestamp`, `status.phase`), and creating anything in it is refused; once
  the last one goes, the namespace goes too, at the end of the request that released it.
  Upstream, in kubernetes/kubernetes, the namespace controller and the admission plugin that
  refuses new content in a Terminating namespace:
    pkg/controller/namespace/deletion/namespaced_resources_deleter.go
    staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go

What the subclass relies on in kmock, besides its public names (`kmock.Request`, `kmock.resource`,
`kmock.action`, `kmock.method`, `kmock.Object`, `KubernetesEmulator.objects`): the overridable
methods `__call__` (the HTTP entry point), `_handle`, `_serve_list`, `_serve_server_version` and
`_render_error`, and three attributes: `_requests` (the request log, which reactions match
against), `_lock` (held while objects change) and `_buses` (where watch events go), so that the
requests it reads and the changes it makes are seen as kmock's own are.

`EmulatorThread` runs one emulator on its own asyncio loop in a thread, on a real local port.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
NAMESPACES = kmock.resource("", "v1", "namespaces")
# The namespaces resource's own paths: the collection, one namespace, and its subresources.
_NAMESPACES_PATH = re.compile(
    r"^/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<sub>status|finalize))?)?/?$"
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiRequest:
    """One request to the emulated API, as an authorizer sees it."""

    method: str  # "GET", "POST", ...
    group: str = ""  # "" for the core group
    plural: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None  # the JSON body, parsed

    @classmethod
    def of(cls, request: kmock.Request) -> Self:
        resource = request.resource
        return cls(
            method=request.method.value,
            group=(resource.group or "") if resource else "",
            plural=(resource.plural or "") if resource else "",
            namespace=request.namespace,
            name=request.name,
            subresource=request.subresource,
            params=dict(request.params),
            headers=dict(request.headers),
            body=request.data,
        )


# Decides whether the API server lets a request through: None, or the reason it is forbidden.
Authorize = Callable[["KubeEmulator", ApiRequest], "str | None"]

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


def _guess_action(
    method: kmock.method, name: str | None, params: Mapping[str, str]
) -> kmock.action | None:
    """The Kubernetes action of a request, as kmock guesses it for every other path."""
    if method == kmock.method.GET and params.get("watch") == "true":
        return kmock.action.WATCH
    if name is None:
        return {kmock.method.GET: kmock.action.LIST, kmock.method.POST: kmock.action.CREATE}.get(
            method
        )
    return {
        kmock.method.GET: kmock.action.FETCH,
        kmock.method.PATCH: kmock.action.UPDATE,
        kmock.method.DELETE: kmock.action.DELETE,
    }.get(method)


async def _namespaces_request(
    raw: aiohttp.web.BaseRequest, match: re.Match[str], *, id: int
) -> kmock.Request:
    """A request for the namespaces resource itself, read as kmock reads the others."""
    body = await raw.read()
    text = await raw.text()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    method = kmock.method(raw.method)
    params = dict(raw.query)
    return kmock.Request(
        id=id,
        raw_request=raw,
        url=raw.url,
        method=method,
        params=params,
        headers=dict(raw.headers),
        cookies=dict(raw.cookies),
        body=body,
        text=text,
        data=data,
        action=_guess_action(method, match["name"], params),
        resource=NAMESPACES,
        namespace=None,
        name=match["name"],
        subresource=match["sub"],
    )


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


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

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock reads `/api/v1/namespaces/NAME` as the prefix of a namespaced path and fails on
        # the bare collection before any hook runs, so those requests are read here and then
        # served as kmock serves the others: logged (its reactions match only logged requests),
        # then handled, and an error answered as a Kubernetes Status.
        match = _NAMESPACES_PATH.match(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        try:
            request = await _namespaces_request(raw_request, match, id=len(self._requests))
            self._requests.append(request)
            return await self._handle(request)
        except Exception as exc:
            return await self._render_error(exc)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None:  # discovery, /version, anything configured by a test
            return await super()._handle(request)
        if self.authorize is not None:
            refusal = self.authorize(self, ApiRequest.of(request))
            if refusal is not None:
                return _forbidden(refusal)
        if request.action == kmock.action.CREATE:
            self._stamp_new(request)
            refusal = self._terminating_refusal(request)
            if refusal is not None:
                return _forbidden(refusal)
        if self._is_namespace_deletion(request):
            await self._terminate(request.name or "")
        terminating = self._terminating_target(request)
        if terminating is not None:
            response = await self._change_terminating(request, terminating)
        elif request.method == kmock.method.PUT and request.name:
            response = await self._replace(request)
        else:
            response = await super()._handle(request)
            if request.action == kmock.action.CREATE and response.status == 200:
                response.set_status(201)
            if request.action == kmock.action.UPDATE and response.status == 200:
                await self._bump_version(request)
        if request.method != kmock.method.GET:
            await self._finish_namespaces()
        return response

    def _stamp_new(self, request: kmock.Request) -> None:
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
        if request.resource == NAMESPACES:
            data.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            data["status"] = {"phase": "Active"}

    # The namespace lifecycle.

    def _terminating_namespace(self, name: str) -> kmock.Object | None:
        """The namespace `name` if it is being deleted (Terminating), else None."""
        key = (NAMESPACES, None, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        namespace = self.objects[key]
        return namespace if _meta(namespace).get("deletionTimestamp") else None

    def _terminating_refusal(self, request: kmock.Request) -> str | None:
        """The API server's refusal to create anything in a namespace being deleted."""
        assert request.resource is not None
        data = request.data if isinstance(request.data, dict) else {}
        namespace = request.namespace or _meta(data).get("namespace")
        if request.resource == NAMESPACES or not namespace:
            return None
        if self._terminating_namespace(namespace) is None:
            return None
        group, plural = request.resource.group, request.resource.plural
        what = f"{plural}.{group}" if group else plural
        return (
            f'{what} "{_meta(data).get("name", "")}" is forbidden: unable to create new content '
            f"in namespace {namespace} because it is being terminated"
        )

    @staticmethod
    def _is_namespace_deletion(request: kmock.Request) -> bool:
        return bool(
            request.action == kmock.action.DELETE
            and request.resource == NAMESPACES
            and request.name
            and not request.subresource
        )

    def _terminating_target(self, request: kmock.Request) -> kmock.Object | None:
        """The Terminating namespace a PATCH or DELETE is for, if it is for one.

        kmock deletes an object with a deletionTimestamp and no `metadata.finalizers` on the
        next request that changes it; a Terminating namespace waits for its contents instead, so
        those requests are served here."""
        if request.resource != NAMESPACES or not request.name:
            return None
        if request.method not in (kmock.method.PATCH, kmock.method.DELETE):
            return None
        return self._terminating_namespace(request.name)

    async def _change_terminating(
        self, request: kmock.Request, namespace: kmock.Object
    ) -> aiohttp.web.StreamResponse:
        async with self._lock:
            if request.method == kmock.method.PATCH and isinstance(request.data, dict):
                await self._modify(NAMESPACES, namespace, request.data)
            raw = namespace.raw
        return aiohttp.web.json_response(raw)

    async def _terminate(self, name: str) -> None:
        """The namespace controller's first pass over a namespace being deleted: what holds no
        finalizer goes, the rest gets a deletionTimestamp. If anything stays (or the namespace
        has finalizers of its own), the namespace stays too, Terminating; else kmock deletes it
        as it deletes any object."""
        key = (NAMESPACES, None, name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return  # kmock answers 404
            namespace = self.objects[key]
            if _meta(namespace).get("deletionTimestamp"):
                return  # already Terminating
            now = _now()
            held = bool(_meta(namespace).get("finalizers"))
            for (resource, object_namespace, _name), obj in list(self.objects.items()):
                if object_namespace != name or obj.deleted:
                    continue
                if not _meta(obj).get("finalizers"):
                    await self._remove(resource, obj)
                    continue
                held = True
                if not _meta(obj).get("deletionTimestamp"):
                    await self._modify(resource, obj, {"metadata": {"deletionTimestamp": now}})
            if held:
                terminating = {
                    "metadata": {"deletionTimestamp": now},
                    "status": {"phase": "Terminating"},
                }
                await self._modify(NAMESPACES, namespace, terminating)

    async def _finish_namespaces(self) -> None:
        """The namespace controller's last pass: a Terminating namespace that holds nothing any
        more (and has no finalizers of its own left) goes."""
        async with self._lock:
            live = [(key, obj) for key, obj in self.objects.items() if not obj.deleted]
            occupied = {namespace for (_resource, namespace, _name), _obj in live}
            for (resource, _namespace, name), obj in live:
                meta = _meta(obj)
                if (
                    resource == NAMESPACES
                    and meta.get("deletionTimestamp")
                    and not meta.get("finalizers")
                    and name not in occupied
                ):
                    await self._remove(resource, obj)

    # Changes made here rather than by kmock: call these with `_lock` held.

    async def _modify(
        self, resource: kmock.resource, obj: kmock.Object, changes: Mapping[str, Any]
    ) -> None:
        """Merge `changes` into a stored object as a new version."""
        version = {"resourceVersion": str(next(self._versions))}
        obj.patch({**changes, "metadata": {**changes.get("metadata", {}), **version}})
        await self._buses[resource].put({"type": "MODIFIED", "object": obj.raw})

    async def _remove(self, resource: kmock.resource, obj: kmock.Object) -> None:
        """Delete a stored object for good."""
        raw = obj.raw
        obj.delete()
        await self._buses[resource].put({"type": "DELETED", "object": raw})

    async def _replace(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            obj = self.objects[key]
            data = dict(request.data or {})
            metadata = {**_meta(obj.raw), **data.get("metadata", {})}
            metadata["resourceVersion"] = str(next(self._versions))
            data["metadata"] = metadata
            obj.create(data)
            raw = obj.raw
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
            released = metadata.get("deletionTimestamp") and not metadata.get("finalizers")
            if released and request.resource != NAMESPACES:  # namespaces: _finish_namespaces
                await self._remove(request.resource, obj)
        return aiohttp.web.json_response(raw)

    async def _bump_version(self, request: kmock.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key in self.objects and not self.objects[key].deleted:
                version = str(next(self._versions))
                self.objects[key].patch({"metadata": {"resourceVersion": version}})

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_list(request)
        labels = request.params.get("labelSelector", "")
        fields = request.params.get("fieldSelector", "")
        if isinstance(payload, dict) and (labels or fields):
            payload["items"] = [
                item
                for item in payload["items"]
                if (not labels or matches_label_selector(_meta(item).get("labels") or {}, labels))
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
