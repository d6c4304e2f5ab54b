"""Restoring an archive into a new vCluster, which only the `vcluster` CLI can do (it runs a helper
pod with the snapshot's storage options). Without a configured CLI the portal cannot restore.

A `vcluster create --restore` that is killed (the portal kills it at VCLUSTER_CLI_TIMEOUT) leaves
the vCluster half made, and its StatefulSet alone does not tell. `Leftovers` reads the markers
vCluster 0.36.1 leaves behind, so the portal can clean up and restore again.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from kubernetes import client

from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.helm import Runner, describe_failure, run_process
from demos.backends.vcluster.kube import HostCluster

# `vcluster create --restore` first creates this quota (pods: 0) so the control plane cannot
# start before the data is back (pkg/cli/create_helm.go:589-605, name in
# pkg/cli/restore_helm.go:29); it deletes it when it ends or is interrupted (SIGINT/SIGTERM,
# create_helm.go:607-630), never when killed.
RESTORE_QUOTA = "vcluster-restore"
# Then it scales the control plane to 0 as a pause with isRestore=true, which annotates the
# StatefulSet `loft.sh/restoring: "true"` instead of `loft.sh/paused`
# (pkg/lifecycle/lifecycle.go:216-256, pkg/constants/annotation.go:37-42), and resumes it when done
# (pkg/cli/restore_helm.go:59-66).
RESTORING = "loft.sh/restoring"
# Meanwhile the restore runs in a pod labelled app=vcluster-snapshot
# (pkg/snapshot/pod/pod.go:284-291), deleted when the CLI ends or is interrupted
# (pod.go:128-156), never when killed.
RESTORE_POD_SELECTOR = "app=vcluster-snapshot"


class VClusterCli:
    def __init__(self, cfg: VClusterSettings, runner: Runner = run_process) -> None:
        self.cfg = cfg
        self.runner = runner

    def restore_argv(self, name: str, namespace: str, values_path: str, location: str) -> list[str]:
        argv = [
            self.cfg.vcluster_cli,
            "create",
            name,
            "--namespace",
            namespace,
            "--driver",
            "helm",
            "--chart-repo",
            self.cfg.chart_repo,
            "--chart-name",
            self.cfg.chart_name,
            "--chart-version",
            self.cfg.chart_version,
            "--values",
            values_path,
            "--restore",
            location,
            # The portal made the namespace and connects by itself; never touch a kubeconfig.
            "--create-namespace=false",
            "--connect=false",
            "--expose-local=false",
            "--background-proxy=false",
            "--add=false",
        ]
        if self.cfg.context:
            argv += ["--context", self.cfg.context]
        return argv

    def restore(self, name: str, namespace: str, values_yaml: str, location: str) -> None:
        """`vcluster create NAME --restore LOCATION` with the demo's vcluster.yaml."""
        handle, path = tempfile.mkstemp(prefix=f"vcluster-{name}-", suffix=".yaml")
        env = {"KUBECONFIG": self.cfg.kubeconfig} if self.cfg.kubeconfig else None
        try:
            with os.fdopen(handle, "w") as file:
                file.write(values_yaml)
            result = self.runner(
                self.restore_argv(name, namespace, path, location),
                self.cfg.cli_timeout_seconds,
                env,
            )
        finally:
            os.unlink(path)
        if result.returncode != 0:
            raise describe_failure("create --restore", result, program="vcluster")


@dataclass(frozen=True)
class Leftovers:
    """What an interrupted `vcluster create --restore` left in a demo's namespace."""

    restoring: bool
    quota: bool
    pods: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.restoring or self.quota or bool(self.pods)

    def describe(self) -> str:
        found = []
        if self.restoring:
            found.append(f"the control plane still marked {RESTORING}")
        if self.quota:
            found.append(f"ResourceQuota {RESTORE_QUOTA}")
        if self.pods:
            found.append(f"restore pod(s) {', '.join(self.pods)}")
        return ", ".join(found)


def interrupted_restore(
    host: HostCluster, namespace: str, statefulset: client.V1StatefulSet | None
) -> Leftovers:
    """The markers of an interrupted restore in `namespace` (empty when there are none)."""
    annotations = (statefulset.metadata.annotations or {}) if statefulset is not None else {}
    quota = host.read_resource_quota(namespace, RESTORE_QUOTA) is not None
    pods = host.list_pods(namespace, RESTORE_POD_SELECTOR)
    return Leftovers(
        restoring=annotations.get(RESTORING) == "true",
        quota=quota,
        pods=tuple(pod.metadata.name for pod in pods),
    )


def remove_markers(host: HostCluster, namespace: str, found: Leftovers) -> None:
    """Delete the restore pods and the quota, as the CLI itself does when it ends; the
    `loft.sh/restoring` annotation goes with the StatefulSet (the caller uninstalls it, as the
    CLI does after a failed restore, create_helm.go:650-662)."""
    for pod in found.pods:
        host.delete_pod(namespace, pod)
    if found.quota:
        host.delete_resource_quota(namespace, RESTORE_QUOTA)


def release_exists(host: HostCluster, namespace: str, name: str) -> bool:
    """Whether Helm has a release record of `name` (of any status, e.g. pending-install)."""
    return bool(host.list_secrets(namespace, f"owner=helm,name={name}"))
