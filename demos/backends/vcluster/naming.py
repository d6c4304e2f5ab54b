"""Names, labels and annotations the backend puts on (and looks for in) the host cluster.

The `vcluster.loft.sh/*` and `loft.sh/*` keys are vCluster's own (see the reference notes); the
`demo-portal/*` keys are this portal's, so that orphan clean-up can find exactly its clusters.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from demos.backends.base import BackendError

# vCluster's own conventions.
APP_LABEL = "app"
RELEASE_LABEL = "release"
MANAGED_BY_VCLUSTER = "vcluster.loft.sh/managed-by"
CREATED_ANNOTATION = "vcluster.loft.sh/created"
OBJECT_NAMESPACE_ANNOTATION = "vcluster.loft.sh/object-namespace"
OBJECT_NAME_ANNOTATION = "vcluster.loft.sh/object-name"
PAUSED = "loft.sh/paused"
PAUSED_REPLICAS = "loft.sh/paused-replicas"
PAUSED_DATE = "loft.sh/paused-date"
SNAPSHOT_REQUEST_LABEL = "vcluster.loft.sh/snapshot-request"
SNAPSHOT_VCLUSTER_NAME_LABEL = "vcluster.loft.sh/vcluster-name"
SNAPSHOT_VCLUSTER_NAMESPACE_LABEL = "vcluster.loft.sh/vcluster-namespace"
DEPLOY_STATUS_ANNOTATION = "vcluster.loft.sh/status"
DEPLOY_CONFIGMAP = ("kube-system", "vcluster-deploy")

# This portal's marks.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "demo-portal"
INSTANCE_LABEL = "demo-portal/instance"
CLUSTER_LABEL = "demo-portal/cluster"
DEMO_ID_LABEL = "demo-portal/demo-id"
TEMPLATE_LABEL = "demo-portal/template"
KUBECONFIG_DOWNLOAD_ANNOTATION = "demo-portal/kubeconfig-download"
# The RoleBinding that gives the worker its rights inside one demo namespace.
WORKER_ROLE_BINDING = "demo-portal-worker"

# Kubernetes Pod Security admission (enforced by the host on the demo's synced pods).
POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"
POD_SECURITY_ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
POD_SECURITY_WARN = "pod-security.kubernetes.io/warn"
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_cluster_name(name: str, namespace_prefix: str) -> None:
    """Refuse names Kubernetes would refuse, with a message that says why."""
    if not _DNS_1035.match(name) or len(name) > 63:
        raise BackendError(
            f"`{name}` cannot be a vCluster name: use lowercase letters, digits and dashes, "
            "starting with a letter (at most 63 characters).",
            transient=False,
        )
    if len(namespace_prefix + name) > 63:
        raise BackendError(
            f"The namespace `{namespace_prefix}{name}` would be longer than 63 characters: "
            "shorten the cluster name or VCLUSTER_NAMESPACE_PREFIX.",
            transient=False,
        )


def namespace_for(name: str, namespace_prefix: str) -> str:
    return f"{namespace_prefix}{name}"


def kubeconfig_secret(name: str) -> str:
    """The Secret vCluster always writes (server https://localhost:8443)."""
    return f"vc-{name}"


def portal_kubeconfig_secret(name: str) -> str:
    """The extra Secret whose kubeconfig points at a server the worker can reach."""
    return f"vc-portal-{name}"


def data_pvc(name: str) -> str:
    return f"data-{name}-0"


def control_plane_selector(name: str) -> str:
    return f"{APP_LABEL}=vcluster,{RELEASE_LABEL}={name}"


def workload_selector(name: str) -> str:
    return f"{MANAGED_BY_VCLUSTER}={name}"


def label_value(value: str) -> str:
    """`value` if Kubernetes accepts it as a label value, else empty (labels are best effort)."""
    value = value[:63]
    return value if _LABEL_VALUE.match(value) else ""


def pod_security_labels(level: str) -> dict[str, str]:
    """Pod Security labels of a demo namespace on the host, for VCLUSTER_POD_SECURITY_STANDARD.

    The host enforces at most `baseline`: the chart's control plane runs as root by default
    (`controlPlane.statefulSet.security.containerSecurityContext.runAsUser: 0` in its
    values.yaml), which `restricted` refuses; the vCluster itself enforces `restricted` on the
    demo's pods, and the host warns.
    """
    enforce = "privileged" if level == "privileged" else "baseline"
    return {
        POD_SECURITY_ENFORCE: enforce,
        POD_SECURITY_ENFORCE_VERSION: "latest",
        POD_SECURITY_WARN: level if level in POD_SECURITY_LEVELS else enforce,
    }


def portal_labels(
    instance: str, name: str, demo_id: str = "", template: str = ""
) -> dict[str, str]:
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        INSTANCE_LABEL: label_value(instance) or "default",
        CLUSTER_LABEL: name,
    }
    if label_value(demo_id):
        labels[DEMO_ID_LABEL] = label_value(demo_id)
    if label_value(template):
        labels[TEMPLATE_LABEL] = label_value(template)
    return labels


def portal_selector(instance: str) -> str:
    return (
        f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},"
        f"{INSTANCE_LABEL}={label_value(instance) or 'default'}"
    )


class VirtualService(NamedTuple):
    """A Service inside a vCluster, as a template's `entry_service` names it."""

    namespace: str
    name: str
    port: int


_ENTRY_SERVICE = re.compile(
    r"^(?P<namespace>[a-z0-9-]{1,63})/(?P<name>[a-z0-9-]{1,63}):(?P<port>\d{1,5})$"
)


def parse_entry_service(value: str) -> VirtualService | None:
    """`namespace/name:port` as a `VirtualService`, or None when it is not that shape."""
    match = _ENTRY_SERVICE.match(value.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        return None
    return VirtualService(match["namespace"], match["name"], int(match["port"]))


def safe_concat_name(*parts: str) -> str:
    """vCluster's `SafeConcatName`: the parts joined by dashes; a name longer than 63 characters
    becomes its first 52, a dash and the first 10 hex digits of its SHA-256, with any ".-" made
    "-" (pkg/util/translate/translate.go:211-218 at v0.36.1)."""
    full = "-".join(parts)
    if len(full) > 63:
        digest = hashlib.sha256(full.encode()).hexdigest()
        return (full[:52] + "-" + digest[:10]).replace(".-", "-")
    return full


def host_service_name(service: VirtualService, vcluster: str) -> str:
    """The name vCluster gives `service` when it syncs it to the host namespace.

    In the host namespace of a vCluster (its only one, without the paid multi-namespace mode)
    a synced object is named `<name>-x-<namespace>-x-<vcluster>` (`SingleNamespaceHostName`,
    pkg/util/translate/single_namespace.go:59-64 at v0.36.1), which the Service mapper uses for
    every Service except `default/kubernetes`, which is the vCluster's own Service
    (pkg/mappings/resources/services.go:15-18, 74-83). The synced Service keeps its ports.
    """
    if (service.namespace, service.name) == ("default", "kubernetes"):
        return vcluster
    return safe_concat_name(service.name, "x", service.namespace, "x", vcluster)
