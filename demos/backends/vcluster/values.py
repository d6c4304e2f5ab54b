"""Rendering a demo's `vcluster.yaml` (the vCluster chart's values) and checking it.

`render_values` turns the frozen spec into the chart values; `check_values` validates them against
the chart's JSON schema (Draft 2020-12) when one is configured, so a template mistake becomes a
clear message naming the offending key instead of a failed Helm release. `validate_overrides` is
the same check for the admin form, before any demo is started.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from demos.backends.base import BackendError, Spec
from demos.backends.vcluster import naming
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.overrides import refusals
from demos.bounded_yaml import BoundedYAMLError, load_bounded

# Overrides that would break what the portal relies on, or that need the paid vCluster Platform.
REFUSED_OVERRIDES: dict[tuple[str, ...], str] = {
    ("exportKubeConfig",): "the portal sets the exported kubeconfigs itself",
    ("experimental", "deploy", "vcluster", "helm"): (
        "it would replace the template's charts; add charts to the template instead"
    ),
    ("controlPlane", "backingStore", "etcd"): (
        "embedded etcd is a paid vCluster feature; demos use the embedded SQLite datastore"
    ),
    ("controlPlane", "backingStore", "database", "external"): (
        "external databases are a paid vCluster feature; demos use the embedded SQLite datastore"
    ),
    ("sleep",): "sleep needs the paid vCluster Platform; the portal pauses demos itself",
    ("deletion",): "auto-deletion needs the paid vCluster Platform; the portal expires demos",
    ("snapshots",): "scheduled snapshots need the paid vCluster Platform; the portal archives",
}


def render_values(spec: Spec, cfg: VClusterSettings) -> dict[str, Any]:
    """The complete `vcluster.yaml` for `spec`, overrides merged in last."""
    name = spec["cluster_name"]
    namespace = naming.namespace_for(name, cfg.namespace_prefix)
    labels = naming.portal_labels(
        cfg.portal_instance, name, spec.get("demo_id", ""), spec.get("template", {}).get("slug", "")
    )
    server = cfg.fill(cfg.api_server, name=name, namespace=namespace)

    volume_claim: dict[str, Any] = {"enabled": True, "size": spec["storage_size"]}
    if cfg.storage_class:
        volume_claim["storageClass"] = cfg.storage_class

    control_plane: dict[str, Any] = {
        "distro": {"k8s": {"enabled": True, "version": spec["kubernetes_version"]}},
        "backingStore": {"database": {"embedded": {"enabled": True}}},
        "proxy": {"extraSANs": _extra_sans(cfg, name, namespace)},
        "statefulSet": {
            "image": {"registry": cfg.image_registry, "repository": cfg.image},
            "labels": labels,
            "pods": {"labels": dict(labels)},
            "resources": {
                "requests": {
                    "cpu": spec["resources"]["cpu"],
                    "memory": spec["resources"]["memory"],
                }
            },
            "persistence": {"volumeClaim": volume_claim},
        },
    }
    if cfg.api_ingress_host:
        ingress: dict[str, Any] = {
            "enabled": True,
            "host": cfg.fill(cfg.api_ingress_host, name=name, namespace=namespace),
        }
        if cfg.ingress_class:
            ingress["spec"] = {"ingressClassName": cfg.ingress_class}
        control_plane["ingress"] = ingress

    values: dict[str, Any] = {
        "controlPlane": control_plane,
        "sync": {
            "toHost": {"ingresses": {"enabled": True}},
            "fromHost": {"ingressClasses": {"enabled": True}},
        },
        "policies": {
            "podSecurityStandard": cfg.pod_security_standard,
            "resourceQuota": {"enabled": True, "quota": resource_quota(spec.get("quota", {}))},
            "limitRange": {"enabled": True, **LIMIT_RANGE},
            "networkPolicy": network_policy(cfg),
        },
        "exportKubeConfig": {
            "additionalSecrets": [
                {"name": naming.portal_kubeconfig_secret(name), "server": server, "context": name}
            ]
        },
    }
    if not cfg.pod_security_standard:
        del values["policies"]["podSecurityStandard"]
    charts = [_chart_entry(chart, cfg) for chart in spec.get("charts", [])]
    if charts:
        values["experimental"] = {"deploy": {"vcluster": {"helm": charts}}}
    values = merge(values, spec.get("vcluster_overrides") or {})
    values = merge(values, spec.get("unsafe_vcluster_overrides") or {})
    if cfg.routes_entry:
        # The portal owns the demo's host (entry.py): an Ingress synced from a chart would be a
        # route to the app around the gate, whatever the template's overrides say.
        values = merge(values, {"sync": {"toHost": {"ingresses": {"enabled": False}}}})
    return values


# The chart merges its own default quota keys into ours (e.g. count/services: 20,
# services.nodeports: 0, limits.memory: 40Gi), so every key is rendered here: a value, or None
# to drop the chart's default. Template admins may change these within bounds (overrides.py).
QUOTA_DEFAULTS: dict[str, str | int | None] = {
    "requests.storage": "50Gi",
    "requests.ephemeral-storage": "20Gi",
    "limits.ephemeral-storage": "40Gi",
    # Containers get limits from the limit range; a quota on limits only makes demos fail.
    "limits.cpu": None,
    "limits.memory": None,
    "count/services": 50,
    "count/configmaps": 200,
    "count/secrets": 200,
    "count/persistentvolumeclaims": 20,
    "count/endpoints": 200,
    # Node ports and load balancers would expose a demo outside the portal's ingress.
    "services.nodeports": 0,
    "services.loadbalancers": 0,
}
# Per container, when a chart sets nothing. The chart's default requests 3Gi of ephemeral storage
# per container, which fills a small node with a handful of pods.
LIMIT_RANGE: dict[str, dict[str, str]] = {
    "default": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "2Gi"},
    "defaultRequest": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "256Mi"},
}


def resource_quota(quota: Mapping[str, Any]) -> dict[str, Any]:
    """The demo's whole ResourceQuota: the template's CPU, memory and pods, our defaults else."""
    return {
        "requests.cpu": str(quota.get("cpu", "4")),
        "requests.memory": str(quota.get("memory", "8Gi")),
        "count/pods": int(quota.get("pods", 50)),
        **QUOTA_DEFAULTS,
    }


def network_policy(cfg: VClusterSettings) -> dict[str, Any]:
    """The chart's NetworkPolicies, which admit only the control plane and the demo's own pods
    to its workloads; the ingress controller's namespace is let in so live links answer."""
    if not cfg.network_policy:
        return {"enabled": False}
    ingress_controller = {"namespaceSelector": {"matchLabels": cfg.ingress_labels()}}
    return {"enabled": True, "workload": {"ingress": [{"from": [ingress_controller]}]}}


def _chart_entry(chart: Mapping[str, Any], cfg: VClusterSettings) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "chart": {
            "name": chart["chart"],
            "repo": chart["repository"],
            "version": str(chart["version"]),
        },
        "release": {"name": chart["name"], "namespace": chart.get("namespace") or "default"},
        "timeout": f"{cfg.chart_install_timeout_seconds}s",
    }
    if chart.get("values"):
        entry["values"] = chart["values"]
    return entry


def _extra_sans(cfg: VClusterSettings, name: str, namespace: str) -> list[str]:
    # The serving certificate covers NAME and NAME.NAMESPACE only; the worker may use any of these.
    sans = [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    for template in (cfg.api_server, cfg.external_server):
        if template:
            host = urlsplit(cfg.fill(template, name=name, namespace=namespace)).hostname
            if host:
                sans.append(host)
    if cfg.api_ingress_host:
        sans.append(cfg.fill(cfg.api_ingress_host, name=name, namespace=namespace))
    sans.extend(cfg.extra_sans)
    default_names = {name, f"{name}.{namespace}", "localhost"}
    return list(dict.fromkeys(san for san in sans if san not in default_names))


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base`: mappings merge, anything else replaces,
    and `null` removes the key (so an override can switch a rendered setting off entirely)."""
    result = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (chart values) as literal blocks, so the file reads like YAML."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(values: Mapping[str, Any]) -> str:
    return yaml.dump(dict(values), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def _lookup(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


VOLUME_CLAIM = ("controlPlane", "statefulSet", "persistence", "volumeClaim", "enabled")


def refused_overrides(overrides: Mapping[str, Any]) -> list[str]:
    """Messages for overrides the portal never accepts, from anyone (see REFUSED_OVERRIDES)."""
    messages = []
    for path, reason in REFUSED_OVERRIDES.items():
        node = _lookup(overrides, path)
        if node is not None and node is not False:
            messages.append(f"vCluster overrides: {'.'.join(path)} is not allowed: {reason}.")
    if str(_lookup(overrides, VOLUME_CLAIM)).lower() == "false":
        messages.append(
            f"vCluster overrides: {'.'.join(VOLUME_CLAIM)} cannot be false: the demo's data lives "
            "on that volume, and pausing needs the StatefulSet that comes with it."
        )
    return messages


def override_problems(spec: Spec) -> list[str]:
    """Why the spec's overrides cannot be rendered: the allow-list for the template admins'
    overrides, and the portal's own limits for both layers."""
    safe = spec.get("vcluster_overrides") or {}
    unsafe = spec.get("unsafe_vcluster_overrides") or {}
    # A path the portal refuses to anyone is reported once, with that reason.
    never = tuple(".".join(path) for path in REFUSED_OVERRIDES if _lookup(safe, path) is not None)
    off_list = [r.message() for r in refusals(safe) if not r.path.startswith(never)]
    return refused_overrides(safe) + off_list + refused_overrides(unsafe)


@lru_cache(maxsize=4)
def _validator(path: str, modified: int) -> Draft202012Validator:
    schema = json.loads(Path(path).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def load_validator(schema_path: str) -> Draft202012Validator:
    """The schema at `schema_path`, parsed once per file version."""
    try:
        stat = Path(schema_path).stat()
        return _validator(schema_path, stat.st_mtime_ns)
    except (OSError, ValueError) as exc:
        raise BackendError(
            f"The vCluster values schema at {schema_path} cannot be read: fix "
            "VCLUSTER_VALUES_SCHEMA or leave it empty to skip validation.",
            detail=str(exc),
            transient=False,
        ) from None


def schema_errors(values: Mapping[str, Any], validator: Draft202012Validator) -> list[str]:
    """Every schema violation in `values` as `vcluster.yaml: <path> ...`, in document order."""
    errors = sorted(validator.iter_errors(dict(values)), key=lambda e: _path(e.absolute_path))
    return [message for error in errors for message in _describe(error)]


def _describe(error: ValidationError) -> Iterable[str]:
    where = _path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(error.schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                full = f"{where}.{key}" if where else str(key)
                yield (
                    f"vcluster.yaml: {full} is not allowed (no such setting in this vCluster "
                    "version; check the spelling and nesting)."
                )
        return
    yield f"vcluster.yaml: {where or '(top level)'}: {error.message}."


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def check_values(values: Mapping[str, Any], cfg: VClusterSettings) -> None:
    """Raise a definite BackendError naming the first problems if `values` break the schema."""
    if not cfg.values_schema:
        return
    errors = schema_errors(values, load_validator(cfg.values_schema))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BackendError(
            f"{errors[0]}{more} Fix the template's vCluster overrides.",
            detail="\n".join(errors),
            transient=False,
        )


def example_spec(name: str = "demo-example", **changes: Any) -> Spec:
    """A complete, realistic spec, for checking overrides before any demo exists (and tests)."""
    spec: Spec = {
        "cluster_name": name,
        "demo_id": "00000000-0000-4000-8000-000000000000",
        "template": {"slug": "example", "name": "Example", "version": 1},
        "kubernetes_version": "v1.35.0",
        "resources": {"cpu": "200m", "memory": "256Mi"},
        "storage_size": "5Gi",
        "quota": {"cpu": "4", "memory": "8Gi", "pods": 50},
        "vcluster_overrides": {},
        "unsafe_vcluster_overrides": {},
        "charts": [
            {
                "name": "shop",
                "chart": "webshop",
                "repository": "oci://registry.example.com/demo-charts",
                "version": "0.1.0",
                "namespace": "shop",
                "values": f"host: {name}.demos.example.com\n",
            }
        ],
        "host": f"{name}.demos.example.com",
        "entry_url": f"https://{name}.demos.example.com/",
        "instructions": "",
        "credentials": {},
        "allow_kubeconfig_download": False,
        "provisioning_timeout_seconds": 900,
        "variables": {},
    }
    spec.update(changes)
    return spec


def validate_overrides(
    overrides: str | Mapping[str, Any] | None,
    cfg: VClusterSettings | None = None,
    *,
    unsafe: bool = False,
) -> list[str]:
    """Problems with a template's vCluster overrides, as messages for the admin form.

    `unsafe` is the superusers' layer: it skips the template admins' allow-list, never the
    portal's own limits. Pure apart from reading the schema file: renders an example demo with
    the overrides and checks the result against the configured schema (when there is none, only
    the portal's own rules).
    """
    if cfg is None:
        cfg = VClusterSettings.from_django()
    if isinstance(overrides, str):
        try:
            overrides = load_bounded(overrides, field="vCluster overrides") or {}
        except BoundedYAMLError as exc:
            return [str(exc)]
    overrides = overrides or {}
    if not isinstance(overrides, Mapping):
        return ["vCluster overrides: expected a YAML mapping (key: value)."]
    layer = "unsafe_vcluster_overrides" if unsafe else "vcluster_overrides"
    spec = example_spec(**{layer: overrides})
    problems = override_problems(spec)
    if cfg.values_schema and not problems:
        try:
            problems += schema_errors(render_values(spec, cfg), load_validator(cfg.values_schema))
        except BackendError as exc:
            problems.append(exc.message)
    return problems
