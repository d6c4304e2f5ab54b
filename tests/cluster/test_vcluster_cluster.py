"""The vCluster backend end to end on a real host cluster, through the portal's real worker.

Opt in: `make cluster-test` creates a kind or k3d cluster with ingress-nginx (SSL passthrough), an
in-cluster chart repository serving k8s/charts, MinIO and the worker's RBAC, then runs this
module with the settings a deployment whose worker sits outside the cluster would use
(docs/vcluster.md, "Testing against a real cluster"). Without DEMO_TEST_KUBECONFIG it is skipped.

Every demo is started, paused, archived, restored and deleted through `demos.engine.lifecycle` and a
real `manage.py runworker` process, which holds only the worker's ServiceAccount token
(VCLUSTER_KUBECONFIG). The admin kubeconfig (DEMO_TEST_KUBECONFIG) is used for nothing but
looking: what a delete left behind, whether NetworkPolicies exist.
"""

from __future__ import annotations

import base64
import os
import secrets
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from demos.backends.vcluster import naming
from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.kube import host_api_client, vcluster_api_client
from demos.engine import lifecycle
from demos.engine.lifecycle import Actor
from demos.models import Demo, DemoTemplate, Snapshot, SnapshotKind, Status
from demos.seed import seed_templates
from tests.cluster import harness
from tests.conftest import WorkerProcess

ADMIN_KUBECONFIG = os.environ.get("DEMO_TEST_KUBECONFIG", "")
ADMIN_CONTEXT = os.environ.get("DEMO_TEST_CONTEXT", "")
CHART_REPO = os.environ.get("DEMO_TEST_CHART_REPO", "")
HTTPS_PORT = int(os.environ.get("DEMO_TEST_HTTPS_PORT", "443"))
# Each wait: the first run pulls the vCluster, Kubernetes, PostgreSQL and nginx images.
TIMEOUT = float(os.environ.get("DEMO_TEST_TIMEOUT", "900"))
WORKER_USER = f"system:serviceaccount:{harness.WORKER_NAMESPACE}:{harness.WORKER_SERVICE_ACCOUNT}"

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not ADMIN_KUBECONFIG,
        reason="needs a real cluster: run `make cluster-test` (it creates one and sets "
        "DEMO_TEST_KUBECONFIG and the VCLUSTER_* settings)",
    ),
    pytest.mark.django_db(transaction=True),
]


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def settings_under_test() -> VClusterSettings:
    """The portal's vCluster settings, read from the environment exactly as a deployment does."""
    cfg = VClusterSettings.from_django()
    assert cfg.kubeconfig, "VCLUSTER_KUBECONFIG is the worker's kubeconfig"
    assert cfg.kubeconfig != ADMIN_KUBECONFIG, (
        "VCLUSTER_KUBECONFIG must be the worker's ServiceAccount kubeconfig, not the admin's"
    )
    return cfg


@pytest.fixture
def admin() -> Iterator[client.ApiClient]:
    """Admin access, for inspection only (leftovers, NetworkPolicies): never for the portal."""
    api = config.new_client_from_config(config_file=ADMIN_KUBECONFIG, context=ADMIN_CONTEXT or None)
    yield api
    api.close()


@pytest.fixture
def start_worker(worker_env: dict[str, str]) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts the real worker process, optionally with settings changed for one test."""
    started: list[WorkerProcess] = []

    def start(**changes: str) -> WorkerProcess:
        process = WorkerProcess({**worker_env, **changes})
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def webshop(db: None) -> DemoTemplate:
    """The seeded web shop template, its charts pulled from the in-cluster chart repository."""
    assert CHART_REPO, "DEMO_TEST_CHART_REPO is set by scripts/cluster-test"
    seed_templates()
    template = DemoTemplate.objects.get(slug="webshop")
    template.charts.update(repository=CHART_REPO)
    template.entry_url = harness.entry_url("${DEMO_HOST}", HTTPS_PORT)
    template.provisioning_timeout = timedelta(seconds=TIMEOUT)
    template.save()
    return template


@pytest.fixture
def clean_up(settings_under_test: VClusterSettings) -> Iterator[None]:
    """Whatever a failed test left running is deleted (as the worker) before the next starts."""
    yield
    backend = VClusterBackend(settings_under_test)
    deadline = time.monotonic() + 600
    for cluster in backend.list_clusters():
        while not backend.delete(cluster.name) and time.monotonic() < deadline:
            time.sleep(3)


# --- Helpers ----------------------------------------------------------------------------------


def wait_for(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(3)
    pytest.fail(f"{what} did not happen within {timeout:.0f} seconds")


def reach(demo: Demo, *wanted: Status) -> Demo:
    """Wait until the worker moves `demo` to one of `wanted`; a failure ends the wait at once."""

    def settled() -> bool:
        demo.refresh_from_db()
        return demo.status in (*wanted, Status.FAILED)

    wait_for(settled, f"Demo {demo.cluster_name} reaching {'/'.join(wanted)}")
    assert demo.status in wanted, f"{demo.status}: {demo.error_message}\n{demo.error_detail}"
    return demo


def fetch(url: str) -> tuple[int, str]:
    """GET through the ingress controller; its certificate is self-signed, so not verified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=15, context=context) as response:  # noqa: S310
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def inside(cfg: VClusterSettings, name: str) -> client.CoreV1Api:
    """The vCluster's own API, reached as the worker reaches it: VCLUSTER_API_SERVER through the
    SSL-passthrough Ingress, verifying vCluster's certificate against that host name."""
    backend = VClusterBackend(cfg)
    namespace = naming.namespace_for(name, cfg.namespace_prefix)
    secret = backend.host.read_secret(namespace, naming.kubeconfig_secret(name))
    assert secret is not None, f"no Secret {naming.kubeconfig_secret(name)}"
    assert secret.data, f"Secret {naming.kubeconfig_secret(name)} is empty"
    kubeconfig = yaml.safe_load(base64.b64decode(secret.data["config"]))
    server = cfg.fill(cfg.api_server, name=name, namespace=namespace)
    return client.CoreV1Api(vcluster_api_client(kubeconfig, server))


def nothing_left(admin: client.ApiClient, cfg: VClusterSettings, name: str) -> list[str]:
    namespace = naming.namespace_for(name, cfg.namespace_prefix)
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)

    def plain(items: list[Any]) -> list[dict[str, Any]]:
        return [admin.sanitize_for_serialization(item) for item in items]

    return harness.leftovers(
        name=name,
        namespace=namespace,
        namespaces=plain(core.list_namespace().items),
        cluster_roles=plain(rbac.list_cluster_role().items),
        cluster_role_bindings=plain(rbac.list_cluster_role_binding().items),
        persistent_volumes=plain(core.list_persistent_volume().items),
    )


def assert_nothing_left(admin: client.ApiClient, cfg: VClusterSettings, name: str) -> None:
    # Volumes of the default provisioners go a few seconds after their claim: allow for that.
    deadline = time.monotonic() + 180
    while (found := nothing_left(admin, cfg, name)) and time.monotonic() < deadline:
        time.sleep(3)
    assert found == [], f"left behind by {name}: {found}"


def assert_live(demo: Demo) -> None:
    host = f"{demo.cluster_name}.{os.environ['DEMO_BASE_DOMAIN']}"
    expected = harness.entry_url(host, HTTPS_PORT)
    assert demo.live_url == expected
    status, page = fetch(demo.live_url)
    assert status == 200, f"{demo.live_url} answered {status}"
    assert "Welcome to the demo shop" in page, "the web shop chart's page, with its banner"


# --- Tests ------------------------------------------------------------------------------------


def test_the_suite_runs_as_the_workers_service_account(
    settings_under_test: VClusterSettings,
) -> None:
    api = host_api_client(settings_under_test)
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    assert review.status.user_info.username == WORKER_USER
    everything = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "*", "group": "*", "resource": "*"}},
        }
    )
    assert not everything.status.allowed, "the worker must not be a cluster admin"


def test_a_demo_lives_its_whole_life(
    start_worker: Callable[..., WorkerProcess],
    webshop: DemoTemplate,
    alice: Any,
    settings_under_test: VClusterSettings,
    admin: client.ApiClient,
    clean_up: None,
) -> None:
    start_worker()
    owner = Actor.of(alice)

    # Start: real charts from the chart repository, installed by vCluster, to demo-ready.
    demo = lifecycle.start_demo(template=webshop, owner=alice, prospect_company="Cluster test")
    demo = reach(demo, Status.READY)
    assert_live(demo)
    name = demo.cluster_name

    # Something only the vCluster's datastore holds, to find again after resume and restore.
    marker = secrets.token_hex(8)
    inside(settings_under_test, name).create_namespaced_config_map(
        "default",
        {"metadata": {"name": "cluster-test-data"}, "data": {"marker": marker}},
    )

    # Pause: the control plane and the demo's pods stop, the data stays.
    demo = reach(lifecycle.pause_demo(demo=demo, actor=owner), Status.PAUSED)
    apps = client.AppsV1Api(admin)
    namespace = naming.namespace_for(name, settings_under_test.namespace_prefix)
    assert apps.read_namespaced_stateful_set(name, namespace).spec.replicas == 0
    workload = client.CoreV1Api(admin).list_namespaced_pod(
        namespace, label_selector=naming.workload_selector(name)
    )
    assert workload.items == [], "paused demos run no pods"

    # Resume: ready again, the live link answers, the data is there.
    demo = reach(lifecycle.resume_demo(demo=demo, actor=owner), Status.READY)
    assert_live(demo)
    kept = inside(settings_under_test, name).read_namespaced_config_map(
        "cluster-test-data", "default"
    )
    assert kept.data == {"marker": marker}

    # Archive to the MinIO bucket: the snapshot is taken, then the cluster goes entirely.
    demo = reach(lifecycle.archive_demo(demo=demo, actor=owner), Status.ARCHIVED)
    snapshot = Snapshot.objects.get(demo=demo, kind=SnapshotKind.ARCHIVED)
    assert snapshot.restorable
    assert snapshot.location.startswith(f"s3://{os.environ['DEMO_TEST_BUCKET']}/{name}-")
    assert_nothing_left(admin, settings_under_test, name)

    # Restore with the vcluster CLI: a new demo, from the archive, with the data.
    restored = lifecycle.restore_snapshot(snapshot=snapshot, owner=alice)
    restored = reach(restored, Status.READY)
    assert restored.restored_from == snapshot
    assert_live(restored)
    again = inside(settings_under_test, restored.cluster_name).read_namespaced_config_map(
        "cluster-test-data", "default"
    )
    assert again.data == {"marker": marker}

    # Delete: nothing of it left on the host.
    restored = reach(lifecycle.delete_demo(demo=restored, actor=owner), Status.DELETED)
    assert_nothing_left(admin, settings_under_test, restored.cluster_name)


def test_network_policy_on_keeps_live_link_and_api_reachable(
    start_worker: Callable[..., WorkerProcess],
    webshop: DemoTemplate,
    alice: Any,
    settings_under_test: VClusterSettings,
    admin: client.ApiClient,
    clean_up: None,
) -> None:
    start_worker(VCLUSTER_NETWORK_POLICY="true")
    demo = lifecycle.start_demo(template=webshop, owner=alice, prospect_company="Policy test")
    demo = reach(demo, Status.READY)
    name = demo.cluster_name
    namespace = naming.namespace_for(name, settings_under_test.namespace_prefix)

    policies = client.NetworkingV1Api(admin).list_namespaced_network_policy(namespace).items
    assert policies, "VCLUSTER_NETWORK_POLICY=true puts NetworkPolicies in the demo's namespace"
    # The ingress controller still reaches the demo's pods and (passthrough) the vCluster API.
    assert_live(demo)
    inside(settings_under_test, name).list_namespace()

    demo = reach(lifecycle.delete_demo(demo=demo, actor=Actor.of(alice)), Status.DELETED)
    assert_nothing_left(admin, settings_under_test, name)
