"""Restoring an archive into a new vCluster, which only the `vcluster` CLI can do (it runs a helper
pod with the snapshot's storage options). Without a configured CLI the portal cannot restore."""

from __future__ import annotations

import os
import tempfile

from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.helm import Runner, describe_failure, run_process


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
