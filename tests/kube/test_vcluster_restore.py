"""Restores: with the `vcluster` CLI only, never from container:// archives, and an interrupted
`vcluster create --restore` detected from the markers vCluster 0.36.1 leaves, cleaned up as the
CLI itself cleans up after a failed restore, and run again (restore_player.py plays the CLI).

Upstream references are to loft-sh/vcluster at tag v0.36.1 (commit 0c3bb166):
- container:// snapshots are a path in the vCluster's own container, checked to be on its data
  volume (pkg/snapshot/options.go:76-82, pkg/snapshot/pod/pod.go:341-368) - the volume archiving
  deletes with the demo;
- the restore quota, pause for restore, restore pod and resume: pkg/cli/create_helm.go:589-663,
  pkg/cli/restore_helm.go:28-182, pkg/lifecycle/lifecycle.go:216-256, 360-404,
  pkg/constants/annotation.go:7-8, 37-42, pkg/snapshot/pod/pod.go:99-192, 284-315;
- after a failed restore the CLI uninstalls the release (create_helm.go:650-662) and deletes the
  quota (create_helm.go:609-615) and the pod (pod.go:128-136).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helm import ChartHelm
from host_rbac import WORKER_TOKEN
from kmock_shim import EmulatorThread
from kube_support import CLUSTER, NAMESPACE, BackendFactory
from restore_player import RESTORE_QUOTA, RESTORING, RestorePlayer

from demos.backends import get_backend
from demos.backends.base import BackendError
from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.helm import ProcessResult
from demos.engine.lifecycle import archive_refusal

S3_ARCHIVES = "s3://demo-archives/{name}-{date}.tar.gz?region=eu-west-1"
LOCATION = f"s3://demo-archives/{CLUSTER}-20260301-120000.tar.gz?region=eu-west-1"
CLI = "/usr/local/bin/vcluster"


class TestWhereRestoreCannotWork:
    def test_without_the_cli_archives_cannot_be_restored(
        self, make_backend: BackendFactory, spec: dict[str, Any]
    ) -> None:
        backend = make_backend(snapshot_url=S3_ARCHIVES)

        assert backend.can_restore is False
        assert "needs the vcluster CLI (VCLUSTER_CLI)" in backend.restore_unavailable_message
        with pytest.raises(BackendError, match="VCLUSTER_CLI") as raised:
            backend.restore(spec, LOCATION)
        assert not raised.value.transient

    def test_container_archives_go_with_the_demo_so_they_cannot_be_restored(
        self, make_backend: BackendFactory
    ) -> None:
        backend = make_backend(
            vcluster_cli=CLI, snapshot_url="container:///data/snapshots/{name}.tar.gz"
        )

        assert backend.can_restore is False
        assert backend.restore_unavailable_message == (
            "Archives cannot be restored on this portal: VCLUSTER_SNAPSHOT_URL is a container:// "
            "path, on the demo's own volume, which archiving deletes with the demo. Use an s3:// "
            "or oci:// destination; pausing still keeps demos for later."
        )

    def test_an_old_container_archive_is_refused_even_where_restores_work(
        self, make_backend: BackendFactory, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        ran: list[list[str]] = []
        backend = make_backend(
            vcluster_cli=CLI,
            snapshot_url=S3_ARCHIVES,
            cli_runner=lambda argv, timeout, env=None: ran.append(list(argv)) or ProcessResult(0),
        )

        with pytest.raises(BackendError, match="own volume") as raised:
            backend.restore(spec, f"container:///data/snapshots/{CLUSTER}.tar.gz")

        assert not raised.value.transient
        assert ran == []
        assert not host.exists("v1/namespaces", None, NAMESPACE)

    def test_the_portal_then_offers_no_archive_to_restore(self, settings: Any) -> None:
        """The pages read the backend's `can_restore`: `archive_refusal` hides Archive (and turns
        an archive at expiry into a pause), and `finish_archive` records it as `restorable`."""
        settings.DEMO_BACKEND = "vcluster"
        settings.VCLUSTER_CLI = CLI
        settings.VCLUSTER_SNAPSHOT_URL = "container:///data/snapshots/{name}.tar.gz"
        get_backend.cache_clear()
        try:
            assert "container:// path" in (archive_refusal() or "")
        finally:
            get_backend.cache_clear()


@pytest.fixture
def cli(helm: ChartHelm, host: EmulatorThread) -> RestorePlayer:
    """The `vcluster` CLI, acting on the host as the worker (it runs with its kubeconfig)."""
    return RestorePlayer(helm, host.api_client(token=WORKER_TOKEN))


@pytest.fixture
def restorer(make_backend: BackendFactory, cli: RestorePlayer) -> VClusterBackend:
    return make_backend(vcluster_cli=CLI, snapshot_url=S3_ARCHIVES, cli_runner=cli)


def statefulset(host: EmulatorThread) -> Any:
    return host.objects["apps/v1/statefulsets", NAMESPACE, CLUSTER]


def restore_pods(host: EmulatorThread) -> list[str]:
    return [
        name
        for (resource, namespace, name), obj in host.objects.items()
        if resource.plural == "pods"
        and namespace == NAMESPACE
        and not obj.deleted
        and obj["metadata"]["labels"].get("app") == "vcluster-snapshot"
    ]


def assert_restored(host: EmulatorThread) -> None:
    """What a restore that ran to its end leaves: a resumed control plane and no markers."""
    annotations = statefulset(host)["metadata"].get("annotations") or {}
    assert RESTORING not in annotations
    assert statefulset(host)["spec"]["replicas"] == 1
    assert not host.exists("v1/resourcequotas", NAMESPACE, RESTORE_QUOTA)
    assert restore_pods(host) == []


@pytest.mark.kube
class TestRestore:
    def test_with_the_cli_it_creates_the_vcluster_from_the_archive(
        self, make_backend: BackendFactory, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        ran: list[tuple[list[str], str, dict[str, str] | None]] = []

        def cli(argv: Any, timeout: float, env: Any = None) -> ProcessResult:
            values = Path(argv[argv.index("--values") + 1]).read_text()
            ran.append((list(argv), values, env))
            return ProcessResult(0)

        backend = make_backend(
            vcluster_cli=CLI,
            snapshot_url="oci://robot:s3cret@registry.example.com/archives/{name}:{date}",
            kubeconfig="/etc/portal/host.kubeconfig",
            context="kind-demos",
            cli_runner=cli,
        )
        location = f"oci://registry.example.com/archives/{CLUSTER}:20260301-120000"

        backend.restore(spec, location)

        [(argv, values, env)] = ran
        assert argv[:5] == [CLI, "create", CLUSTER, "--namespace", NAMESPACE]
        assert argv[argv.index("--restore") + 1] == (
            f"oci://robot:s3cret@registry.example.com/archives/{CLUSTER}:20260301-120000"
        )
        assert argv[argv.index("--chart-version") + 1] == "0.36.1"
        assert "--connect=false" in argv
        assert argv[-2:] == ["--context", "kind-demos"]
        assert env == {"KUBECONFIG": "/etc/portal/host.kubeconfig"}
        assert (
            yaml.safe_load(values)["controlPlane"]["statefulSet"]["labels"]["demo-portal/cluster"]
            == CLUSTER
        )
        assert host.exists("v1/namespaces", None, NAMESPACE)

    def test_a_finished_restore_is_not_run_again(
        self,
        restorer: VClusterBackend,
        cli: RestorePlayer,
        helm: ChartHelm,
        host: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        restorer.restore(spec, LOCATION)
        assert_restored(host)

        restorer.restore(spec, LOCATION)  # the job, run again after a lost acknowledgement

        assert len(cli.calls) == 1
        assert not [call for call in helm.calls if call[1] == "uninstall"]

    @pytest.mark.parametrize(
        ("kill_at", "left"),
        [
            # Killed during the install: only the quota that keeps the control plane from
            # starting (create_helm.go:589-605); the StatefulSet is there, with its replica.
            ("installed", {"quota": True, "restoring": False, "replicas": 1, "pods": 0}),
            # Killed while the restore pod ran: the control plane paused for the restore and
            # the pod; pauseVCluster had deleted the quota (restore_helm.go:149-182).
            ("restoring", {"quota": False, "restoring": True, "replicas": 0, "pods": 1}),
        ],
    )
    def test_an_interrupted_restore_is_cleaned_up_and_run_again(
        self,
        restorer: VClusterBackend,
        cli: RestorePlayer,
        helm: ChartHelm,
        host: EmulatorThread,
        spec: dict[str, Any],
        kill_at: str,
        left: dict[str, Any],
    ) -> None:
        cli.kill_at = kill_at
        with pytest.raises(BackendError, match="did not finish") as raised:
            restorer.restore(spec, LOCATION)
        assert raised.value.transient
        annotations = statefulset(host)["metadata"].get("annotations") or {}
        assert {
            "quota": host.exists("v1/resourcequotas", NAMESPACE, RESTORE_QUOTA),
            "restoring": annotations.get(RESTORING) == "true",
            "replicas": statefulset(host)["spec"]["replicas"],
            "pods": len(restore_pods(host)),
        } == left

        cli.kill_at = ""
        helm.log = log = []
        restorer.host.api.log = log
        restorer.restore(spec, LOCATION)  # the job's retry

        assert len(cli.calls) == 2
        # Cleaned up as the CLI does after a failed restore, before restoring again.
        assert log.index("helm uninstall") < log.index("vcluster create")
        assert_restored(host)

    def test_locations_come_from_the_template_without_credentials(
        self, make_backend: BackendFactory
    ) -> None:
        backend = make_backend(
            snapshot_url="oci://robot:s3cret@registry.example.com/archives/{name}:{date}",
            clock=lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        )

        assert backend.snapshot_location(CLUSTER) == (
            f"oci://registry.example.com/archives/{CLUSTER}:20260301-120000"
        )

    def test_without_a_destination_there_is_no_location(self, backend: VClusterBackend) -> None:
        with pytest.raises(BackendError, match="VCLUSTER_SNAPSHOT_URL"):
            backend.snapshot_location(CLUSTER)
