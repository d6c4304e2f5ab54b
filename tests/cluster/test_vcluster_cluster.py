"""The vCluster backend end to end on a real host cluster (kind, k3d, or any), opt in:

    DEMO_TEST_KUBECONFIG=~/.kube/config .venv/bin/pytest -m cluster tests/cluster

Needs a cluster with an ingress controller serving ports 80/443 on this machine, a default
storage class, `helm` (scripts/get-tools, or VCLUSTER_HELM_BIN) and `kubectl` (the test reaches
each vCluster's API through `kubectl port-forward`, as a worker outside the cluster would). See
docs/vcluster.md for the environment variables and a kind recipe.

One demo from the web shop sample is created, reaches its live URL, is paused, resumed and
deleted; at the end nothing of it is left on the host.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from demos.backends.base import Observation, Phase
from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.kube import host_api_client
from demos.backends.vcluster.values import example_spec

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = os.environ.get("DEMO_TEST_KUBECONFIG", "")
CONTEXT = os.environ.get("DEMO_TEST_CONTEXT", "")
BASE_DOMAIN = os.environ.get("DEMO_TEST_BASE_DOMAIN", "127.0.0.1.nip.io")
# oci:// repository where k8s/charts are published; without it the charts' rendered manifests are
# deployed by vCluster directly (experimental.deploy.vcluster.manifests), so no registry is needed.
CHART_REPO = os.environ.get("DEMO_TEST_CHART_REPO", "")
TIMEOUT = float(os.environ.get("DEMO_TEST_TIMEOUT", "900"))
SCHEMA = ROOT.parent / "shared" / "reference" / "vcluster" / "values.schema.json"


def _helm() -> str:
    bundled = ROOT / ".tools" / "bin" / "helm"
    return os.environ.get("VCLUSTER_HELM_BIN") or (
        str(bundled) if bundled.is_file() else shutil.which("helm") or ""
    )


pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not KUBECONFIG, reason="set DEMO_TEST_KUBECONFIG to run on a real cluster"),
    pytest.mark.skipif(
        not _helm(), reason="no helm: run scripts/get-tools or set VCLUSTER_HELM_BIN"
    ),
    pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is needed for port-forwards"),
]


class PortForward:
    """`kubectl port-forward` to a vCluster's Service, restarted when its pod went away."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def ensure(self) -> int:
        if self.process is not None and self.process.poll() is None:
            return self.port
        argv = ["kubectl", "--kubeconfig", KUBECONFIG]
        if CONTEXT:
            argv += ["--context", CONTEXT]
        argv += ["-n", self.namespace, "port-forward", f"svc/{self.name}", ":443"]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not match:
            self.stop()
            return 0
        self.port = int(match[1])
        return self.port

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def rendered_manifests(chart: str, release: str, namespace: str, values: dict[str, Any]) -> str:
    result = subprocess.run(
        [
            _helm(),
            "template",
            release,
            str(ROOT / "k8s" / "charts" / chart),
            "--namespace",
            namespace,
            "--values",
            "-",
        ],
        input=yaml.safe_dump(values),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # vCluster applies these as they are: put each object in its namespace explicitly.
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for document in documents:
        if document["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            document.setdefault("metadata", {})["namespace"] = namespace
    namespace_object = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    return yaml.safe_dump_all([namespace_object, *documents])


def webshop_spec(name: str) -> dict[str, Any]:
    """The web shop sample template's spec: database and storefront in namespace `shop`."""
    host = f"{name}.{BASE_DOMAIN}"
    db_values = {"storage": "1Gi", "seedProducts": True}
    shop_values = {
        "host": host,
        "database": {"host": "shop-db.shop.svc"},
        "banner": "Cluster test",
        "ingress": {"className": os.environ.get("DEMO_TEST_INGRESS_CLASS", "")},
    }
    spec = example_spec(name, host=host, entry_url=f"http://{host}/")
    spec["demo_id"] = f"cluster-test-{name}"
    if CHART_REPO:
        spec["charts"] = [
            {
                "name": "shop-db",
                "chart": "webshop-db",
                "repository": CHART_REPO,
                "version": "0.1.0",
                "namespace": "shop",
                "values": yaml.safe_dump(db_values),
            },
            {
                "name": "shop",
                "chart": "webshop",
                "repository": CHART_REPO,
                "version": "0.1.0",
                "namespace": "shop",
                "values": yaml.safe_dump(shop_values),
            },
        ]
    else:
        spec["charts"] = []
        manifests = rendered_manifests("webshop-db", "shop-db", "shop", db_values)
        manifests += "---\n" + rendered_manifests("webshop", "shop", "shop", shop_values)
        spec["vcluster_overrides"] = {
            "experimental": {"deploy": {"vcluster": {"manifests": manifests}}}
        }
    return spec


@pytest.fixture
def cluster_name() -> str:
    return f"ptest-{secrets.token_hex(3)}"


@pytest.fixture
def settings_for_test() -> VClusterSettings:
    return VClusterSettings(
        kubeconfig=KUBECONFIG,
        context=CONTEXT,
        helm_bin=_helm(),
        base_domain=BASE_DOMAIN,
        storage_class=os.environ.get("DEMO_TEST_STORAGE_CLASS", ""),
        ingress_class=os.environ.get("DEMO_TEST_INGRESS_CLASS", ""),
        values_schema=str(SCHEMA) if SCHEMA.is_file() else "",
        portal_instance="cluster-test",
        snapshot_url=os.environ.get("DEMO_TEST_SNAPSHOT_URL", ""),
    )


@pytest.fixture
def forward(cluster_name: str) -> Iterator[PortForward]:
    port_forward = PortForward(f"vcluster-{cluster_name}", cluster_name)
    yield port_forward
    port_forward.stop()


def wait_for(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(2)
    pytest.fail(f"{what} did not happen within {timeout:.0f} seconds")


def test_a_demo_lives_its_whole_life_on_a_real_cluster(
    cluster_name: str, settings_for_test: VClusterSettings, forward: PortForward
) -> None:
    spec = webshop_spec(cluster_name)
    backend = VClusterBackend(settings_for_test)
    namespace = f"vcluster-{cluster_name}"
    seen: list[str] = []

    def observe() -> Observation:
        # A worker outside the cluster: reach the vCluster API through a port-forward.
        port = forward.ensure() if backend.host.read_statefulset(namespace, cluster_name) else 0
        current = VClusterBackend(
            replace(settings_for_test, api_server=f"https://localhost:{port or 1}"),
            host_api=backend.host.api,
        )
        observation = current.observe(spec)
        if not seen or seen[-1] != observation.message:
            seen.append(observation.message)
        assert observation.phase != Phase.FAILED, f"{observation.message}\n{observation.detail}"
        return observation

    try:
        backend.apply(spec)
        ready = wait_for(lambda: (o := observe()).phase == Phase.READY and o, "Ready")
        assert ready.urls[0] == spec["entry_url"], seen
        with urllib.request.urlopen(spec["entry_url"], timeout=10) as page:  # noqa: S310
            assert b"Cluster test" in page.read()
        assert cluster_name in {c.name for c in backend.list_clusters()}

        if settings_for_test.snapshot_url:
            location = backend.snapshot_location(cluster_name)
            wait_for(
                lambda: backend.snapshot(cluster_name, location).phase.value == "completed",
                "Snapshot",
            )

        wait_for(lambda: backend.pause(cluster_name), "Pause")
        forward.stop()
        assert observe().phase == Phase.PAUSED

        wait_for(lambda: backend.resume(cluster_name), "Resume")
        wait_for(lambda: observe().phase == Phase.READY, "Ready after resume")
    finally:
        forward.stop()
        wait_for(lambda: backend.delete(cluster_name), "Delete", timeout=600)

    assert backend.host.read_namespace(namespace) is None
    assert cluster_name not in {c.name for c in backend.list_clusters()}
    rbac = client.RbacAuthorizationV1Api(host_api_client(settings_for_test))
    leftovers = rbac.list_cluster_role(label_selector=f"release={cluster_name}").items
    assert leftovers == [], "helm uninstall should remove the chart's ClusterRoles"
