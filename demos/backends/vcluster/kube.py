"""Kubernetes API access: the host cluster (in-cluster service account or kubeconfig + context)
and each vCluster's own API (through the kubeconfig vCluster exports).

`HostCluster` has one small method per API call the backend makes on the host (k8s/base/rbac.yaml
grants them; the kube tests authorize each one against it). Errors become `BackendError`s:
transient for things worth retrying (unreachable, 5xx, 429, conflicts), definite otherwise.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from demos.backends.base import BackendError
from demos.backends.vcluster.config import VClusterSettings

MERGE_PATCH = "application/merge-patch+json"


def host_api_client(cfg: VClusterSettings) -> client.ApiClient:
    """An API client for the host cluster, from the pod's service account or a kubeconfig."""
    configuration = client.Configuration()
    try:
        if cfg.in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=cfg.kubeconfig or None,
                context=cfg.context or None,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError) as exc:
        where = (
            "the pod's service account"
            if cfg.in_cluster
            else (
                f"kubeconfig {cfg.kubeconfig or '(default)'}"
                + (f", context {cfg.context}" if cfg.context else "")
            )
        )
        raise BackendError(
            f"The host cluster's credentials cannot be loaded from {where}: {exc}. "
            "Check VCLUSTER_IN_CLUSTER, VCLUSTER_KUBECONFIG and VCLUSTER_CONTEXT.",
            transient=False,
        ) from None
    configuration.retries = 1
    return client.ApiClient(configuration)


def vcluster_api_client(kubeconfig: Mapping[str, Any], server: str = "") -> client.ApiClient:
    """An API client for a vCluster from its exported kubeconfig, optionally at another server."""
    configuration = client.Configuration()
    kubeconfig = copy.deepcopy(dict(kubeconfig))
    if server:
        # Set in the kubeconfig itself: the loader re-applies it before each request.
        for cluster in kubeconfig.get("clusters") or []:
            cluster.setdefault("cluster", {})["server"] = server.rstrip("/")
    try:
        config.load_kube_config_from_dict(
            kubeconfig, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendError(
            "The vCluster's exported kubeconfig cannot be used.", detail=str(exc), transient=True
        ) from None
    configuration.retries = 1
    return client.ApiClient(configuration)


def api_error(exc: Exception, action: str, where: str = "host cluster") -> BackendError:
    """The BackendError for a failed API call; `action` reads like "read StatefulSet x"."""
    if not isinstance(exc, ApiException):
        return BackendError(
            f"The {where}'s API cannot be reached ({action}).", detail=repr(exc), transient=True
        )
    detail = f"HTTP {exc.status} {exc.reason}: {exc.body or ''}".strip()
    status = exc.status or 0
    if status == 0:
        return BackendError(
            f"The {where}'s API cannot be reached ({action}).", detail=detail, transient=True
        )
    if status == 401:
        return BackendError(
            f"The {where} rejected the portal's credentials ({action}).", detail=detail
        )
    if status == 403:
        return BackendError(
            f"The portal is not allowed to {action} on the {where}: grant its service account "
            "the rights in k8s/base/rbac.yaml (see docs/vcluster.md, Permissions).",
            detail=detail,
        )
    if status in (409, 429) or status >= 500:
        return BackendError(
            f"The {where} could not {action} right now (HTTP {status}); it will be retried.",
            detail=detail,
            transient=True,
        )
    return BackendError(f"The {where} refused to {action} (HTTP {status}).", detail=detail)


@contextmanager
def translated(action: str, where: str = "host cluster") -> Iterator[None]:
    try:
        yield
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise api_error(exc, action, where) from exc


def _missing(exc: ApiException) -> bool:
    return exc.status == 404


class HostCluster:
    """The host cluster's API, one method per call the backend makes."""

    def __init__(self, api: client.ApiClient, timeout: float) -> None:
        self.api = api
        self.timeout = timeout
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.discovery = client.DiscoveryV1Api(api)

    def _call(
        self, action: str, method: Any, *args: Any, missing_ok: bool = False, **kw: Any
    ) -> Any:
        with translated(action):
            try:
                return method(*args, _request_timeout=self.timeout, **kw)
            except ApiException as exc:
                if missing_ok and _missing(exc):
                    return None
                raise

    # Namespaces (cluster-scoped).
    def read_namespace(self, name: str) -> client.V1Namespace | None:
        return self._call(f"read namespace {name}", self.core.read_namespace, name, missing_ok=True)

    def create_namespace(self, body: dict[str, Any]) -> client.V1Namespace | None:
        """Create a namespace; None if it already exists (a repeated apply)."""
        try:
            return self.core.create_namespace(body, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise api_error(exc, f"create namespace {body['metadata']['name']}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise api_error(exc, "create a namespace") from exc

    def delete_namespace(self, name: str) -> None:
        self._call(f"delete namespace {name}", self.core.delete_namespace, name, missing_ok=True)

    def list_namespaces(self, selector: str) -> list[client.V1Namespace]:
        result = self._call("list namespaces", self.core.list_namespace, label_selector=selector)
        return list(result.items or [])

    # The worker's own rights inside a demo namespace (least privilege: see k8s/base/rbac.yaml).
    def create_role_binding(self, namespace: str, body: dict[str, Any]) -> None:
        """Create a RoleBinding; nothing if it already exists (a repeated apply)."""
        try:
            self.rbac.create_namespaced_role_binding(namespace, body, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 409:
                name = body["metadata"]["name"]
                raise api_error(exc, f"create RoleBinding {namespace}/{name}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise api_error(exc, "create a RoleBinding") from exc

    # The control plane.
    def read_statefulset(self, namespace: str, name: str) -> client.V1StatefulSet | None:
        return self._call(
            f"read StatefulSet {namespace}/{name}",
            self.apps.read_namespaced_stateful_set,
            name,
            namespace,
            missing_ok=True,
        )

    def patch_statefulset(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self._call(
            f"update StatefulSet {namespace}/{name}",
            self.apps.patch_namespaced_stateful_set,
            name,
            namespace,
            body,
            _content_type=MERGE_PATCH,
        )

    def list_pods(self, namespace: str, selector: str) -> list[client.V1Pod]:
        result = self._call(
            f"list pods in {namespace}",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=selector,
        )
        return list(result.items or [])

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call(
            f"delete pod {namespace}/{name}",
            self.core.delete_namespaced_pod,
            name,
            namespace,
            missing_ok=True,
        )

    def list_events(self, namespace: str) -> list[client.CoreV1Event]:
        result = self._call(
            f"list events in {namespace}", self.core.list_namespaced_event, namespace
        )
        return list(result.items or [])

    # Secrets and config maps: kubeconfigs, Helm release records, snapshot requests.
    def read_secret(self, namespace: str, name: str) -> client.V1Secret | None:
        return self._call(
            f"read Secret {namespace}/{name}",
            self.core.read_namespaced_secret,
            name,
            namespace,
            missing_ok=True,
        )

    def list_secrets(self, namespace: str, selector: str) -> list[client.V1Secret]:
        result = self._call(
            f"list Secrets in {namespace}",
            self.core.list_namespaced_secret,
            namespace,
            label_selector=selector,
        )
        return list(result.items or [])

    def create_secret(self, namespace: str, body: dict[str, Any]) -> client.V1Secret:
        return self._call(
            f"create a Secret in {namespace}", self.core.create_namespaced_secret, namespace, body
        )

    def delete_secret(self, namespace: str, name: str) -> None:
        self._call(
            f"delete Secret {namespace}/{name}",
            self.core.delete_namespaced_secret,
            name,
            namespace,
            missing_ok=True,
        )

    def list_configmaps(self, namespace: str, selector: str) -> list[client.V1ConfigMap]:
        result = self._call(
            f"list ConfigMaps in {namespace}",
            self.core.list_namespaced_config_map,
            namespace,
            label_selector=selector,
        )
        return list(result.items or [])

    def create_configmap(self, namespace: str, body: dict[str, Any]) -> client.V1ConfigMap:
        return self._call(
            f"create a ConfigMap in {namespace}",
            self.core.create_namespaced_config_map,
            namespace,
            body,
        )

    def patch_configmap(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """Merge-patch a ConfigMap; nothing if it is gone."""
        self._call(
            f"update ConfigMap {namespace}/{name}",
            self.core.patch_namespaced_config_map,
            name,
            namespace,
            body,
            _content_type=MERGE_PATCH,
            missing_ok=True,
        )

    # Quotas (the one a restore leaves).
    def read_resource_quota(self, namespace: str, name: str) -> client.V1ResourceQuota | None:
        return self._call(
            f"read ResourceQuota {namespace}/{name}",
            self.core.read_namespaced_resource_quota,
            name,
            namespace,
            missing_ok=True,
        )

    def delete_resource_quota(self, namespace: str, name: str) -> None:
        self._call(
            f"delete ResourceQuota {namespace}/{name}",
            self.core.delete_namespaced_resource_quota,
            name,
            namespace,
            missing_ok=True,
        )

    def delete_configmap(self, namespace: str, name: str) -> None:
        self._call(
            f"delete ConfigMap {namespace}/{name}",
            self.core.delete_namespaced_config_map,
            name,
            namespace,
            missing_ok=True,
        )

    # Storage.
    def read_pvc(self, namespace: str, name: str) -> client.V1PersistentVolumeClaim | None:
        return self._call(
            f"read PersistentVolumeClaim {namespace}/{name}",
            self.core.read_namespaced_persistent_volume_claim,
            name,
            namespace,
            missing_ok=True,
        )

    def delete_pvc(self, namespace: str, name: str) -> None:
        self._call(
            f"delete PersistentVolumeClaim {namespace}/{name}",
            self.core.delete_namespaced_persistent_volume_claim,
            name,
            namespace,
            missing_ok=True,
        )

    def read_storage_class(self, name: str) -> client.V1StorageClass | None:
        return self._call(
            f"read StorageClass {name}", self.storage.read_storage_class, name, missing_ok=True
        )

    # Live links: the Ingresses vCluster copied to the host.
    def list_ingresses(self, namespace: str, selector: str) -> list[client.V1Ingress]:
        result = self._call(
            f"list Ingresses in {namespace}",
            self.networking.list_namespaced_ingress,
            namespace,
            label_selector=selector,
        )
        return list(result.items or [])

    # The Service behind a gated live link (vCluster's copy of the template's entry service).
    def read_service(self, namespace: str, name: str) -> client.V1Service | None:
        return self._call(
            f"read Service {namespace}/{name}",
            self.core.read_namespaced_service,
            name,
            namespace,
            missing_ok=True,
        )

    def list_endpoint_slices(self, namespace: str, selector: str) -> list[client.V1EndpointSlice]:
        result = self._call(
            f"list EndpointSlices in {namespace}",
            self.discovery.list_namespaced_endpoint_slice,
            namespace,
            label_selector=selector,
        )
        return list(result.items or [])

    # The demo's gated entry (entry.py): plain and custom objects, created or replaced whole.
    def put_object(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Create `body` in `namespace`, or replace the object of that name when it differs
        (labels, annotations, spec or data). True when something was written."""
        kind, name = body["kind"], body["metadata"]["name"]
        create, read, replace = self._object_calls(namespace, body)
        with translated(f"create {kind} {namespace}/{name}"):
            try:
                create(body, _request_timeout=self.timeout)
                return True
            except ApiException as exc:
                if exc.status != 409:
                    raise
        with translated(f"read {kind} {namespace}/{name}"):
            found = self.api.sanitize_for_serialization(read(_request_timeout=self.timeout))
        if _contains(found, {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}):
            return False
        wanted = copy.deepcopy(dict(body))
        wanted["metadata"]["resourceVersion"] = found["metadata"].get("resourceVersion")
        with translated(f"update {kind} {namespace}/{name}"):
            replace(wanted, _request_timeout=self.timeout)
        return True

    def _object_calls(self, namespace: str, body: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        """(create(body), read(), replace(body)) for the kind of `body` in `namespace`."""
        kind, name = body["kind"], body["metadata"]["name"]
        typed = {
            "Ingress": (self.networking, "namespaced_ingress"),
            "Service": (self.core, "namespaced_service"),
            "ConfigMap": (self.core, "namespaced_config_map"),
        }
        if kind in typed:
            api, suffix = typed[kind]
            return (
                lambda b, **kw: getattr(api, f"create_{suffix}")(namespace, b, **kw),
                lambda **kw: getattr(api, f"read_{suffix}")(name, namespace, **kw),
                lambda b, **kw: getattr(api, f"replace_{suffix}")(name, namespace, b, **kw),
            )
        group, version = body["apiVersion"].split("/")
        plural = CUSTOM_PLURALS[kind]
        where = (group, version, namespace, plural)
        return (
            lambda b, **kw: self.custom.create_namespaced_custom_object(*where, b, **kw),
            lambda **kw: self.custom.get_namespaced_custom_object(*where, name, **kw),
            lambda b, **kw: self.custom.replace_namespaced_custom_object(*where, name, b, **kw),
        )


# The custom resources of the gated entry (entry.py), by kind.
CUSTOM_PLURALS = {
    "Middleware": "middlewares",
    "HTTPRoute": "httproutes",
    "SecurityPolicy": "securitypolicies",
    "Backend": "backends",
}


def _contains(found: Any, wanted: Any) -> bool:
    """Whether `found` (as the API returns it, with defaults and status filled in) already
    holds every field of `wanted`."""
    if isinstance(wanted, Mapping):
        return isinstance(found, Mapping) and all(
            _contains(found.get(key), value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(found, list)
            and len(found) == len(wanted)
            and all(_contains(f, w) for f, w in zip(found, wanted, strict=True))
        )
    return found == wanted


class VClusterApi:
    """The few calls the backend makes inside a vCluster, through its own kubeconfig."""

    def __init__(self, api: client.ApiClient, timeout: float) -> None:
        self.api = api
        self.timeout = timeout
        self.core = client.CoreV1Api(api)

    def close(self) -> None:
        self.api.close()

    def readyz(self) -> tuple[bool, str]:
        """(ready?, what the API server said) from GET /readyz."""
        with translated("check /readyz", "vCluster"):
            method, url, headers, _body, _post = self.api.param_serialize(
                method="GET", resource_path="/readyz", auth_settings=["BearerToken"]
            )
            try:
                response = self.api.call_api(
                    method, url, header_params=headers, _request_timeout=self.timeout
                )
            except ApiException as exc:
                if exc.status and exc.status < 500:
                    return False, f"HTTP {exc.status}"
                raise
            response.read()
            text = (response.data or b"").decode(errors="replace").strip()
            return 200 <= response.status < 300, text or f"HTTP {response.status}"

    def list_events(self, namespace: str) -> list[client.CoreV1Event]:
        with translated(f"list events in {namespace}", "vCluster"):
            result = self.core.list_namespaced_event(namespace, _request_timeout=self.timeout)
        return list(result.items or [])

    def read_configmap(self, namespace: str, name: str) -> client.V1ConfigMap | None:
        with translated(f"read ConfigMap {namespace}/{name}", "vCluster"):
            try:
                return self.core.read_namespaced_config_map(
                    name, namespace, _request_timeout=self.timeout
                )
            except ApiException as exc:
                if _missing(exc):
                    return None
                raise
