"""The portal owns each demo's public entry: the gated routing the vCluster backend creates on
the emulated host for each ingress controller (demos/backends/vcluster/entry.py).

The host authorizes every request the backend sends against the worker's rights in the
production manifests (host_rbac.py), so each test also shows the worker may do what it does.
Field names and annotations come from the controllers' sources, cited in entry.py and below.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from chart_helm import ChartHelm
from deploy_controller import DeployController
from host_player import HostPlayer
from host_rbac import HostAuthorizer
from kmock_shim import EmulatorThread
from kube_support import CLUSTER, NAMESPACE, BackendFactory
from kubernetes import client
from upstream.chart import render_chart

from demos.backends.base import BackendError, Phase
from demos.backends.vcluster import entry, naming
from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.values import example_spec, render_values, to_yaml
from demos.checks import check_gate_controller

pytestmark = pytest.mark.kube

HOST = f"{CLUSTER}.demos.example.com"
# The template's entry service `shop/web:8080` as vCluster syncs it to the host namespace.
APP_SERVICE = f"web-x-shop-x-{CLUSTER}"
AUTH_URL = "http://portal-web.demo-portal.svc.cluster.local/gate/check/"
GATE_SETTINGS = {
    "gate": True,
    "gate_auth_url": AUTH_URL,
    "gate_portal_service": "portal-web.demo-portal.svc.cluster.local",
    "gate_portal_port": 80,
    "site_url": "https://portal.example.com",
    "gateway": "envoy-gateway-system/demos",
}
INGRESS = "networking.k8s.io/v1/ingresses"
# The controllers' custom resources, served by the emulated host as their CRDs would be.
CUSTOM_RESOURCES = {
    "traefik.io/v1alpha1/middlewares": "Middleware",
    "gateway.networking.k8s.io/v1/httproutes": "HTTPRoute",
    "gateway.envoyproxy.io/v1alpha1/securitypolicies": "SecurityPolicy",
    "gateway.envoyproxy.io/v1alpha1/backends": "Backend",
    # Not a CRD: the kube tests' emulator just does not declare it (kmock_shim.RESOURCES).
    "discovery.k8s.io/v1/endpointslices": "EndpointSlice",
}


class Probe:
    """The live-link check, noting the URLs it was asked about (the demo host has no DNS)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str, timeout: float, verify_tls: bool) -> tuple[bool, str]:
        self.urls.append(url)
        return True, "HTTP 302"


@pytest.fixture
def crds(host: EmulatorThread) -> None:
    assert host.emulator is not None
    for resource, kind in CUSTOM_RESOURCES.items():
        host.emulator.resources[resource] = {"kind": kind, "namespaced": True}


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def gated(make_backend: BackendFactory, crds: None, probe: Probe) -> BackendFactory:
    def build(controller: str, **changes: Any) -> VClusterBackend:
        return make_backend(
            **{**GATE_SETTINGS, "gate_controller": controller, **changes}, probe=probe
        )

    return build


@pytest.fixture
def spec(spec: dict[str, Any]) -> dict[str, Any]:
    spec["entry_service"] = "shop/web:8080"
    spec["entry_url"] = f"https://{HOST}/shop/?tour=1"
    return spec


def sync_entry_service(
    host: EmulatorThread, *, port: int = 8080, ready: bool | None = True
) -> None:
    """Play vCluster's syncer and the host's EndpointSlice controller for `shop/web`: the
    synced Service, and a slice with one endpoint (`ready` None: no endpoint at all)."""
    api = host.api_client()
    client.CoreV1Api(api).create_namespaced_service(
        NAMESPACE,
        {
            "metadata": {"name": APP_SERVICE, "labels": {naming.MANAGED_BY_VCLUSTER: CLUSTER}},
            "spec": {"ports": [{"name": "http", "port": port}], "selector": {"app": "web"}},
        },
    )
    endpoints = (
        [] if ready is None else [{"addresses": ["10.1.2.3"], "conditions": {"ready": ready}}]
    )
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(
        NAMESPACE,
        {
            "metadata": {
                "name": f"{APP_SERVICE}-abcde",
                "labels": {"kubernetes.io/service-name": APP_SERVICE},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
        },
    )


def stored(host: EmulatorThread, resource: str, name: str) -> dict[str, Any]:
    assert host.exists(resource, NAMESPACE, name), f"{resource} {name} is missing"
    return dict(host.objects[resource, NAMESPACE, name].raw)


def portal_labels(spec: dict[str, Any]) -> dict[str, str]:
    return naming.portal_labels("default", CLUSTER, spec["demo_id"], "example")


def rule_of(ingress: dict[str, Any]) -> tuple[str, str, str, int]:
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    service = path["backend"]["service"]
    return rule["host"], path["path"], service["name"], service["port"]["number"]


class TestHostNamesOfSyncedServices:
    """vCluster v0.36.1 names a synced Service `<name>-x-<namespace>-x-<vcluster>`
    (pkg/util/translate/single_namespace.go:59-64, `SingleNamespaceHostName`, used for Services
    by pkg/mappings/resources/services.go:15-18), hashing names over 63 characters with
    `SafeConcatName` (pkg/util/translate/translate.go:211-218)."""

    def test_a_short_name_is_joined_with_x(self) -> None:
        service = naming.VirtualService("testns", "testservice", 80)

        # As pkg/controllers/resources/services/syncer_test.go:25 expects with vCluster "suffix".
        assert naming.host_service_name(service, "suffix") == "testservice-x-testns-x-suffix"

    def test_a_long_name_keeps_52_characters_and_a_hash(self) -> None:
        service = naming.VirtualService("storefront-observability", "catalogue-api-gateway", 80)

        name = naming.host_service_name(service, "demo-0123456789abcdef")

        # sha256("catalogue-api-gateway-x-storefront-observability-x-demo-0123456789abcdef")
        assert name == "catalogue-api-gateway-x-storefront-observability-x-d-0361fc41ed"
        assert len(name) == 63

    def test_a_dot_before_the_hash_dash_is_dropped(self) -> None:
        name = naming.safe_concat_name("a" * 51 + ".", "b" * 20)

        assert name.startswith("a" * 51 + "-")
        assert ".-" not in name
        assert len(name) == 62

    def test_the_vclusters_kubernetes_service_is_its_own_service(self) -> None:
        service = naming.VirtualService("default", "kubernetes", 443)

        # pkg/mappings/resources/services.go:74-83 at v0.36.1.
        assert naming.host_service_name(service, "demo-1") == "demo-1"

    @pytest.mark.parametrize("value", ["shop/web:8080", " shop/web:8080 "])
    def test_an_entry_service_is_parsed(self, value: str) -> None:
        assert naming.parse_entry_service(value) == naming.VirtualService("shop", "web", 8080)

    @pytest.mark.parametrize(
        "value", ["web:80", "shop/web", "shop/web:0", "shop/web:70000", "a/B:1"]
    )
    def test_anything_else_is_refused(self, value: str) -> None:
        assert naming.parse_entry_service(value) is None


class TestIngressNginx:
    def test_the_app_is_behind_external_auth_and_the_ticket_path_is_open(
        self,
        gated: BackendFactory,
        host: EmulatorThread,
        authorizer: HostAuthorizer,
        spec: dict[str, Any],
    ) -> None:
        gated("ingress-nginx", ingress_class="nginx").apply(spec)

        app = stored(host, INGRESS, entry.ENTRY)
        assert rule_of(app) == (HOST, "/", APP_SERVICE, 8080)
        assert app["spec"]["ingressClassName"] == "nginx"
        assert "tls" not in app["spec"]
        # docs/user-guide/nginx-configuration/annotations.md, "External Authentication"; the
        # sign-in URL keeps the original URL in the variables buildAuthSignURL appends itself
        # (internal/ingress/controller/template/template.go).
        assert app["metadata"]["annotations"] == {
            "nginx.ingress.kubernetes.io/auth-url": AUTH_URL,
            "nginx.ingress.kubernetes.io/auth-signin": "https://portal.example.com/gate/signin/"
            "?rd=$pass_access_scheme://$http_host$escaped_request_uri",
            "nginx.ingress.kubernetes.io/auth-proxy-set-headers": f"{NAMESPACE}/portal-gate-auth",
        }
        assert app["metadata"]["labels"] == portal_labels(spec)
        # The auth request's X-Forwarded-Host is the Host nginx routed by, not the client's.
        headers = stored(host, "v1/configmaps", entry.AUTH)
        assert headers["data"] == {"X-Forwarded-Host": "$http_host"}

        ticket = stored(host, INGRESS, entry.GATE)
        assert rule_of(ticket) == (HOST, "/.portal-gate/", "portal-gate", 80)
        assert ticket["metadata"]["annotations"] == {
            "nginx.ingress.kubernetes.io/enable-global-auth": "false"
        }
        portal = stored(host, "v1/services", entry.GATE)
        assert portal["spec"] == {
            "type": "ExternalName",
            "externalName": "portal-web.demo-portal.svc.cluster.local",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        }
        assert portal["metadata"]["labels"] == portal_labels(spec)
        assert authorizer.refusals == []

    def test_a_tls_secret_gives_the_demo_host_a_tls_section(
        self, gated: BackendFactory, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        gated("ingress-nginx", entry_tls_secret="demos-wildcard").apply(spec)

        for name in (entry.ENTRY, entry.GATE):
            tls = stored(host, INGRESS, name)["spec"]["tls"]
            assert tls == [{"hosts": [HOST], "secretName": "demos-wildcard"}]

    def test_the_charts_own_ingresses_are_no_longer_synced(
        self, gated: BackendFactory, helm: ChartHelm, spec: dict[str, Any]
    ) -> None:
        spec["vcluster_overrides"] = {"sync": {"toHost": {"ingresses": {"enabled": True}}}}

        gated("ingress-nginx").apply(spec)

        values = yaml.safe_load(helm.values[-1])
        assert values["sync"]["toHost"]["ingresses"] == {"enabled": False}


class TestTraefik:
    def test_a_forward_auth_middleware_guards_the_app_only(
        self,
        gated: BackendFactory,
        host: EmulatorThread,
        authorizer: HostAuthorizer,
        spec: dict[str, Any],
    ) -> None:
        gated("traefik").apply(spec)

        # pkg/config/dynamic/middlewares.go (ForwardAuth): `address`, `trustForwardHeader`.
        middleware = stored(host, "traefik.io/v1alpha1/middlewares", entry.AUTH)
        assert middleware["spec"] == {
            "forwardAuth": {"address": AUTH_URL, "trustForwardHeader": False}
        }
        assert middleware["metadata"]["labels"] == portal_labels(spec)
        app = stored(host, INGRESS, entry.ENTRY)
        assert rule_of(app) == (HOST, "/", APP_SERVICE, 8080)
        # docs/content/reference/routing-configuration/kubernetes/ingress.md: a CRD middleware
        # is `<namespace>-<name>@kubernetescrd`.
        assert app["metadata"]["annotations"] == {
            "traefik.ingress.kubernetes.io/router.middlewares": (
                f"{NAMESPACE}-portal-gate-auth@kubernetescrd"
            )
        }
        ticket = stored(host, INGRESS, entry.GATE)
        assert rule_of(ticket) == (HOST, "/.portal-gate/", "portal-gate", 80)
        assert "annotations" not in ticket["metadata"]
        assert stored(host, "v1/services", entry.GATE)["spec"]["type"] == "ExternalName"
        assert authorizer.refusals == []


class TestEnvoyGateway:
    def test_a_security_policy_guards_the_app_route_only(
        self,
        gated: BackendFactory,
        host: EmulatorThread,
        authorizer: HostAuthorizer,
        spec: dict[str, Any],
    ) -> None:
        gated("envoy-gateway").apply(spec)

        routes = "gateway.networking.k8s.io/v1/httproutes"
        app = stored(host, routes, entry.ENTRY)
        assert app["spec"] == {
            "parentRefs": [{"name": "demos", "namespace": "envoy-gateway-system"}],
            "hostnames": [HOST],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": APP_SERVICE, "port": 8080}],
                }
            ],
        }
        ticket = stored(host, routes, entry.GATE)
        assert ticket["spec"]["rules"] == [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/.portal-gate/"}}],
                "backendRefs": [
                    {
                        "group": "gateway.envoyproxy.io",
                        "kind": "Backend",
                        "name": "portal-gate",
                        "port": 80,
                    }
                ],
            }
        ]
        # api/v1alpha1/ext_auth_types.go: ExtAuth{http{backendRefs, path}, headersToExtAuth}.
        policy = stored(host, "gateway.envoyproxy.io/v1alpha1/securitypolicies", entry.AUTH)
        assert policy["spec"]["targetRefs"] == [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": entry.ENTRY}
        ]
        assert policy["spec"]["extAuth"]["http"] == {
            "backendRefs": [
                {
                    "group": "gateway.envoyproxy.io",
                    "kind": "Backend",
                    "name": "portal-gate-auth",
                    "port": 80,
                }
            ],
            "path": "/.portal-gate/check",
        }
        assert "cookie" in policy["spec"]["extAuth"]["headersToExtAuth"]
        assert "x-forwarded-host" not in policy["spec"]["extAuth"]["headersToExtAuth"]
        backends = "gateway.envoyproxy.io/v1alpha1/backends"
        assert stored(host, backends, entry.AUTH)["spec"] == {
            "endpoints": [
                {"fqdn": {"hostname": "portal-web.demo-portal.svc.cluster.local", "port": 80}}
            ]
        }
        assert stored(host, backends, entry.GATE)["metadata"]["labels"] == portal_labels(spec)
        assert authorizer.refusals == []


class TestIdempotence:
    @pytest.mark.parametrize("controller", ["ingress-nginx", "traefik", "envoy-gateway"])
    def test_a_second_apply_writes_nothing(
        self,
        gated: BackendFactory,
        host: EmulatorThread,
        authorizer: HostAuthorizer,
        spec: dict[str, Any],
        controller: str,
    ) -> None:
        backend = gated(controller)
        backend.apply(spec)
        versions = {
            key: obj["metadata"]["resourceVersion"]
            for key, obj in host.objects.items()
            if not obj.deleted and key[1] == NAMESPACE
        }

        backend.apply(spec)

        again = {
            key: obj["metadata"]["resourceVersion"]
            for key, obj in host.objects.items()
            if not obj.deleted and key[2] in {entry.ENTRY, entry.GATE, entry.AUTH}
        }
        assert again == {key: versions[key] for key in again}
        assert len(again) >= 4
        assert authorizer.refusals == []

    def test_a_changed_route_is_put_back(
        self, gated: BackendFactory, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        backend = gated("ingress-nginx")
        backend.apply(spec)
        networking = host.api_client()
        body = stored(host, INGRESS, entry.ENTRY)
        body["metadata"]["annotations"] = {}
        body["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "other"
        client.NetworkingV1Api(networking).replace_namespaced_ingress(entry.ENTRY, NAMESPACE, body)

        backend.apply(spec)

        app = stored(host, INGRESS, entry.ENTRY)
        assert rule_of(app)[2] == APP_SERVICE
        assert app["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"] == AUTH_URL


def installed(
    backend: VClusterBackend,
    player: HostPlayer,
    vcluster_api: EmulatorThread,
    deploy: Any,
    spec: dict[str, Any],
) -> None:
    """Apply, and play everything up to the template's charts installed."""
    backend.apply(spec)
    player.run_control_plane(CLUSTER)
    player.export_kubeconfig(CLUSTER, vcluster_api.kubeconfig())
    controller: DeployController = deploy()
    controller.attempt()


class TestObserve:
    def test_the_live_link_is_the_gated_host_and_a_lost_route_comes_back(
        self,
        gated: BackendFactory,
        host: EmulatorThread,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        deploy: Any,
        probe: Probe,
        spec: dict[str, Any],
    ) -> None:
        backend = gated("ingress-nginx")
        installed(backend, player, vcluster_api, deploy, spec)
        sync_entry_service(host)
        # An Ingress vCluster would have synced (none is, with gating on) is never a live link.
        player.sync_ingress(CLUSTER, HOST)
        client.NetworkingV1Api(host.api_client()).delete_namespaced_ingress(entry.GATE, NAMESPACE)

        seen = backend.observe(spec)

        assert seen.phase == Phase.READY
        assert seen.urls == (f"https://{HOST}/shop/?tour=1",)
        assert probe.urls == [f"https://{HOST}/shop/?tour=1"]
        assert host.exists(INGRESS, NAMESPACE, entry.GATE)

    @pytest.mark.parametrize(
        ("synced", "says"),
        [
            ({}, "waiting for the entry service shop/web to exist in the vCluster"),
            ({"ready": None}, "waiting for a ready pod behind the entry service shop/web"),
            ({"ready": False}, "waiting for a ready pod behind the entry service shop/web"),
            ({"port": 80}, "the entry service shop/web has no port 8080 (its ports: 80)"),
        ],
    )
    def test_the_gate_answering_is_not_enough_the_app_must_have_a_ready_pod(
        self,
        gated: BackendFactory,
        host: EmulatorThread,
        player: HostPlayer,
        vcluster_api: EmulatorThread,
        deploy: Any,
        probe: Probe,
        spec: dict[str, Any],
        synced: dict[str, Any],
        says: str,
    ) -> None:
        backend = gated("traefik")
        installed(backend, player, vcluster_api, deploy, spec)
        if synced:
            sync_entry_service(host, **synced)

        seen = backend.observe(spec)

        assert seen.phase == Phase.CHECKING
        assert says in seen.message
        assert probe.urls == []

    def test_an_entry_url_elsewhere_gives_the_demo_hosts_root(
        self, gated: BackendFactory, spec: dict[str, Any]
    ) -> None:
        backend = gated("traefik")
        spec["entry_url"] = "https://elsewhere.example.org/shop/"

        assert entry.live_url(spec, backend.cfg) == f"https://{HOST}/"


class TestDelete:
    @pytest.mark.parametrize("controller", ["ingress-nginx", "traefik", "envoy-gateway"])
    def test_the_routing_goes_with_the_namespace(
        self,
        gated: BackendFactory,
        host: EmulatorThread,
        player: HostPlayer,
        spec: dict[str, Any],
        controller: str,
    ) -> None:
        backend = gated(controller)
        backend.apply(spec)
        player.run_control_plane(CLUSTER)
        assert host.exists(INGRESS, NAMESPACE, entry.ENTRY) or host.exists(
            "gateway.networking.k8s.io/v1/httproutes", NAMESPACE, entry.ENTRY
        )

        rounds = 0
        while not backend.delete(CLUSTER):
            rounds += 1
            assert rounds < 5

        left = [key for key, obj in host.objects.items() if not obj.deleted]
        assert left == []


class TestTemplatesTheGateCannotRoute:
    @pytest.mark.parametrize(
        ("value", "says"),
        [
            ("", "has no entry service"),
            ("shop/web", "is not namespace/name:port"),
            ("shop/web:http", "is not namespace/name:port"),
        ],
    )
    def test_it_fails_definitely_before_creating_anything(
        self,
        gated: BackendFactory,
        helm: ChartHelm,
        host: EmulatorThread,
        spec: dict[str, Any],
        value: str,
        says: str,
    ) -> None:
        spec["entry_service"] = value

        with pytest.raises(BackendError) as raised:
            gated("ingress-nginx").apply(spec)

        assert says in raised.value.message
        assert "template" in raised.value.message
        assert not raised.value.transient
        assert helm.calls == []
        assert not host.exists("v1/namespaces", None, NAMESPACE)

    def test_without_gating_through_an_ingress_no_entry_service_is_needed(
        self, make_backend: BackendFactory, host: EmulatorThread, spec: dict[str, Any]
    ) -> None:
        spec["entry_service"] = ""

        make_backend(gate=False, gate_controller="ingress-nginx").apply(spec)

        assert not host.exists(INGRESS, NAMESPACE, entry.ENTRY)


class TestTheRenderedChart:
    def test_gating_turns_the_ingress_sync_off_in_vclusters_own_config(
        self, gated: BackendFactory, spec: dict[str, Any]
    ) -> None:
        cfg = gated("ingress-nginx").cfg
        objects = render_chart(to_yaml(render_values(spec, cfg)), name=CLUSTER, namespace=NAMESPACE)

        # chart/templates/config-secret.yaml: the values, as the config vCluster reads.
        [secret] = [o for o in objects if o["metadata"]["name"] == f"vc-config-{CLUSTER}"]
        config = yaml.safe_load(base64.b64decode(secret["data"]["config.yaml"]))
        assert config["sync"]["toHost"]["ingresses"]["enabled"] is False
        # chart/templates/role.yaml grants the control plane ingresses only to sync them.
        [role] = [o for o in objects if o["kind"] == "Role"]
        assert not any("ingresses" in rule["resources"] for rule in role["rules"])

    def test_without_gating_the_charts_ingresses_are_synced_as_before(self) -> None:
        cfg = VClusterSettings(gate=False, gate_controller="ingress-nginx")
        spec = example_spec(CLUSTER)
        objects = render_chart(to_yaml(render_values(spec, cfg)), name=CLUSTER, namespace=NAMESPACE)

        [secret] = [o for o in objects if o["metadata"]["name"] == f"vc-config-{CLUSTER}"]
        config = yaml.safe_load(base64.b64decode(secret["data"]["config.yaml"]))
        assert config["sync"]["toHost"]["ingresses"]["enabled"] is True


class TestSettings:
    def test_vcluster_demos_gated_by_the_portal_itself_stop_start_up(self, settings: Any) -> None:
        settings.DEMO_BACKEND = "vcluster"
        settings.DEMO_GATE = True
        settings.DEMO_GATE_CONTROLLER = "portal"

        [error] = check_gate_controller(None)

        assert error.id == "demos.E003"
        assert "DEMO_GATE_CONTROLLER=portal" in error.msg
        assert "ingress-nginx, traefik or envoy-gateway" in (error.hint or "")

    @pytest.mark.parametrize(
        ("backend", "gate", "controller"),
        [
            ("vcluster", True, "ingress-nginx"),
            ("vcluster", False, "portal"),
            ("simulated", True, "portal"),
        ],
    )
    def test_other_combinations_pass(
        self, settings: Any, backend: str, gate: bool, controller: str
    ) -> None:
        settings.DEMO_BACKEND = backend
        settings.DEMO_GATE = gate
        settings.DEMO_GATE_CONTROLLER = controller

        assert check_gate_controller(None) == []

    def test_envoy_gateway_needs_the_gateway(self) -> None:
        cfg = VClusterSettings(gate=True, gate_controller="envoy-gateway")

        assert cfg.problems() == [
            "VCLUSTER_GATEWAY='' must be NAMESPACE/NAME of the Gateway that demo routes attach "
            "to (DEMO_GATE_CONTROLLER=envoy-gateway)."
        ]

    def test_an_auth_url_the_controller_cannot_call_is_refused(self) -> None:
        cfg = VClusterSettings(gate=True, gate_controller="traefik", gate_auth_url="/gate/check/")

        [problem] = cfg.problems()

        assert problem.startswith("DEMO_GATE_AUTH_URL='/gate/check/' must be the http(s):// URL")

    def test_the_settings_reach_the_backend_from_django(self, settings: Any) -> None:
        settings.DEMO_GATE_CONTROLLER = "traefik"
        settings.VCLUSTER_ENTRY_TLS_SECRET = "wildcard"

        cfg = VClusterSettings.from_django()

        assert (cfg.gate_controller, cfg.entry_tls_secret, cfg.routes_entry) == (
            "traefik",
            "wildcard",
            settings.DEMO_GATE,
        )
