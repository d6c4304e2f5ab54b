"""What a template admin may change in a demo's vcluster.yaml: a short allow-list, with bounds.

Template admins are trusted with demos, not with the host. A vcluster.yaml key can reach the host
in many ways (privileged control planes, host paths, RBAC rules, host objects synced in, host
services replicated in, manifests applied at start), so instead of a deny-list that must foresee
them all, only the paths below are accepted from template admins. Everything else is refused on
save with the path and the reason; a superuser may still set it through the template's separate
"unsafe overrides", and each such save is recorded in the template's history.

Every accepted leaf is checked by the value rule of its path (a boolean, or a Kubernetes quantity
within a bound), so an allowed path cannot smuggle in an unbounded value either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# Kinds whose sync from the vCluster to its host namespace stays inside that namespace.
SYNC_TO_HOST = (
    "configMaps",
    "endpoints",
    "endpointSlices",
    "ingresses",
    "networkPolicies",
    "persistentVolumeClaims",
    "podDisruptionBudgets",
    "secrets",
    "serviceAccounts",
    "services",
)
# Host kinds a vCluster may read (never change): classes and drivers, and its own events.
# Not priorityClasses: syncing them makes the chart's ClusterRole write host PriorityClasses, so a
# demo could outrank every pod on the host (and the worker rightly cannot grant that).
SYNC_FROM_HOST = (
    "csiDrivers",
    "csiNodes",
    "csiStorageCapacities",
    "events",
    "ingressClasses",
    "runtimeClasses",
    "storageClasses",
)

_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>[a-zA-Z]{0,2})$")


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ("500m", "2Gi", 3) as a number, or None when it is not one."""
    if isinstance(value, bool):
        return None
    match = _QUANTITY.match(str(value).strip())
    if match is None or match["suffix"] not in _SUFFIXES:
        return None
    try:
        return Decimal(match["number"]) * _SUFFIXES[match["suffix"]]
    except InvalidOperation:
        return None


# A value rule returns why a value is refused, or "" when it is fine.
Rule = Callable[[Any], str]


def boolean(value: Any) -> str:
    return "" if isinstance(value, bool) else "must be true or false"


def boolean_or_auto(value: Any) -> str:
    return "" if isinstance(value, bool) or value == "auto" else "must be true, false or auto"


def at_most(bound: str) -> Rule:
    """A quantity between 0 and `bound` (a count when `bound` has no unit)."""
    limit = parse_quantity(bound)

    def rule(value: Any) -> str:
        number = parse_quantity(value)
        if number is None:
            return f"must be a quantity such as {bound}"
        if limit is not None and number > limit:
            return f"may be at most {bound}"
        return ""

    return rule


# The bounds a template admin may raise a demo's limits to. Resource quota keys not listed here
# are refused (e.g. services.loadbalancers above 0 would expose a demo outside the portal).
QUOTA_BOUNDS: dict[str, str] = {
    "requests.cpu": "16",
    "requests.memory": "64Gi",
    "requests.storage": "500Gi",
    "requests.ephemeral-storage": "100Gi",
    "limits.cpu": "32",
    "limits.memory": "128Gi",
    "limits.ephemeral-storage": "200Gi",
    "count/pods": "500",
    "count/services": "200",
    "count/configmaps": "1000",
    "count/secrets": "1000",
    "count/persistentvolumeclaims": "100",
    "count/endpoints": "1000",
    "services.nodeports": "0",
    "services.loadbalancers": "0",
}
CONTAINER_BOUNDS: dict[str, str] = {"cpu": "16", "memory": "64Gi", "ephemeral-storage": "100Gi"}
CONTROL_PLANE_BOUNDS: dict[str, str] = {"cpu": "4", "memory": "16Gi", "ephemeral-storage": "40Gi"}


def _allowed() -> dict[str, Rule]:
    allowed: dict[str, Rule] = {"telemetry.enabled": boolean}
    for kind in SYNC_TO_HOST:
        allowed[f"sync.toHost.{kind}.enabled"] = boolean
    for kind in SYNC_FROM_HOST:
        allowed[f"sync.fromHost.{kind}.enabled"] = boolean_or_auto
    for key, bound in QUOTA_BOUNDS.items():
        allowed[f"policies.resourceQuota.quota.{key}"] = at_most(bound)
    for section in ("default", "defaultRequest", "max", "min"):
        for key, bound in CONTAINER_BOUNDS.items():
            allowed[f"policies.limitRange.{section}.{key}"] = at_most(bound)
    for section in ("requests", "limits"):
        for key, bound in CONTROL_PLANE_BOUNDS.items():
            allowed[f"controlPlane.statefulSet.resources.{section}.{key}"] = at_most(bound)
            allowed[f"controlPlane.coredns.deployment.resources.{section}.{key}"] = at_most(bound)
    return allowed


ALLOWED: dict[str, Rule] = _allowed()

# Why the most tempting refused paths are refused, by the longest matching prefix.
_REASONS: dict[str, str] = {
    "rbac": "it changes what the vCluster may do on the host cluster",
    "policies": "it weakens the demo's isolation (quota, limits, pod security, network policy)",
    "policies.podSecurityStandard": "the pod security level is set for every demo by the operator",
    "controlPlane": "it changes how the control plane runs on the host cluster",
    "controlPlane.statefulSet.security": "it changes the control plane's privileges on the host",
    "controlPlane.statefulSet.persistence": "it can mount host paths or other volumes",
    "controlPlane.statefulSet.image": "it changes which image runs on the host cluster",
    "controlPlane.advanced": "it changes which images run and how the host is reached",
    "controlPlane.service": "it exposes the vCluster API outside the portal",
    "controlPlane.ingress": "it exposes the vCluster API outside the portal",
    "sync.fromHost": "it brings host objects into the demo",
    "sync.toHost": "it creates host objects outside the demo's namespace",
    "networking": "it reaches host services or changes the demo's network",
    "experimental": "it applies manifests or charts outside the template's charts",
    "plugins": "it runs extra containers in the control plane",
    "integrations": "it syncs objects between the demo and the host",
    "privateNodes": "it joins machines to the demo",
    "exportKubeConfig": "the portal sets the exported kubeconfigs itself",
}


@dataclass(frozen=True)
class Refusal:
    path: str
    reason: str

    def message(self) -> str:
        return f"vCluster overrides: {self.path} cannot be set by template admins: {self.reason}."


def refusals(overrides: Mapping[str, Any]) -> list[Refusal]:
    """Every leaf of `overrides` that is not on the allow-list or breaks its path's rule."""
    found = []
    for path, value in _leaves(overrides):
        rule = ALLOWED.get(path)
        if rule is None:
            found.append(Refusal(path, _reason(path)))
            continue
        problem = rule(value)
        if problem:
            found.append(Refusal(path, f"it {problem}"))
    return found


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, path)
        else:
            # Leaves include null (which removes a rendered setting) and empty mappings.
            yield path, value


def _reason(path: str) -> str:
    parts = path.split(".")
    for length in range(len(parts), 0, -1):
        reason = _REASONS.get(".".join(parts[:length]))
        if reason:
            return reason
    return (
        "it is not on the list of settings template admins may change (docs/vcluster.md); "
        "a superuser can set it as an unsafe override"
    )
