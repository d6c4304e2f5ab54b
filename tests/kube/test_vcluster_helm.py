"""Running Helm: the exact commands and values file, timeouts, readable errors; and the sample
demo charts the project ships, checked with the real pinned `helm` binary."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import validate as validate_manifest
from upstream.tools import binary

from demos.backends.base import BackendError
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.helm import (
    PROCESS_GRACE_SECONDS,
    Helm,
    ProcessResult,
    describe_failure,
    run_process,
)

ROOT = Path(__file__).resolve().parents[2]
CHARTS = sorted(path.parent for path in (ROOT / "k8s" / "charts").glob("*/Chart.yaml"))


class Recorder:
    """A runner that keeps the command, the timeout and the values file's content at run time."""

    def __init__(self, result: ProcessResult | None = None) -> None:
        self.result = result or ProcessResult(0)
        self.argv: list[str] = []
        self.timeout = 0.0
        self.values = ""

    def __call__(
        self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
    ) -> ProcessResult:
        self.argv, self.timeout = list(argv), timeout
        if "--values" in argv:
            self.values = Path(argv[argv.index("--values") + 1]).read_text()
        return self.result


class TestCommands:
    def test_upgrade_install_runs_the_exact_command_with_the_values_file(self) -> None:
        runner = Recorder()
        helm = Helm(VClusterSettings(helm_bin="/opt/helm", helm_timeout_seconds=240), runner)

        helm.upgrade_install("demo-1", "vcluster-demo-1", "controlPlane: {}\n")

        values_path = runner.argv[runner.argv.index("--values") + 1]
        assert runner.argv == [
            "/opt/helm",
            "upgrade",
            "--install",
            "demo-1",
            "vcluster",
            "--repo",
            "https://charts.loft.sh",
            "--version",
            "0.36.1",
            "--namespace",
            "vcluster-demo-1",
            "--values",
            values_path,
            "--timeout",
            "240s",
        ]
        assert runner.values == "controlPlane: {}\n"
        assert runner.timeout == 240 + PROCESS_GRACE_SECONDS
        assert not Path(values_path).exists(), "the values file is removed afterwards"

    def test_a_mirrored_oci_chart_and_a_kubeconfig_context(self) -> None:
        runner = Recorder()
        cfg = VClusterSettings(
            chart_repo="oci://registry.example.com/mirror/charts/",
            kubeconfig="/etc/portal/kubeconfig",
            context="kind-demos",
        )

        Helm(cfg, runner).upgrade_install("demo-1", "vcluster-demo-1", "")

        assert runner.argv[3:5] == ["demo-1", "oci://registry.example.com/mirror/charts/vcluster"]
        assert "--repo" not in runner.argv
        assert runner.argv[-4:] == [
            "--kubeconfig",
            "/etc/portal/kubeconfig",
            "--kube-context",
            "kind-demos",
        ]

    def test_the_values_file_is_private(self) -> None:
        modes: list[int] = []

        def runner(argv: Sequence[str], timeout: float, env: Any = None) -> ProcessResult:
            modes.append(os.stat(argv[argv.index("--values") + 1]).st_mode & 0o777)
            return ProcessResult(0)

        Helm(VClusterSettings(), runner).upgrade_install("demo-1", "ns", "secret: value\n")

        assert modes == [0o600]

    def test_uninstall(self) -> None:
        runner = Recorder()

        Helm(VClusterSettings(), runner).uninstall("demo-1", "vcluster-demo-1")

        assert runner.argv == [
            "helm",
            "uninstall",
            "demo-1",
            "--namespace",
            "vcluster-demo-1",
            "--timeout",
            "300s",
        ]

    def test_uninstalling_a_release_that_is_gone_is_fine(self) -> None:
        runner = Recorder(
            ProcessResult(
                1, "", "Error: uninstall: Release not loaded: demo-1: release: not found\n"
            )
        )

        Helm(VClusterSettings(), runner).uninstall("demo-1", "vcluster-demo-1")


class TestErrors:
    @pytest.mark.parametrize(
        ("stderr", "transient", "headline"),
        [
            (
                "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in "
                "progress",
                True,
                "Another Helm operation on this demo is still running; it will be retried.",
            ),
            (
                'Error: looks like "https://charts.loft.sh" is not a valid chart repository or '
                'cannot be reached: Get "https://charts.loft.sh/index.yaml": dial tcp: lookup '
                "charts.loft.sh: no such host",
                True,
                "A host name could not be resolved (chart repository or cluster).",
            ),
            (
                "Error: values don't meet the specifications of the schema(s) in the following "
                "chart(s):\nvcluster:\n- controlPlane: Additional property foo is not allowed",
                False,
                "The vCluster chart rejected this demo's vcluster.yaml.",
            ),
            (
                'Error: create: failed to create: secrets is forbidden: User "system:'
                'serviceaccount:demos:portal" cannot create resource "secrets"',
                False,
                "The portal's service account is not allowed to install vClusters.",
            ),
        ],
    )
    def test_helm_output_becomes_a_readable_message(
        self, stderr: str, transient: bool, headline: str
    ) -> None:
        error = describe_failure("upgrade --install", ProcessResult(1, "", stderr))

        assert error.message.startswith(headline)
        assert error.transient is transient
        assert error.detail == stderr

    def test_a_missing_chart_version_names_the_settings(self) -> None:
        runner = Recorder(
            ProcessResult(
                1, "", 'Error: chart "vcluster" version "9.9.9" not found in https://charts.loft.sh'
            )
        )

        with pytest.raises(BackendError) as raised:
            Helm(VClusterSettings(chart_version="9.9.9"), runner).upgrade_install("d", "ns", "")

        assert "VCLUSTER_CHART_VERSION=9.9.9" in raised.value.message
        assert not raised.value.transient

    def test_an_unknown_failure_keeps_helms_last_line(self) -> None:
        error = describe_failure("upgrade --install", ProcessResult(1, "", "first\nError: odd\n"))

        assert error.message == "helm upgrade --install failed: Error: odd"
        assert not error.transient


class TestRunProcess:
    def test_it_runs_without_a_shell_and_captures_output(self) -> None:
        result = run_process(
            [sys.executable, "-c", "import sys; print('out'); sys.exit('Error: boom')"], 10
        )

        assert (result.returncode, result.stdout, result.stderr) == (1, "out\n", "Error: boom\n")

    def test_it_passes_extra_environment(self) -> None:
        result = run_process(
            [sys.executable, "-c", "import os; print(os.environ['KUBECONFIG'])"],
            10,
            {"KUBECONFIG": "host.kubeconfig"},
        )

        assert result.stdout == "host.kubeconfig\n"

    def test_a_missing_binary_says_how_to_get_it(self) -> None:
        with pytest.raises(BackendError) as raised:
            run_process(["/nonexistent/helm", "version"], 5)

        assert "scripts/get-tools" in raised.value.message
        assert not raised.value.transient

    def test_a_hanging_command_is_stopped_and_retried_later(self) -> None:
        with pytest.raises(BackendError) as raised:
            run_process([sys.executable, "-c", "import time; time.sleep(10)"], 0.3)

        assert raised.value.transient
        assert "did not finish within 0 seconds" in raised.value.message


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("helm"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_project_ships_sample_charts() -> None:
    assert {chart.name for chart in CHARTS} >= {"webshop", "webshop-db", "observability"}


@pytest.mark.parametrize("chart", CHARTS, ids=lambda path: path.name)
class TestSampleCharts:
    """The demo charts under k8s/charts/ with the real pinned helm."""

    def test_it_lints(self, chart: Path) -> None:
        result = helm("lint", "--strict", str(chart), "--set", "host=demo-1.demos.example.com")

        assert result.returncode == 0, result.stdout + result.stderr

    def test_it_renders_valid_non_root_workloads_with_probes(self, chart: Path) -> None:
        result = helm(
            "template",
            "demo",
            str(chart),
            "--namespace",
            "apps",
            "--set",
            "host=demo-1.demos.example.com",
        )
        assert result.returncode == 0, result.stderr
        manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]

        for manifest in manifests:
            validate_manifest(manifest, "1.33", strict=True)
        workloads = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]
        assert workloads
        for workload in workloads:
            pod = workload["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
            for container in pod["containers"]:
                where = f"{workload['metadata']['name']}/{container['name']}"
                assert container.get("readinessProbe"), f"{where} has no readiness probe"
                assert container.get("livenessProbe"), f"{where} has no liveness probe"
                assert container["resources"]["requests"], f"{where} requests nothing"
                assert container["resources"]["limits"]["memory"], f"{where} has no memory limit"
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
        for ingress in (m for m in manifests if m["kind"] == "Ingress"):
            assert [rule["host"] for rule in ingress["spec"]["rules"]] == [
                "demo-1.demos.example.com"
            ]

    def test_it_packages(self, chart: Path, tmp_path: Path) -> None:
        result = helm("package", str(chart), "--destination", str(tmp_path))

        assert result.returncode == 0, result.stderr
        assert list(tmp_path.glob(f"{chart.name}-*.tgz"))
