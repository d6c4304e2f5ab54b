"""The vCluster backend against an emulated host cluster: apply, every phase of observe, the
failure messages, pause and resume, delete order and orphan listing (snapshots and
restores: test_vcluster_snapshots.py, test_vcluster_restore.py).

The tests play the host cluster (StatefulSet controller, kubelet, vCluster's syncer) with
`HostPlayer`, and the vCluster itself with a second API emulator reached through the kubeconfig
the backend reads from the host.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kmock
import pytest
import yaml
from chart_helm import ChartHelm
from deploy_controller import DeployController
from host_player import CONTROL_PLANE_IMAGE, HostPlayer, VClusterPlayer
from host_rbac import HostAuthorizer
from kmock_shim import EmulatorThread
from kube_support import CLUSTER, NAMESPACE, BackendFactory, ReadyzSwitch, Site
from kubernetes import client

from demos.backends.base import BackendError, ChartPhase, Phase
from demos.backends.vcluster import naming
from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.helm import ProcessResult

pytestmark = pytest.mark.kube

Deploy = Callable[[], DeployController]


def start(backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]) -> None:
    """Apply, and play a control plane that came up."""
    backend.apply(spec)
    player.run_control_plane(CLUSTER)


def up(
    backend: VClusterBackend,
    player: HostPlayer,
    vcluster_api: EmulatorThread,
    spec: dict[str, Any],
) -> None:
    """Apply and play everything up to a running vCluster with its kubeconfig exported."""
    start(backend, player, spec)
    player.export_kubeconfig(CLUSTER, vcluster_api.kubeconfig())


class TestApply:
    def test_it_creates_a_labelled_namespace_then_installs_the_chart(
        self, backend: VClusterBackend, helm: ChartHelm, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)

        namespace = host.objects["v1/namespaces", None, NAMESPACE]
        assert namespace["metadata"]["labels"] == {
            "app.kubernetes.io/managed-by": "demo-portal",
            "demo-portal/instance": "default",
            "demo-portal/cluster": CLUSTER,
            "demo-portal/demo-id": spec["demo_id"],
            "demo-portal/template": "example",
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "baseline",
        }
        binding = host.objects[
            "rbac.authorization.k8s.io/v1/rolebindings", NAMESPACE, "demo-portal-worker"
        ]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "demo-portal-demo-namespace",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "portal-backend", "namespace": "demo-portal"}
        ]
        # What helm created is the upstream chart itself, as the worker.
        assert host.exists("rbac.authorization.k8s.io/v1/roles", NAMESPACE, f"vc-{CLUSTER}")
        assert host.exists(
            "rbac.authorization.k8s.io/v1/clusterroles", None, f"vc-{CLUSTER}-v-{NAMESPACE}"
        )
        assert host.exists("apps/v1/statefulsets", NAMESPACE, CLUSTER)
        assert namespace["metadata"]["annotations"] == {
            "vcluster.loft.sh/created": "true",
            "demo-portal/kubeconfig-download": "false",
        }
        [argv] = helm.calls
        assert argv[:4] == ["helm", "upgrade", "--install", CLUSTER]
        assert argv[-2:] == ["--timeout", "300s"]
        values = yaml.safe_load(helm.values[0])
        assert values["controlPlane"]["distro"]["k8s"] == {"enabled": True, "version": "v1.35.0"}
        assert values["experimental"]["deploy"]["vcluster"]["helm"][0]["release"] == {
            "name": "shop",
            "namespace": "shop",
        }

    def test_it_is_idempotent(
        self, backend: VClusterBackend, helm: ChartHelm, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        backend.apply(spec)

        assert len(helm.calls) == 2
        assert helm.values[0] == helm.values[1]

    def test_a_schema_error_names_the_key_and_installs_nothing(
        self, backend: VClusterBackend, helm: ChartHelm, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        spec["unsafe_vcluster_overrides"] = {"controlPlane": {"statefulSet": {"replica": 2}}}

        with pytest.raises(BackendError) as raised:
            backend.apply(spec)

        assert raised.value.message.startswith(
            "vcluster.yaml: controlPlane.statefulSet.replica is not allowed"
        )
        assert not raised.value.transient
        assert helm.calls == []
        assert not host.exists("v1/namespaces", None, NAMESPACE)

    def test_it_refuses_overrides_that_break_the_portal(
        self, backend: VClusterBackend, helm: ChartHelm, spec: dict[str, Any]
    ) -> None:
        spec["vcluster_overrides"] = {"exportKubeConfig": {"server": "https://elsewhere"}}

        with pytest.raises(BackendError, match="exportKubeConfig is not allowed"):
            backend.apply(spec)
        assert helm.calls == []

    def test_it_leaves_a_namespace_it_did_not_create_alone(
        self, backend: VClusterBackend, player: HostPlayer, helm: ChartHelm, spec: dict[str, Any]
    ) -> None:
        player.add_namespace(NAMESPACE, {"team": "payments"})

        with pytest.raises(BackendError, match="was not created by this portal"):
            backend.apply(spec)
        assert helm.calls == []

    def test_it_waits_for_a_namespace_still_being_deleted(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
    ) -> None:
        backend.apply(spec)
        player.core.patch_namespace(
            NAMESPACE,
            {"metadata": {"finalizers": ["kubernetes"]}},
            _content_type="application/merge-patch+json",
        )
        player.core.delete_namespace(NAMESPACE)

        with pytest.raises(BackendError) as raised:
            backend.apply(spec)
        assert raised.value.transient

    def test_helm_errors_become_readable(
        self, backend: VClusterBackend, helm: ChartHelm, spec: dict[str, Any]
    ) -> None:
        helm.fail_with = ProcessResult(
            1, "", "Error: Kubernetes cluster unreachable: dial tcp 10.0.0.1:6443: i/o timeout\n"
        )

        with pytest.raises(BackendError) as raised:
            backend.apply(spec)

        assert raised.value.message.startswith("The host cluster cannot be reached right now.")
        assert raised.value.transient
        assert "i/o timeout" in raised.value.detail

    def test_an_unreachable_host_is_worth_retrying(self, cfg: Any, spec: dict[str, Any]) -> None:
        closed = EmulatorThread()
        with closed:
            api = closed.api_client()
        backend = VClusterBackend(cfg, host_api=api, helm_runner=ChartHelm(api))

        with pytest.raises(BackendError) as raised:
            backend.apply(spec)

        assert raised.value.transient
        assert "cannot be reached" in raised.value.message


class TestObserve:
    def test_it_walks_every_phase_to_ready_with_the_live_links(
        self,
        deploy: Deploy,
        backend: VClusterBackend,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        site: Site,
        spec: dict[str, Any],
    ) -> None:
        assert backend.observe(spec).phase == Phase.ABSENT

        backend.apply(spec)
        seen = backend.observe(spec)
        assert (seen.phase, seen.message) == (
            Phase.CREATING,
            "Starting the vCluster control plane (0/1 ready).",
        )

        player.run_control_plane(CLUSTER)
        seen = backend.observe(spec)
        assert seen.phase == Phase.CREATING
        assert seen.message == (
            f"Waiting for the vCluster to export its kubeconfig (Secret vc-{CLUSTER})."
        )

        player.export_kubeconfig(CLUSTER, vcluster_api.kubeconfig())
        seen = backend.observe(spec)
        assert seen.phase == Phase.INSTALLING
        assert "no status in kube-system/vcluster-deploy yet" in seen.message
        assert [(c.name, c.phase) for c in seen.charts] == [("shop", ChartPhase.PENDING)]

        controller = deploy()
        controller.start()  # the ConfigMap exists, no chart processed yet: phase Pending
        seen = backend.observe(spec)
        assert seen.phase == Phase.INSTALLING
        assert seen.message == "Installing charts: 0 of 1 done; waiting for shop (pending)."

        controller.attempt()
        player.sync_pod(CLUSTER, "shop", "web-7d9f-abcde")
        player.sync_ingress(CLUSTER, f"{CLUSTER}.demos.example.com", tls=True)
        site.status = 503
        seen = backend.observe(spec)
        assert seen.phase == Phase.CHECKING
        assert seen.message == (
            f"Charts installed; waiting for the live link {site.url} to answer (HTTP 503)."
        )

        site.status = 200
        seen = backend.observe(spec)
        assert seen.phase == Phase.READY
        assert seen.message == f"Ready: {site.url} answers (HTTP 200)."
        assert seen.urls == (site.url, f"https://{CLUSTER}.demos.example.com/")
        assert [(c.name, c.namespace, c.phase) for c in seen.charts] == [
            ("shop", "shop", ChartPhase.SUCCESS)
        ]

    def test_it_reaches_the_vcluster_at_the_configured_server_without_the_extra_secret(
        self,
        deploy: Deploy,
        backend: VClusterBackend,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        # Only vc-NAME, whose server is vCluster's own https://localhost:8443: the worker uses
        # VCLUSTER_API_SERVER (here the emulator) with its credentials.
        start(backend, player, spec)
        player.export_kubeconfig(
            CLUSTER, vcluster_api.kubeconfig(server="https://localhost:8443"), portal=False
        )
        deploy().attempt()

        assert backend.observe(spec).phase == Phase.READY

    def test_a_vcluster_api_the_worker_cannot_reach_is_explained(
        self,
        make_backend: BackendFactory,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        gone = EmulatorThread()
        with gone:
            unreachable = gone.url
        backend = make_backend(api_server=unreachable)
        up(backend, player, vcluster_api, spec)

        seen = backend.observe(spec)

        assert seen.phase == Phase.INSTALLING
        assert seen.message.startswith(f"The worker cannot reach the vCluster API at {unreachable}")
        assert "VCLUSTER_API_SERVER" in seen.message

    def test_it_waits_while_the_vcluster_api_is_not_ready(
        self,
        backend: VClusterBackend,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        readyz: ReadyzSwitch,
        spec: dict[str, Any],
    ) -> None:
        up(backend, player, vcluster_api, spec)
        readyz.ready = False

        seen = backend.observe(spec)

        assert seen.phase == Phase.CREATING
        assert seen.message.startswith("The vCluster API is starting")

    def test_it_reports_ready_without_charts_or_http_check(
        self,
        make_backend: BackendFactory,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        backend = make_backend(http_check=False)
        spec["charts"] = []
        up(backend, player, vcluster_api, spec)

        seen = backend.observe(spec)

        assert (seen.phase, seen.urls) == (Phase.READY, (spec["entry_url"],))

    def test_a_paused_cluster_is_reported_paused(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        start(backend, player, spec)
        backend.pause(CLUSTER)

        assert backend.observe(spec).phase == Phase.PAUSED


class TestFailures:
    """Each way a start goes wrong, and the message a salesperson reads."""

    def test_control_plane_image_pull_backoff(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        player.run_control_plane(
            CLUSTER, waiting="ImagePullBackOff", waiting_message="Back-off pulling image"
        )

        seen = backend.observe(spec)

        assert seen.phase == Phase.FAILED
        assert seen.message == (
            f"The vCluster control plane failed: image pull error for {CONTROL_PLANE_IMAGE}."
        )
        assert "Back-off pulling image" in seen.detail

    def test_a_first_image_pull_error_is_retried(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        player.run_control_plane(CLUSTER, waiting="ErrImagePull")

        seen = backend.observe(spec)

        assert seen.phase == Phase.CREATING
        assert seen.message.endswith(f"pulling {CONTROL_PLANE_IMAGE} failed; retrying.")

    @pytest.mark.parametrize(("restarts", "phase"), [(1, Phase.CREATING), (3, Phase.FAILED)])
    def test_crash_loops_fail_after_a_few_restarts(
        self,
        backend: VClusterBackend,
        player: HostPlayer,
        spec: dict[str, Any],
        restarts: int,
        phase: Phase,
    ) -> None:
        backend.apply(spec)
        player.run_control_plane(
            CLUSTER, waiting="CrashLoopBackOff", restarts=restarts, last_terminated=("Error", 1)
        )

        seen = backend.observe(spec)

        assert seen.phase == phase
        assert "container `syncer`" in seen.message
        assert "(Error, exit code 1)" in seen.message

    def test_pending_storage_with_a_missing_storage_class(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        player.bind_volume(CLUSTER, phase="Pending", storage_class="fast-ssd")
        player.pending_control_plane(
            CLUSTER, "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        )

        seen = backend.observe(spec)

        assert seen.phase == Phase.FAILED
        assert seen.message == (
            "The vCluster control plane cannot get storage: storage class `fast-ssd` does not "
            "exist on the host cluster. Set VCLUSTER_STORAGE_CLASS to one that does."
        )

    def test_pending_storage_without_a_default_storage_class(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        player.bind_volume(CLUSTER, phase="Pending", storage_class=None)

        seen = backend.observe(spec)

        assert seen.phase == Phase.FAILED
        assert "no default storage class" in seen.message

    def test_pending_storage_that_may_still_bind_is_waited_for(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        player.add_storage_class("standard")
        player.bind_volume(CLUSTER, phase="Pending")
        player.pending_control_plane(CLUSTER, "0/1 nodes are available: waiting for volume")

        seen = backend.observe(spec)

        assert seen.phase == Phase.CREATING
        assert seen.message == f"Waiting for storage: volume claim data-{CLUSTER}-0 is pending."

    def test_a_full_host_is_waited_for(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        player.bind_volume(CLUSTER)
        player.pending_control_plane(CLUSTER, "0/3 nodes are available: 3 Insufficient cpu.")

        seen = backend.observe(spec)

        assert seen.phase == Phase.CREATING
        assert seen.message == (
            "The vCluster control plane: waiting for room on the host cluster "
            "(0/3 nodes are available: 3 Insufficient cpu.)."
        )

    def test_the_quota_refusing_the_control_plane(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        player.warn(
            CLUSTER,
            "FailedCreate",
            f'create Pod {CLUSTER}-0 in StatefulSet {CLUSTER} failed error: pods "{CLUSTER}-0" '
            f"is forbidden: exceeded quota: vc-{CLUSTER}, requested: requests.memory=256Mi, "
            "used: requests.memory=0, limited: requests.memory=128Mi",
        )

        seen = backend.observe(spec)

        assert seen.phase == Phase.FAILED
        assert seen.message.startswith(
            "The vCluster control plane failed: refused by the demo's resource limits"
        )
        assert "Raise the template's quota" in seen.message

    def test_a_chart_pod_that_cannot_pull_its_image(
        self,
        deploy: Deploy,
        backend: VClusterBackend,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        up(backend, player, vcluster_api, spec)
        deploy().attempt()
        player.sync_pod(
            CLUSTER,
            "shop",
            "web-7d9f-abcde",
            image="ghcr.io/acme/shop:1.2",
            waiting="ImagePullBackOff",
        )

        seen = backend.observe(spec)

        assert seen.phase == Phase.FAILED
        assert seen.message == "Chart `shop` failed: image pull error for ghcr.io/acme/shop:1.2."

    def test_a_link_that_does_not_answer_yet_says_why_when_a_pod_shows_it(
        self,
        deploy: Deploy,
        backend: VClusterBackend,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        site: Site,
        spec: dict[str, Any],
    ) -> None:
        up(backend, player, vcluster_api, spec)
        deploy().attempt()
        player.sync_pod(
            CLUSTER, "shop", "web-1", image="ghcr.io/acme/shop:1.2", waiting="ErrImagePull"
        )
        site.status = 502

        seen = backend.observe(spec)

        assert seen.phase == Phase.CHECKING
        assert seen.message == (
            f"Charts installed; waiting for the live link {site.url} to answer (HTTP 502). "
            "Chart `shop`: pulling ghcr.io/acme/shop:1.2 failed; retrying."
        )

    def test_a_failed_chart_is_retried_and_a_later_success_counts(
        self,
        deploy: Deploy,
        backend: VClusterBackend,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        # Upstream retries DeployHelmCharts every 10 s and overwrites the chart's entry on a
        # later success (pkg/controllers/deploy/start.go and deploy.go at v0.36.1): a Failed
        # phase is "retrying", and only the portal's own deadline fails the demo.
        up(backend, player, vcluster_api, spec)
        controller = deploy()
        controller.attempt({"shop": "chart webshop-0.1.0 not found in registry.example.com"})
        assert controller.annotation()["phase"] == "Failed"

        seen = backend.observe(spec)

        assert seen.phase == Phase.INSTALLING
        assert seen.message == (
            "Chart `shop` failed to install and vCluster is retrying it: InstallFailed chart "
            "webshop-0.1.0 not found in registry.example.com."
        )
        assert seen.charts[0].phase == ChartPhase.RETRYING

        controller.attempt()
        seen = backend.observe(spec)

        assert seen.phase == Phase.READY
        assert seen.charts[0].phase == ChartPhase.SUCCESS

    def test_a_chart_after_a_failing_one_is_not_processed_yet(
        self,
        deploy: Deploy,
        backend: VClusterBackend,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        # ProcessHelmChart returns at the first failure, so later charts have no entry yet.
        second = {**spec["charts"][0], "name": "shop-db", "chart": "webshop-db"}
        spec["charts"] = [spec["charts"][0], second]
        up(backend, player, vcluster_api, spec)
        deploy().attempt({"shop": "context deadline exceeded"})

        seen = backend.observe(spec)

        assert seen.phase == Phase.INSTALLING
        assert [(c.name, c.phase) for c in seen.charts] == [
            ("shop", ChartPhase.RETRYING),
            ("shop-db", ChartPhase.PENDING),
        ]

    def test_the_quota_refusing_a_chart_inside_the_vcluster(
        self,
        deploy: Deploy,
        backend: VClusterBackend,
        player: HostPlayer,
        vplayer: VClusterPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        up(backend, player, vcluster_api, spec)
        deploy().attempt()
        vplayer.warn(
            "shop",
            "web-7d9f-abcde",
            "SyncError",
            'Error syncing to physical cluster: pods "web-7d9f-abcde-x-shop-x-demo" is forbidden: '
            f"exceeded quota: vc-{CLUSTER}, requested: requests.cpu=2, used: requests.cpu=3800m, "
            "limited: requests.cpu=4",
        )

        seen = backend.observe(spec)

        assert seen.phase == Phase.FAILED
        assert seen.message.startswith("Chart `shop` failed: refused by the demo's resource limits")

    def test_a_host_api_server_error_is_worth_retrying(
        self, backend: VClusterBackend, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        host.emulator[f"get /api/v1/namespaces/{NAMESPACE}"] << kmock.KubernetesError(
            status=503, message="etcdserver: leader changed"
        )

        with pytest.raises(BackendError) as raised:
            backend.observe(spec)

        assert raised.value.transient
        assert "HTTP 503" in raised.value.message

    def test_a_forbidden_call_names_the_permission_problem(
        self, backend: VClusterBackend, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        host.emulator[f"get /api/v1/namespaces/{NAMESPACE}"] << kmock.KubernetesError(
            status=403, message="forbidden"
        )

        with pytest.raises(BackendError) as raised:
            backend.observe(spec)

        assert not raised.value.transient
        assert raised.value.message.startswith(
            f"The portal is not allowed to read namespace {NAMESPACE} on the host cluster"
        )

    def test_the_api_ingress_is_no_live_link(
        self,
        deploy: Deploy,
        make_backend: BackendFactory,
        host: EmulatorThread,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        site: Site,
        spec: dict[str, Any],
    ) -> None:
        backend = make_backend(api_ingress_host="{name}-api.{base_domain}")
        up(backend, player, vcluster_api, spec)
        deploy().attempt()
        player.sync_ingress(CLUSTER, f"{CLUSTER}.demos.example.com", tls=True)
        # The chart rendered its own Ingress for the API (controlPlane.ingress) on the host.
        api_ingresses = [
            obj
            for key, obj in host.objects.items()
            if key[0] == kmock.resource("networking.k8s.io/v1/ingresses") and not obj.deleted
        ]
        assert len(api_ingresses) == 2

        seen = backend.observe(spec)

        assert seen.phase == Phase.READY
        assert seen.urls == (site.url, f"https://{CLUSTER}.demos.example.com/")
        assert not any("-api." in url for url in seen.urls)

    def test_pods_the_pod_security_level_refuses_fail_the_demo_with_the_reason(
        self,
        deploy: Deploy,
        backend: VClusterBackend,
        player: HostPlayer,
        vplayer: VClusterPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        # Inside the vCluster, Pod Security admission refuses the pods; the ReplicaSet records
        # FailedCreate with the API server's message (k8s.io/pod-security-admission).
        up(backend, player, vcluster_api, spec)
        deploy().attempt()
        vplayer.warn(
            "shop",
            "web-7d9f",
            "FailedCreate",
            'Error creating: pods "web-7d9f-x2z4q" is forbidden: violates PodSecurity '
            '"baseline:latest": privileged (container "web" must not set '
            "securityContext.privileged=true)",
            kind="ReplicaSet",
        )

        seen = backend.observe(spec)

        assert seen.phase == Phase.FAILED
        assert seen.message.startswith(
            "Chart `shop` failed: its pods break the demo's pod security level `baseline`"
        )
        assert "securityContext.privileged=true" in seen.message


class TestPauseResume:
    def test_pause_patches_like_the_cli_then_stops_the_synced_pods(
        self,
        make_backend: BackendFactory,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
    ) -> None:
        backend = make_backend(clock=lambda: datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC))
        start(backend, player, spec)
        synced = [player.sync_pod(CLUSTER, "shop", f"web-{i}") for i in range(2)]

        assert backend.pause(CLUSTER) is False
        statefulset = host.objects["apps/v1/statefulsets", NAMESPACE, CLUSTER]
        assert statefulset["metadata"]["annotations"] == {
            "loft.sh/paused": "true",
            "loft.sh/paused-replicas": "1",
            "loft.sh/paused-date": "2026-03-01T12:30:05.123Z",
        }
        assert statefulset["spec"]["replicas"] == 0
        patch = [r for r in host.emulator if r.method == "PATCH"][-1]
        assert patch.headers["Content-Type"] == "application/merge-patch+json"

        # The control plane is still stopping: nothing else happens yet.
        assert backend.pause(CLUSTER) is False
        assert all(host.exists("v1/pods", NAMESPACE, pod) for pod in synced)

        player.stop_control_plane(CLUSTER)
        assert backend.pause(CLUSTER) is False
        assert backend.pause(CLUSTER) is True
        for pod in synced:
            assert host.objects["v1/pods", NAMESPACE, pod].deleted
        # Everything else stays: the data and the exported kubeconfig.
        assert not host.objects["v1/persistentvolumeclaims", NAMESPACE, f"data-{CLUSTER}-0"].deleted

    def test_resume_restores_the_replicas_and_removes_the_annotations(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
    ) -> None:
        start(backend, player, spec)
        player.apps.patch_namespaced_stateful_set(
            CLUSTER,
            NAMESPACE,
            {"spec": {"replicas": 2}},
            _content_type="application/merge-patch+json",
        )
        backend.pause(CLUSTER)

        assert backend.resume(CLUSTER) is True

        statefulset = host.objects["apps/v1/statefulsets", NAMESPACE, CLUSTER]
        assert statefulset["spec"]["replicas"] == 2
        assert statefulset["metadata"].get("annotations", {}) == {}

    def test_resume_of_a_running_cluster_changes_nothing(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
    ) -> None:
        start(backend, player, spec)
        before = len(host.objects["apps/v1/statefulsets", NAMESPACE, CLUSTER].history)

        assert backend.resume(CLUSTER) is True
        assert len(host.objects["apps/v1/statefulsets", NAMESPACE, CLUSTER].history) == before

    def test_a_missing_cluster_cannot_be_paused(self, backend: VClusterBackend) -> None:
        with pytest.raises(BackendError, match="does not exist any more") as raised:
            backend.pause(CLUSTER)
        assert not raised.value.transient


class TestDelete:
    def test_it_deletes_in_the_safe_order_and_leaves_nothing(
        self,
        make_backend: BackendFactory,
        helm: ChartHelm,
        host: EmulatorThread,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        backend = make_backend()
        up(backend, player, vcluster_api, spec)
        log: list[str] = []
        helm.log = log
        backend.host.api.log = log

        rounds = 0
        while not backend.delete(CLUSTER):
            rounds += 1
            assert rounds < 5

        deletes = [entry for entry in log if entry.startswith(("helm", "DELETE"))]
        assert deletes == [
            "helm uninstall",
            f"DELETE /api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/data-{CLUSTER}-0",
            f"DELETE /api/v1/namespaces/{NAMESPACE}",
        ]
        assert helm.calls[-1] == [
            "helm",
            "uninstall",
            CLUSTER,
            "--namespace",
            NAMESPACE,
            "--timeout",
            "300s",
        ]
        left = [key for key, obj in host.objects.items() if not obj.deleted]
        assert left == []
        assert backend.observe(spec).phase == Phase.ABSENT

    def test_it_waits_for_a_terminating_volume_claim(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
    ) -> None:
        start(backend, player, spec)
        player.core.patch_namespaced_persistent_volume_claim(
            f"data-{CLUSTER}-0",
            NAMESPACE,
            {"metadata": {"finalizers": ["kubernetes.io/pvc-protection"]}},
            _content_type="application/merge-patch+json",
        )

        assert backend.delete(CLUSTER) is False
        pvc = host.objects["v1/persistentvolumeclaims", NAMESPACE, f"data-{CLUSTER}-0"]
        assert pvc["metadata"]["deletionTimestamp"]
        assert backend.delete(CLUSTER) is False
        assert not host.objects["v1/namespaces", None, NAMESPACE].deleted

    def test_deleting_what_is_gone_is_done(self, backend: VClusterBackend, helm: ChartHelm) -> None:
        assert backend.delete(CLUSTER) is True
        assert helm.calls == []

    def test_it_never_deletes_a_foreign_namespace(
        self, backend: VClusterBackend, player: HostPlayer
    ) -> None:
        player.add_namespace(NAMESPACE, {"team": "payments"})

        with pytest.raises(BackendError, match="not created by this portal"):
            backend.delete(CLUSTER)


class TestListAndKubeconfig:
    def test_it_lists_only_this_portals_clusters(
        self, backend: VClusterBackend, player: HostPlayer, spec: dict[str, Any]
    ) -> None:
        backend.apply(spec)
        backend.apply({**spec, "cluster_name": "demo-2", "demo_id": "2222"})
        player.add_namespace(
            "vcluster-staging-1",
            naming.portal_labels("staging", "staging-1", "3333"),
        )
        player.add_namespace("kube-system", {})

        clusters = sorted(backend.list_clusters(), key=lambda c: c.name)

        assert [(c.name, c.demo_id) for c in clusters] == [
            (CLUSTER, spec["demo_id"]),
            ("demo-2", "2222"),
        ]
        assert all(c.created_at is not None for c in clusters)

    def test_a_kubeconfig_only_when_allowed_and_exposed(
        self,
        make_backend: BackendFactory,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        hidden = make_backend()
        exposed = make_backend(external_server="https://{name}-api.{base_domain}")
        spec["allow_kubeconfig_download"] = True
        start(exposed, player, spec)
        player.export_kubeconfig(CLUSTER, vcluster_api.kubeconfig(), portal=False)

        assert hidden.kubeconfig(CLUSTER) is None
        kubeconfig = yaml.safe_load(exposed.kubeconfig(CLUSTER) or "")
        assert kubeconfig["clusters"][0]["cluster"]["server"] == (
            f"https://{CLUSTER}-api.demos.example.com"
        )
        assert kubeconfig["users"][0]["user"]["token"] == "test-token"

    def test_no_kubeconfig_when_the_template_does_not_allow_it(
        self,
        make_backend: BackendFactory,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        spec: dict[str, Any],
    ) -> None:
        backend = make_backend(external_server="https://{name}-api.{base_domain}")
        up(backend, player, vcluster_api, spec)

        assert backend.kubeconfig(CLUSTER) is None


class TestHostRights:
    """The worker installs the upstream chart with exactly the rights the manifests give it."""

    def test_pod_security_is_enforced_on_the_namespace_at_most_baseline(
        self, make_backend: BackendFactory, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        make_backend(pod_security_standard="restricted").apply(spec)

        labels = host.objects["v1/namespaces", None, NAMESPACE]["metadata"]["labels"]
        # The chart's control plane runs as root (values.yaml runAsUser: 0): restricted would
        # refuse it on the host, so the host enforces baseline and warns at restricted.
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"

    def test_a_lost_worker_binding_is_recreated_on_the_next_apply(
        self,
        backend: VClusterBackend,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
    ) -> None:
        backend.apply(spec)
        client.RbacAuthorizationV1Api(player.api).delete_namespaced_role_binding(
            "demo-portal-worker", NAMESPACE
        )

        backend.apply(spec)

        assert host.exists(
            "rbac.authorization.k8s.io/v1/rolebindings", NAMESPACE, "demo-portal-worker"
        )

    @pytest.mark.parametrize("kube_version", ["1.33.0", "1.35.0"])
    def test_the_chart_installs_at_both_host_versions(
        self,
        helm: ChartHelm,
        backend: VClusterBackend,
        authorizer: HostAuthorizer,
        spec: dict[str, Any],
        kube_version: str,
    ) -> None:
        helm.kube_version = kube_version

        backend.apply(spec)

        assert authorizer.refusals == []

    def test_without_a_right_the_chart_role_grants_the_install_is_refused(
        self,
        host: EmulatorThread,
        helm: ChartHelm,
        backend: VClusterBackend,
        production_rbac_manifests: list[dict[str, Any]],
        spec: dict[str, Any],
    ) -> None:
        # The escalation rule at work: the chart's Role grants `create` on events
        # (templates/role.yaml), so a worker without it cannot create that Role.
        host.set_authorizer(HostAuthorizer(without_event_create(production_rbac_manifests)))

        with pytest.raises(BackendError) as raised:
            backend.apply(spec)

        assert "attempting to grant RBAC permissions not currently held" in raised.value.detail
        assert not host.exists("rbac.authorization.k8s.io/v1/roles", NAMESPACE, f"vc-{CLUSTER}")


def without_event_create(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifests with `create` taken off every rule that grants it on events."""
    changed = copy.deepcopy(manifests)
    for obj in changed:
        for rule in obj.get("rules") or []:
            if "events" in rule.get("resources", []) and "create" in rule.get("verbs", []):
                rule["verbs"] = [verb for verb in rule["verbs"] if verb != "create"]
    return changed
