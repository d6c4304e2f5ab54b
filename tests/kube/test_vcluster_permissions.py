"""The declared permission list against what the backend really calls.

Every kube test already fails if the backend sends a request that `BACKEND_CALLS` does not list
(see conftest). This module makes the check explicit over one full demo lifetime, checks the
reverse (nothing declared that the code never calls), and checks the helpers the RBAC manifests'
test uses.
"""

from __future__ import annotations

from typing import Any

import pytest
from host_player import HostPlayer, VClusterPlayer
from kmock_shim import EmulatorThread
from kube_support import CLUSTER, BackendFactory, RecordingApiClient, api_call, undeclared

from demos.backends.vcluster import permissions

pytestmark = pytest.mark.kube

# Calls a happy-path lifetime does not make: failure explanations and clean-up of failures.
ONLY_ON_FAILURE = {
    ("storage.k8s.io", "storageclasses", "get"),
    ("", "configmaps", "delete"),
    ("", "secrets", "delete"),
}


def test_a_whole_demo_lifetime_uses_exactly_the_declared_calls(
    make_backend: BackendFactory,
    player: HostPlayer,
    vplayer: VClusterPlayer,
    vcluster_api: EmulatorThread,
    spec: dict[str, Any],
) -> None:
    backend = make_backend(
        external_server="https://{name}-api.{base_domain}",
        snapshot_url="container:///data/{name}.tar.gz",
    )
    spec["allow_kubeconfig_download"] = True
    backend.apply(spec)
    backend.observe(spec)
    player.run_control_plane(CLUSTER)
    player.export_kubeconfig(CLUSTER, vcluster_api.kubeconfig())
    player.export_kubeconfig(CLUSTER, vcluster_api.kubeconfig(), portal=False)
    vplayer.deploy_status(
        {"phase": "Success", "charts": [{"name": "shop", "namespace": "shop", "phase": "Success"}]}
    )
    player.sync_pod(CLUSTER, "shop", "web-1")
    backend.observe(spec)
    backend.kubeconfig(CLUSTER)
    backend.list_clusters()
    backend.snapshot(CLUSTER, backend.snapshot_location(CLUSTER))
    backend.snapshot(CLUSTER, backend.snapshot_location(CLUSTER))
    backend.pause(CLUSTER)
    player.stop_control_plane(CLUSTER)
    backend.pause(CLUSTER)
    backend.resume(CLUSTER)
    while not backend.delete(CLUSTER):
        pass

    api = backend.host.api
    assert isinstance(api, RecordingApiClient)
    assert undeclared(api.calls) == []
    used = {api_call(method, url) for method, url in api.calls}
    declared = {
        (p.api_group, p.resource, verb) for p in permissions.BACKEND_CALLS for verb in p.verbs
    }
    assert declared - used == ONLY_ON_FAILURE


def test_the_declared_calls_name_real_resources() -> None:
    for permission in permissions.REQUIRED:
        assert permission.resource == permission.resource.lower()
        assert set(permission.verbs) <= {*permissions.ALL, "deletecollection"}


def test_required_covers_the_backend_and_the_chart() -> None:
    rules = permissions.rules()

    assert permissions.missing(rules) == []
    for group, resource, verb in [
        ("", "namespaces", "create"),
        ("apps", "statefulsets", "patch"),
        ("rbac.authorization.k8s.io", "clusterroles", "create"),
        ("", "pods/exec", "create"),
        ("networking.k8s.io", "ingressclasses", "list"),
    ]:
        assert permissions.covers(rules, group, resource, verb), (group, resource, verb)


def test_missing_names_what_a_cluster_role_lacks() -> None:
    rules = [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["*"]},
    ]

    missing = permissions.missing(rules)

    assert "create apps/statefulsets" in missing
    assert "create core/namespaces" not in missing
    assert "get core/secrets" not in missing


@pytest.mark.parametrize(
    ("method", "url", "call"),
    [
        ("GET", "http://h/api/v1/namespaces/ns-1", ("", "namespaces", "get")),
        ("DELETE", "http://h/api/v1/namespaces/ns-1", ("", "namespaces", "delete")),
        ("POST", "http://h/api/v1/namespaces", ("", "namespaces", "create")),
        ("GET", "http://h/api/v1/namespaces?labelSelector=a%3Db", ("", "namespaces", "list")),
        ("GET", "http://h/api/v1/namespaces/ns/pods?labelSelector=x", ("", "pods", "list")),
        (
            "PATCH",
            "http://h/apis/apps/v1/namespaces/ns/statefulsets/a",
            ("apps", "statefulsets", "patch"),
        ),
        (
            "GET",
            "http://h/apis/storage.k8s.io/v1/storageclasses/x",
            ("storage.k8s.io", "storageclasses", "get"),
        ),
        (
            "PATCH",
            "http://h/apis/apps/v1/namespaces/ns/statefulsets/a/status",
            ("apps", "statefulsets/status", "patch"),
        ),
    ],
)
def test_requests_are_read_as_rbac_reads_them(
    method: str, url: str, call: tuple[str, str, str]
) -> None:
    assert api_call(method, url) == call
