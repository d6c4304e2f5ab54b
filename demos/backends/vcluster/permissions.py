"""Every Kubernetes permission the vCluster backend needs on the host cluster, declared once.

Importable without a cluster. Three parts, each a tuple of `Permission(api_group, resource, verbs)`:

- `BACKEND_CALLS`: the API calls the backend makes itself (`kube.HostCluster`). The kube tests
  record every request the backend sends to the API emulator and fail if one is missing here.
- `HELM_RELEASE`: what `helm upgrade --install` / `helm uninstall` of the vCluster chart needs:
  the release records (Secrets) and every kind of object the chart renders with the portal's
  vcluster.yaml (plus kinds common overrides switch on). Helm 4 applies server-side (patch) and
  reads objects back (get/list), so these get all write and read verbs.
- `CHART_GRANTS`: the rules inside the Role and ClusterRole the chart creates for each vCluster.
  Kubernetes only lets a user create a Role or binding that grants permissions it holds itself
  (RBAC escalation prevention), so the portal's ClusterRole must hold these too - or, as a
  broader alternative, the `escalate` and `bind` verbs on roles and clusterroles. Taken from the
  chart's templates for the values the portal renders (ingress sync to the host, ingress classes
  from the host); an override that enables more syncing needs more.

`REQUIRED` is the union, merged per (group, resource); `rules()` gives it as ClusterRole rules.
`covers(rules, group, resource, verb)` tells whether given ClusterRole rules allow one call.
The portal's RBAC manifests must cover `REQUIRED` (a test checks them against this list).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete")
ALL = (*READ, *WRITE)


@dataclass(frozen=True)
class Permission:
    api_group: str
    resource: str
    verbs: tuple[str, ...]
    why: str = ""


BACKEND_CALLS: tuple[Permission, ...] = (
    Permission("", "namespaces", ("get", "list", "create", "delete"), "one namespace per demo"),
    Permission("apps", "statefulsets", ("get", "patch"), "readiness; pause and resume"),
    Permission("", "pods", ("list", "delete"), "readiness, failures; pause stops synced pods"),
    Permission("", "events", ("list",), "quota refusals of the control plane"),
    Permission(
        "", "secrets", ("get", "list", "create", "delete"), "kubeconfigs, Helm records, snapshots"
    ),
    Permission(
        "", "configmaps", ("list", "create", "patch", "delete"), "snapshot requests; finalizers"
    ),
    Permission(
        "", "resourcequotas", ("get", "delete"), "the quota an interrupted restore leaves behind"
    ),
    Permission("", "persistentvolumeclaims", ("get", "delete"), "pending storage; delete data"),
    Permission("storage.k8s.io", "storageclasses", ("get",), "explain a pending volume claim"),
    Permission("networking.k8s.io", "ingresses", ("list",), "live links of the demo"),
)

HELM_RELEASE: tuple[Permission, ...] = (
    Permission("", "secrets", ALL, "Helm release records; the vCluster config Secret"),
    Permission("", "configmaps", ALL, "chart ConfigMaps"),
    Permission("", "services", ALL, "the vCluster API Service and its headless Service"),
    Permission("", "serviceaccounts", ALL, "control-plane and workload service accounts"),
    Permission("", "resourcequotas", ALL, "policies.resourceQuota"),
    Permission("", "limitranges", ALL, "policies.limitRange"),
    Permission("apps", "statefulsets", ALL, "the control plane"),
    Permission("rbac.authorization.k8s.io", "roles", ALL, "the control plane's Role"),
    Permission("rbac.authorization.k8s.io", "rolebindings", ALL, "the control plane's Role"),
    Permission("rbac.authorization.k8s.io", "clusterroles", ALL, "reading ingress classes"),
    Permission("rbac.authorization.k8s.io", "clusterrolebindings", ALL, "reading ingress classes"),
    Permission("networking.k8s.io", "networkpolicies", ALL, "VCLUSTER_NETWORK_POLICY"),
    Permission("networking.k8s.io", "ingresses", ALL, "VCLUSTER_API_INGRESS_HOST"),
    Permission("policy", "poddisruptionbudgets", ALL, "highly available control planes"),
)

CHART_GRANTS: tuple[Permission, ...] = (
    Permission("", "configmaps", ALL, "syncer"),
    Permission("", "secrets", ALL, "syncer"),
    Permission("", "services", ALL, "syncer"),
    Permission("", "pods", ALL, "syncer"),
    Permission("", "pods/attach", ALL, "kubectl attach inside the vCluster"),
    Permission("", "pods/portforward", ALL, "kubectl port-forward inside the vCluster"),
    Permission("", "pods/exec", ALL, "kubectl exec inside the vCluster"),
    Permission("", "pods/status", ("update", "patch"), "syncer"),
    Permission("", "pods/ephemeralcontainers", ("update", "patch"), "kubectl debug"),
    Permission("", "pods/log", READ, "kubectl logs inside the vCluster"),
    Permission("", "persistentvolumeclaims", ALL, "syncer"),
    Permission("", "endpoints", ALL, "syncer"),
    Permission("discovery.k8s.io", "endpointslices", ALL, "syncer"),
    Permission("", "events", READ, "syncer"),
    Permission("apps", "statefulsets", READ, "syncer"),
    Permission("apps", "replicasets", READ, "syncer"),
    Permission("apps", "deployments", READ, "syncer"),
    Permission("networking.k8s.io", "ingresses", ALL, "sync.toHost.ingresses"),
    Permission("networking.k8s.io", "ingressclasses", READ, "sync.fromHost.ingressClasses"),
)


def _merge(groups: Iterable[Iterable[Permission]]) -> tuple[Permission, ...]:
    verbs: dict[tuple[str, str], list[str]] = {}
    for permissions in groups:
        for permission in permissions:
            known = verbs.setdefault((permission.api_group, permission.resource), [])
            known.extend(v for v in permission.verbs if v not in known)
    return tuple(Permission(group, resource, tuple(v)) for (group, resource), v in verbs.items())


REQUIRED: tuple[Permission, ...] = _merge((BACKEND_CALLS, HELM_RELEASE, CHART_GRANTS))


def rules(permissions: Sequence[Permission] = REQUIRED) -> list[dict[str, list[str]]]:
    """`permissions` as ClusterRole rules (one rule per group and resource)."""
    return [
        {"apiGroups": [p.api_group], "resources": [p.resource], "verbs": list(p.verbs)}
        for p in permissions
    ]


def covers(rule_list: Iterable[Mapping[str, Any]], group: str, resource: str, verb: str) -> bool:
    """Whether ClusterRole `rule_list` allows `verb` on `group`/`resource` (wildcards honoured)."""
    for rule in rule_list:
        if (
            _has(rule.get("apiGroups"), group)
            and _has(rule.get("resources"), resource)
            and _has(rule.get("verbs"), verb)
        ):
            return True
    return False


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or [])
    return wanted in values or "*" in values


def missing(rule_list: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each required `verb group/resource` that `rule_list` does not allow."""
    rule_list = list(rule_list)
    return [
        f"{verb} {p.api_group or 'core'}/{p.resource}"
        for p in REQUIRED
        for verb in p.verbs
        if not covers(rule_list, p.api_group, p.resource, verb)
    ]
