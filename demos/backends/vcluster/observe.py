"""Reading host-cluster and vCluster objects into readable findings.

Pure functions over the Kubernetes client's models: no API calls here, so every mapping from a
pod state or status annotation to a message is easy to test on its own. The backend decides which
objects to fetch and what phase a finding means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from kubernetes import client

from demos.backends.base import ChartPhase, ChartProgress
from demos.backends.vcluster import naming

# Waiting reasons after which a container will not start without someone changing something.
IMAGE_PULL_FAILED = frozenset({"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CANNOT_START = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
# How the quota and limit-range admission plugins word a refusal.
REFUSAL_PHRASES = ("exceeded quota", "usage per container", "usage per pod")
# How Pod Security admission words one (k8s.io/pod-security-admission, admission.go:
# `violates PodSecurity "baseline:latest": privileged (container "x" must not set ...)`), seen
# as FailedCreate warnings on the ReplicaSet, StatefulSet, DaemonSet or Job whose pods it refused.
POD_SECURITY_PHRASE = "violates podsecurity"
# Crash loops get a few restarts' grace: apps often crash until their database is up.
CRASH_RESTARTS_BEFORE_FAILING = 3


@dataclass(frozen=True)
class Finding:
    """Something worth telling: `fatal` ones fail the demo, the others explain a wait."""

    message: str
    fatal: bool = False
    detail: str = ""
    unschedulable: bool = False


def pod_finding(pod: client.V1Pod, who: str) -> Finding | None:
    """The most important problem of one pod, if any; `who` ("Chart `shop`") starts the message."""
    status = pod.status or client.V1PodStatus()
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    for container in statuses:
        state = container.state or client.V1ContainerState()
        waiting = state.waiting
        if waiting is None:
            continue
        reason = waiting.reason or ""
        said = (waiting.message or "").strip()
        detail = f"pod {pod.metadata.name}, container {container.name}: {reason} {said}".strip()
        if reason in IMAGE_PULL_FAILED:
            return Finding(f"{who} failed: image pull error for {container.image}.", True, detail)
        if reason == "ErrImagePull":
            return Finding(f"{who}: pulling {container.image} failed; retrying.", False, detail)
        if reason in CANNOT_START:
            return Finding(
                f"{who} failed: container `{container.name}` cannot start: {said or reason}.",
                True,
                detail,
            )
        if reason == "CrashLoopBackOff":
            last = (container.last_state or client.V1ContainerState()).terminated
            why = f" ({last.reason}, exit code {last.exit_code})" if last else ""
            fatal = (container.restart_count or 0) >= CRASH_RESTARTS_BEFORE_FAILING
            if fatal:
                message = f"{who} failed: container `{container.name}` keeps crashing{why}."
            else:
                message = f"{who}: container `{container.name}` crashed and is restarting{why}."
            return Finding(message, fatal, detail)
    for condition in status.conditions or []:
        if (
            condition.type == "PodScheduled"
            and condition.status == "False"
            and condition.reason == "Unschedulable"
        ):
            said = (condition.message or "no node fits").strip()
            return Finding(
                f"{who}: waiting for room on the host cluster ({said}).",
                detail=f"pod {pod.metadata.name}: {said}",
                unschedulable=True,
            )
    return None


def describe_pods(pods: Iterable[client.V1Pod]) -> str:
    """One line per pod and container, for the event log."""
    lines = []
    for pod in pods:
        status = pod.status or client.V1PodStatus()
        parts = []
        for container in status.container_statuses or []:
            state = container.state or client.V1ContainerState()
            if state.waiting:
                now = f"waiting ({state.waiting.reason})"
            elif state.terminated:
                now = f"terminated ({state.terminated.reason})"
            else:
                now = "running"
            ready = "ready" if container.ready else "not ready"
            parts.append(
                f"{container.name} {now}, {ready}, {container.restart_count or 0} restarts"
            )
        lines.append(f"pod {pod.metadata.name}: {status.phase}; " + "; ".join(parts))
    return "\n".join(lines)


def newest_pod(pods: Sequence[client.V1Pod]) -> client.V1Pod | None:
    oldest = datetime.min.replace(tzinfo=UTC)
    return max(pods, key=lambda p: p.metadata.creation_timestamp or oldest, default=None)


def pod_is_ready(pod: client.V1Pod | None) -> bool:
    """Ready as the vCluster CLI counts it: every container of the newest pod is ready."""
    if pod is None or pod.metadata.deletion_timestamp:
        return False
    statuses = (pod.status or client.V1PodStatus()).container_statuses or []
    return bool(statuses) and all(container.ready for container in statuses)


def refusal_finding(events: Iterable[Any], who: str) -> Finding | None:
    """A quota, limit-range or pod-security refusal among Warning events (host or inside the
    vCluster)."""
    for event in events:
        text = (event.message or "").strip()
        lowered = text.lower()
        if POD_SECURITY_PHRASE in lowered:
            level = _pod_security_level(text)
            return Finding(
                f"{who} failed: its pods break the demo's pod security level{level} "
                f"({_shorten(text)}). Change the chart's values (security context, host access) "
                "or ask an operator about VCLUSTER_POD_SECURITY_STANDARD.",
                True,
                text,
            )
        if any(phrase in lowered for phrase in REFUSAL_PHRASES):
            return Finding(
                f"{who} failed: refused by the demo's resource limits ({_shorten(text)}). "
                "Raise the template's quota or lower the chart's resource requests.",
                True,
                text,
            )
    return None


def _pod_security_level(text: str) -> str:
    match = re.search(r'violates PodSecurity "([a-z]+)', text)
    return f" `{match[1]}`" if match else ""


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class DeployStatus:
    """What vCluster reports about the charts it installs at start-up."""

    phase: str
    message: str
    charts: Mapping[tuple[str, str], Mapping[str, Any]]


def deploy_status(configmap: client.V1ConfigMap | None) -> DeployStatus | None:
    """Parse the `vcluster.loft.sh/status` annotation of kube-system/vcluster-deploy."""
    if configmap is None:
        return None
    raw = (configmap.metadata.annotations or {}).get(naming.DEPLOY_STATUS_ANNOTATION)
    if not raw:
        return None
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError:
        return DeployStatus("Unknown", f"unreadable status: {_shorten(raw)}", {})
    if not isinstance(data, Mapping):
        return DeployStatus("Unknown", f"unreadable status: {_shorten(raw)}", {})
    charts = {
        (str(item.get("name", "")), str(item.get("namespace", ""))): item
        for item in data.get("charts") or []
        if isinstance(item, Mapping)
    }
    message = " ".join(str(data.get(key) or "") for key in ("reason", "message")).strip()
    return DeployStatus(str(data.get("phase") or ""), message, charts)


# A chart's entry appears once vCluster has processed it, as Success or Failed, never Pending
# (pkg/controllers/deploy/deploy.go, setChartStatus / setChartStatusLastApplied at v0.36.1).
# Failed is not final: start.go retries DeployHelmCharts every 10 s and a later success
# overwrites the entry, so the portal reads it as "retrying" and decides at its own deadline.
_CHART_PHASES = {"success": ChartPhase.SUCCESS, "failed": ChartPhase.RETRYING}


def chart_progress(
    charts: Sequence[Mapping[str, Any]], status: DeployStatus | None
) -> tuple[ChartProgress, ...]:
    """Progress of each chart of the spec, in the spec's order."""
    progress = []
    for chart in charts:
        namespace = chart.get("namespace") or "default"
        entry = None
        if status is not None:
            entry = status.charts.get((chart["name"], namespace)) or status.charts.get(
                (chart["chart"], namespace)
            )
        if entry is None:
            progress.append(ChartProgress(chart["name"], namespace, ChartPhase.PENDING))
            continue
        phase = _CHART_PHASES.get(str(entry.get("phase", "")).lower(), ChartPhase.INSTALLING)
        message = " ".join(str(entry.get(k) or "") for k in ("reason", "message")).strip()
        progress.append(ChartProgress(chart["name"], namespace, phase, message))
    return tuple(progress)


def chart_of_pod(pod: client.V1Pod, charts: Sequence[Mapping[str, Any]]) -> str:
    """Who a synced host pod is: its chart when it can be told, else the pod itself."""
    annotations = pod.metadata.annotations or {}
    namespace = annotations.get(naming.OBJECT_NAMESPACE_ANNOTATION, "")
    instance = (pod.metadata.labels or {}).get("app.kubernetes.io/instance")
    name = annotations.get(naming.OBJECT_NAME_ANNOTATION, pod.metadata.name)
    return chart_in_namespace(namespace, charts, instance) or (
        f"Pod {namespace}/{name} in the demo" if namespace else f"Pod {name}"
    )


def chart_in_namespace(
    namespace: str, charts: Sequence[Mapping[str, Any]], instance: str | None = None
) -> str:
    """Who it is, as "Chart `x`", for the chart installed in `namespace` (release `instance`)."""
    in_namespace = [c for c in charts if (c.get("namespace") or "default") == namespace]
    for chart in in_namespace:
        if chart["name"] == instance:
            return f"Chart `{chart['name']}`"
    if len(in_namespace) == 1:
        return f"Chart `{in_namespace[0]['name']}`"
    if in_namespace:
        names = ", ".join(f"`{c['name']}`" for c in in_namespace)
        return f"One of the charts {names}"
    return ""


def ingress_urls(ingresses: Iterable[client.V1Ingress], ingress_class: str = "") -> list[str]:
    """Live links from Ingress hosts: https when a TLS section covers the host. With
    `ingress_class`, Ingresses that name another class are not served by the demos' controller."""
    urls: list[str] = []
    for ingress in ingresses:
        spec = ingress.spec or client.V1IngressSpec()
        if ingress_class and spec.ingress_class_name not in (None, "", ingress_class):
            continue
        tls_hosts = {host for tls in spec.tls or [] for host in tls.hosts or []}
        for rule in spec.rules or []:
            if rule.host and "*" not in rule.host:
                scheme = "https" if rule.host in tls_hosts else "http"
                urls.append(f"{scheme}://{rule.host}/")
    return list(dict.fromkeys(urls))


def endpoint_ready(endpoint: client.V1Endpoint) -> bool:
    """Whether an EndpointSlice endpoint takes traffic: `conditions.ready` unset means ready
    (discovery.k8s.io/v1 EndpointConditions)."""
    conditions = endpoint.conditions
    return conditions is None or conditions.ready is not False
