"""The tests' stand-ins for what a real host cluster's controllers would do.

kmock has no controllers, so the tests play those parts through the same HTTP API the backend
uses: `HostPlayer` acts as the StatefulSet controller, the kubelet and vCluster's syncer;
`VClusterPlayer` writes the events a vCluster records inside itself. Helm is chart_helm.py and
vCluster's deploy controller is deploy_controller.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from kubernetes import client

from demos.backends.vcluster import naming

CONTROL_PLANE_IMAGE = "ghcr.io/loft-sh/vcluster-oss:0.36.1"


def container_status(
    name: str,
    image: str,
    *,
    ready: bool = True,
    waiting: str = "",
    waiting_message: str = "",
    restarts: int = 0,
    last_terminated: tuple[str, int] | None = None,
) -> dict[str, Any]:
    if waiting:
        state: dict[str, Any] = {"waiting": {"reason": waiting, "message": waiting_message}}
    else:
        state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    status: dict[str, Any] = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready and not waiting,
        "restartCount": restarts,
        "state": state,
    }
    if last_terminated:
        reason, code = last_terminated
        status["lastState"] = {"terminated": {"reason": reason, "exitCode": code}}
    return status


def pod_body(
    name: str,
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
    containers: Sequence[dict[str, Any]] = (),
    phase: str = "Running",
    conditions: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels), "annotations": dict(annotations or {})},
        "spec": {"containers": [{"name": c["name"], "image": c["image"]} for c in containers]},
        "status": {
            "phase": phase,
            "conditions": list(conditions),
            "containerStatuses": list(containers),
        },
    }


def encoded_kubeconfig(kubeconfig: Mapping[str, Any]) -> str:
    return base64.b64encode(yaml.safe_dump(dict(kubeconfig)).encode()).decode()


class HostPlayer:
    """Plays the host cluster's controllers through the API (never recorded as backend calls)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.storage = client.StorageV1Api(api)

    # The StatefulSet controller and the kubelet.
    def run_control_plane(self, name: str, **container: Any) -> None:
        """Create pod NAME-0 (and its volume claim) with one container in the given state."""
        namespace = self.namespace_of(name)
        self.bind_volume(name)
        status = container_status(
            "syncer", container.pop("image", CONTROL_PLANE_IMAGE), **container
        )
        self.core.create_namespaced_pod(
            namespace,
            pod_body(
                f"{name}-0",
                labels={naming.APP_LABEL: "vcluster", naming.RELEASE_LABEL: name},
                containers=[status],
            ),
        )
        ready = 1 if status["ready"] else 0
        self.set_statefulset_status(name, replicas=1, ready=ready)

    def bind_volume(
        self, name: str, phase: str = "Bound", storage_class: str | None = "standard"
    ) -> None:
        self.core.create_namespaced_persistent_volume_claim(
            self.namespace_of(name),
            {
                "metadata": {"name": naming.data_pvc(name)},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": storage_class,
                    "resources": {"requests": {"storage": "5Gi"}},
                },
                "status": {"phase": phase},
            },
        )

    def pending_control_plane(self, name: str, message: str) -> None:
        self.core.create_namespaced_pod(
            self.namespace_of(name),
            pod_body(
                f"{name}-0",
                labels={naming.APP_LABEL: "vcluster", naming.RELEASE_LABEL: name},
                phase="Pending",
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                    }
                ],
            ),
        )

    def set_statefulset_status(self, name: str, replicas: int, ready: int) -> None:
        self.apps.patch_namespaced_stateful_set_status(
            name,
            self.namespace_of(name),
            {"status": {"replicas": replicas, "readyReplicas": ready}},
            _content_type="application/merge-patch+json",
        )

    def stop_control_plane(self, name: str) -> None:
        """What the StatefulSet controller does after `spec.replicas: 0`."""
        self.set_statefulset_status(name, replicas=0, ready=0)
        self.core.delete_namespaced_pod(f"{name}-0", self.namespace_of(name))

    def warn(self, name: str, reason: str, message: str, kind: str = "StatefulSet") -> None:
        self.core.create_namespaced_event(
            self.namespace_of(name),
            {
                "metadata": {"generateName": f"{name}."},
                "involvedObject": {"kind": kind, "name": name},
                "reason": reason,
                "message": message,
                "type": "Warning",
            },
        )

    # vCluster's exported kubeconfigs and synced objects.
    def export_kubeconfig(
        self, name: str, kubeconfig: Mapping[str, Any], portal: bool = True
    ) -> None:
        secret = naming.portal_kubeconfig_secret(name) if portal else naming.kubeconfig_secret(name)
        self.core.create_namespaced_secret(
            self.namespace_of(name),
            {"metadata": {"name": secret}, "data": {"config": encoded_kubeconfig(kubeconfig)}},
        )

    def sync_pod(
        self, name: str, virtual_namespace: str, virtual_name: str, **container: Any
    ) -> str:
        host_name = f"{virtual_name}-x-{virtual_namespace}-x-{name}"
        self.core.create_namespaced_pod(
            self.namespace_of(name),
            pod_body(
                host_name,
                labels={naming.MANAGED_BY_VCLUSTER: name},
                annotations={
                    naming.OBJECT_NAMESPACE_ANNOTATION: virtual_namespace,
                    naming.OBJECT_NAME_ANNOTATION: virtual_name,
                },
                containers=[container_status("app", container.pop("image", "app:1"), **container)],
            ),
        )
        return host_name

    def sync_ingress(self, name: str, host: str, tls: bool = False) -> None:
        spec: dict[str, Any] = {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        }
        if tls:
            spec["tls"] = [{"hosts": [host], "secretName": "tls"}]
        # The syncer marks what it copies to the host with the vCluster's name
        # (pkg/util/translate/labels.go at v0.36.1, MarkerLabel).
        self.networking.create_namespaced_ingress(
            self.namespace_of(name),
            {
                "metadata": {
                    "name": f"web-x-shop-x-{name}",
                    "labels": {naming.MANAGED_BY_VCLUSTER: name},
                },
                "spec": spec,
            },
        )

    def add_storage_class(self, name: str) -> None:
        self.storage.create_storage_class(
            {"metadata": {"name": name}, "provisioner": "rancher.io/local-path"}
        )

    def add_namespace(self, name: str, labels: Mapping[str, str], annotations: Any = None) -> None:
        self.core.create_namespace(
            {"metadata": {"name": name, "labels": dict(labels), "annotations": annotations or {}}}
        )

    def snapshot_requests(self, name: str) -> list[client.V1ConfigMap]:
        return self.core.list_namespaced_config_map(
            self.namespace_of(name), label_selector=naming.SNAPSHOT_REQUEST_LABEL
        ).items

    def set_snapshot_phase(self, name: str, request: str, phase: str, error: str = "") -> None:
        namespace = self.namespace_of(name)
        configmap = self.core.read_namespaced_config_map(request, namespace)
        data = json.loads(configmap.data["snapshotRequest"])
        data["status"] = {"phase": phase, "error": {"message": error} if error else {}}
        self.core.patch_namespaced_config_map(
            request,
            namespace,
            {"data": {"snapshotRequest": json.dumps(data)}},
            _content_type="application/merge-patch+json",
        )

    @staticmethod
    def namespace_of(name: str) -> str:
        return naming.namespace_for(name, "vcluster-")


class VClusterPlayer:
    """Writes what a running vCluster reports inside itself."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    def warn(self, namespace: str, pod: str, reason: str, message: str, kind: str = "Pod") -> None:
        self.core.create_namespaced_event(
            namespace,
            {
                "metadata": {"generateName": f"{pod}."},
                "involvedObject": {"kind": kind, "name": pod, "namespace": namespace},
                "reason": reason,
                "message": message,
                "type": "Warning",
            },
        )
