"""`vcluster create NAME --restore URL` (the CLI at v0.36.1) played on the emulated host.

It stands in for the `vcluster` binary as the backend's CLI runner and does, through the host
API with the worker's credentials (the CLI runs with the worker's kubeconfig), what the CLI does
for a new vCluster, in its order (loft-sh/vcluster at tag v0.36.1, commit 0c3bb166):

1. ResourceQuota `vcluster-restore` with `pods: 0`, so the control plane cannot start before its
   data is back (pkg/cli/create_helm.go:589-605; the name, pkg/cli/restore_helm.go:29).
2. `helm upgrade --install` of the chart (create_helm.go:633-648): the real chart, by ChartHelm.
3. Pause for the restore (restore_helm.go:52-57, 149-182): the StatefulSet is merge-patched with
   `loft.sh/restoring: "true"`, `loft.sh/paused-replicas`, `loft.sh/paused-date` and
   `replicas: 0` (pkg/lifecycle/lifecycle.go:216-256, pkg/constants/annotation.go:7-8, 37-42);
   the data volume claim is created from the StatefulSet's claim template if there is none
   (restore_helm.go:184-230); then the quota is deleted (restore_helm.go:172-179).
4. A restore pod `vcluster-snapshot-*`, labelled `app=vcluster-snapshot`, running
   `/vcluster restore --new-vcluster` in the syncer's image (pkg/snapshot/pod/pod.go:194-315).
5. When it has succeeded: the pod is deleted (pod.go:130-136), the vCluster resumed - the three
   annotations removed and the replicas set back (restore_helm.go:59-66,
   lifecycle.go:360-404) - and the quota deleted again (create_helm.go:609-615).

Killed (SIGKILL, as the portal's runner kills a CLI that overruns VCLUSTER_CLI_TIMEOUT), it stops
where it is: its signal handlers, which would delete the quota and the pod
(create_helm.go:617-630, pod.go:138-156), never run. `kill_at` chooses the moment.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chart_helm import ChartHelm
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from demos.backends.base import BackendError
from demos.backends.vcluster.helm import ProcessResult

RESTORE_QUOTA = "vcluster-restore"
RESTORING = "loft.sh/restoring"
PAUSED_REPLICAS = "loft.sh/paused-replicas"
PAUSED_DATE = "loft.sh/paused-date"
MERGE_PATCH = "application/merge-patch+json"
# Where the CLI can be killed: after the chart is installed (quota still there), or while the
# restore pod runs (StatefulSet marked restoring, scaled to 0, quota already deleted).
KILL_POINTS = ("installed", "restoring")


class RestorePlayer:
    """The `vcluster` CLI as the backend's runner: `vcluster create NAME --restore URL`."""

    def __init__(self, helm: ChartHelm, api: client.ApiClient) -> None:
        self.helm = helm
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.kill_at = ""
        self.calls: list[list[str]] = []

    def __call__(
        self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
    ) -> ProcessResult:
        argv = list(argv)
        self.calls.append(argv)
        if self.helm.log is not None:
            self.helm.log.append("vcluster create")
        assert argv[1] == "create", argv
        assert "--restore" in argv, argv
        name = argv[2]
        namespace = argv[argv.index("--namespace") + 1]
        values = Path(argv[argv.index("--values") + 1]).read_text()

        self._create_quota(namespace)
        installed = self.helm.install(name, namespace, values)
        if installed.returncode != 0:
            return installed
        if self.kill_at == "installed":
            self._killed(timeout)
        replicas = self._pause(name, namespace)
        self._ensure_volume_claim(name, namespace)
        self._delete_quota(namespace)
        pod = self._start_restore_pod(name, namespace)
        if self.kill_at == "restoring":
            self._killed(timeout)
        self.core.delete_namespaced_pod(pod, namespace)
        self._resume(name, namespace, replicas)
        self._delete_quota(namespace)
        return ProcessResult(0, f"vCluster {name} restored\n")

    @staticmethod
    def _killed(timeout: float) -> None:
        # What the backend sees when its runner kills the CLI at the timeout (run_process).
        raise BackendError(
            f"`vcluster create` did not finish within {int(timeout)} seconds; it will be retried.",
            transient=True,
        )

    def _create_quota(self, namespace: str) -> None:
        try:
            self.core.create_namespaced_resource_quota(
                namespace,
                {"metadata": {"name": RESTORE_QUOTA}, "spec": {"hard": {"pods": "0"}}},
            )
        except ApiException as exc:
            if exc.status != 409:  # IsAlreadyExists is fine (create_helm.go:603)
                raise

    def _delete_quota(self, namespace: str) -> None:
        try:
            self.core.delete_namespaced_resource_quota(RESTORE_QUOTA, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _pause(self, name: str, namespace: str) -> int:
        statefulset = self.apps.read_namespaced_stateful_set(name, namespace)
        replicas = statefulset.spec.replicas
        # Already at 0 it would read the HA replicas from the config Secret; 1 for the portal's.
        count = replicas if replicas else 1
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        self.apps.patch_namespaced_stateful_set(
            name,
            namespace,
            {
                "metadata": {
                    "annotations": {
                        RESTORING: "true",
                        PAUSED_REPLICAS: str(count),
                        PAUSED_DATE: date,
                    }
                },
                "spec": {"replicas": 0},
            },
            _content_type=MERGE_PATCH,
        )
        return count

    def _ensure_volume_claim(self, name: str, namespace: str) -> None:
        claims = self.core.list_namespaced_persistent_volume_claim(
            namespace, label_selector=f"app=vcluster,release={name}"
        ).items
        if claims:
            return
        statefulset = self.apps.read_namespaced_stateful_set(name, namespace)
        template = statefulset.spec.volume_claim_templates[0]
        spec = self.apps.api_client.sanitize_for_serialization(template.spec)
        claim = f"{template.metadata.name}-{name}-0"
        try:
            self.core.create_namespaced_persistent_volume_claim(
                namespace, {"metadata": {"name": claim}, "spec": spec}
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _start_restore_pod(self, name: str, namespace: str) -> str:
        statefulset = self.apps.read_namespaced_stateful_set(name, namespace)
        syncer = next(c for c in statefulset.spec.template.spec.containers if c.name == "syncer")
        pod: dict[str, Any] = {
            "metadata": {
                "generateName": "vcluster-snapshot-",
                "labels": {"app": "vcluster-snapshot"},
            },
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": statefulset.spec.template.spec.service_account_name,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "snapshot",
                        "image": syncer.image,
                        "command": ["/vcluster", "restore", "--new-vcluster"],
                        "env": [{"name": "POD_NAME", "value": f"{name}-0"}],
                    }
                ],
            },
        }
        created = self.core.create_namespaced_pod(namespace, pod)
        return created.metadata.name

    def _resume(self, name: str, namespace: str, replicas: int) -> None:
        self.apps.patch_namespaced_stateful_set(
            name,
            namespace,
            {
                "metadata": {
                    "annotations": {RESTORING: None, PAUSED_REPLICAS: None, PAUSED_DATE: None}
                },
                "spec": {"replicas": replicas},
            },
            _content_type=MERGE_PATCH,
        )
