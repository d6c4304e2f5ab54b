"""The worker's rights on the host, as the portal's production manifests grant them.

Every request the backend and its Helm runner send is authorized by the emulated host against
`kubectl kustomize k8s/overlays/production` and the RBAC objects created since (host_rbac.py):
a whole demo lifetime must pass with those rights alone, and nothing else may be reachable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from deploy_controller import DeployController
from host_player import HostPlayer
from host_rbac import HostAuthorizer, request_verb
from kmock_shim import ApiRequest, EmulatorThread
from kube_support import CLUSTER, BackendFactory
from kubernetes.client.exceptions import ApiException

from demos.backends.base import BackendError

pytestmark = pytest.mark.kube


def test_a_whole_demo_lifetime_needs_no_right_the_manifests_do_not_grant(
    make_backend: BackendFactory,
    authorizer: HostAuthorizer,
    host: EmulatorThread,
    player: HostPlayer,
    deploy: Callable[[], DeployController],
    vcluster_api: EmulatorThread,
    spec: dict[str, Any],
) -> None:
    backend = make_backend(
        external_server="https://{name}-api.{base_domain}",
        api_ingress_host="{name}-api.{base_domain}",
        network_policy=True,
    )
    spec["allow_kubeconfig_download"] = True
    backend.apply(spec)
    backend.observe(spec)
    player.run_control_plane(CLUSTER)
    player.export_kubeconfig(CLUSTER, vcluster_api.kubeconfig())
    player.export_kubeconfig(CLUSTER, vcluster_api.kubeconfig(), portal=False)
    deploy().attempt()
    player.sync_pod(CLUSTER, "shop", "web-1")
    player.sync_ingress(CLUSTER, f"{CLUSTER}.demos.example.com")
    backend.observe(spec)
    backend.kubeconfig(CLUSTER)
    backend.list_clusters()
    backend.pause(CLUSTER)
    player.stop_control_plane(CLUSTER)
    backend.pause(CLUSTER)
    backend.resume(CLUSTER)
    backend.apply(spec)  # a repeated apply is an upgrade: patches what exists
    rounds = 0
    while not backend.delete(CLUSTER):
        rounds += 1
        assert rounds < 5

    assert authorizer.refusals == []
    left = [key for key, obj in host.objects.items() if not obj.deleted]
    assert left == []


@pytest.mark.parametrize(
    ("read", "what"),
    [
        (lambda host: host.read_secret("demo-portal", "portal-secrets"), "secrets"),
        (lambda host: host.list_pods("kube-system", "k8s-app=kube-dns"), "pods"),
        (lambda host: host.list_configmaps("default", "a=b"), "configmaps"),
    ],
    ids=["secret", "pods", "configmaps"],
)
def test_outside_demo_namespaces_the_worker_is_refused(
    backend: Any, authorizer: HostAuthorizer, read: Callable[[Any], object], what: str
) -> None:
    with pytest.raises(BackendError) as raised:
        read(backend.host)

    assert "not allowed" in raised.value.message
    [refusal] = authorizer.refusals
    assert f'resource "{what}"' in refusal


def test_the_worker_cannot_relabel_a_foreign_namespace_as_a_demo(
    backend: Any, player: HostPlayer, authorizer: HostAuthorizer
) -> None:
    # Its namespaced rights hang on the demo label: changing labels would hand it any namespace.
    player.add_namespace("payments", {"team": "payments"})

    with pytest.raises(ApiException) as raised:
        backend.host.core.patch_namespace(
            "payments",
            {"metadata": {"labels": {"app.kubernetes.io/managed-by": "demo-portal"}}},
            _content_type="application/merge-patch+json",
        )
    assert raised.value.status == 403
    assert 'cannot patch resource "namespaces"' in authorizer.refusals[0]


@pytest.mark.parametrize(
    ("method", "name", "params", "verb"),
    [
        ("GET", "x", {}, "get"),
        ("GET", None, {}, "list"),
        ("GET", None, {"watch": "true"}, "watch"),
        ("POST", None, {}, "create"),
        ("PUT", "x", {}, "update"),
        ("PATCH", "x", {}, "patch"),
        ("DELETE", "x", {}, "delete"),
        ("DELETE", None, {}, "deletecollection"),
    ],
)
def test_requests_are_read_as_rbac_reads_them(
    method: str, name: str | None, params: dict[str, str], verb: str
) -> None:
    request = ApiRequest(method=method, name=name, params=params)

    assert request_verb(request) == verb
