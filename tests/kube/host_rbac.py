"""The emulated host's authorizer: the worker may do exactly what the portal's manifests grant it.

The worker's rights come from `kubectl kustomize k8s/overlays/production` (what an operator
applies) plus the RBAC objects created on the host since (the worker's own RoleBinding in each
demo namespace, the chart's Roles and bindings). Each request the worker sends is authorized the
way the API server's RBAC authorizer does it, and a Role, ClusterRole or binding it creates or
changes must pass Kubernetes' escalation prevention (see tests/upstream/rbac.py for the rules
and their source). Requests without the worker's token are the test's own (cluster admin).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kmock_shim import ApiRequest, KubeEmulator
from upstream.rbac import WORKER, Rbac, production_rbac

WORKER_TOKEN = "worker-token"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_KINDS = {
    "roles": "Role",
    "clusterroles": "ClusterRole",
    "rolebindings": "RoleBinding",
    "clusterrolebindings": "ClusterRoleBinding",
}


def request_verb(request: ApiRequest) -> str:
    """The RBAC verb of an API request (as the API server's request info resolver sees it)."""
    method = request.method
    if method == "GET":
        if request.name:
            return "get"
        return "watch" if request.params.get("watch") in ("true", "1") else "list"
    if method == "DELETE":
        return "delete" if request.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]


class HostAuthorizer:
    """Callable as kmock_shim's `authorize`: None to let a request through, else the refusal."""

    def __init__(self, manifests: Iterable[Mapping[str, Any]] | None = None) -> None:
        self.manifests = list(production_rbac() if manifests is None else manifests)
        self.refusals: list[str] = []

    def __call__(self, emulator: KubeEmulator, request: ApiRequest) -> str | None:
        headers = {key.lower(): value for key, value in request.headers.items()}
        if headers.get("authorization") != f"Bearer {WORKER_TOKEN}":
            return None
        refusal = self._judge(emulator, request)
        if refusal is not None:
            self.refusals.append(refusal)
        return refusal

    def _judge(self, emulator: KubeEmulator, request: ApiRequest) -> str | None:
        resource = request.plural
        if request.subresource:
            resource = f"{resource}/{request.subresource}"
        group = request.group
        verb = request_verb(request)
        namespace = None if resource == "namespaces" else request.namespace
        name = request.name
        body = request.body if isinstance(request.body, dict) else None
        if verb == "create" and body is not None:
            name = body.get("metadata", {}).get("name") or None
        rbac = Rbac([*self.manifests, *stored_rbac(emulator)])
        if not rbac.allows(
            WORKER, verb=verb, group=group, resource=resource, namespace=namespace, name=name
        ):
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            what = f"{resource}.{group}" if group else resource
            return (
                f'{what} "{name or ""}" is forbidden: User "{WORKER.username}" cannot {verb} '
                f'resource "{resource}" in API group "{group}"{where}'
            )
        if group == RBAC_GROUP and resource in RBAC_KINDS and verb in ("create", "update", "patch"):
            assert body is not None
            obj = {
                **body,
                "kind": RBAC_KINDS[resource],
                "metadata": {**body.get("metadata", {}), "namespace": namespace},
            }
            return rbac.escalation_refusal(WORKER, obj)
        return None


def stored_rbac(emulator: KubeEmulator) -> list[dict[str, Any]]:
    """The Roles, ClusterRoles and bindings the emulated host holds right now."""
    found = []
    for (resource, namespace, _name), obj in list(emulator.objects.items()):
        if obj.deleted or resource.group != RBAC_GROUP or resource.plural not in RBAC_KINDS:
            continue
        raw = dict(obj.raw)
        raw["kind"] = RBAC_KINDS[resource.plural]
        raw.setdefault("metadata", {})["namespace"] = namespace
        found.append(raw)
    return found
