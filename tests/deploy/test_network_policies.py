"""Who may connect to which pod, computed from the rendered NetworkPolicies and pod labels.

A pod is isolated for ingress once any policy selects it; it then accepts exactly what the union
of those policies' rules allows (the NetworkPolicy API's semantics), so these tests evaluate the
selectors against the real pod templates instead of reading the YAML back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from demos.backends.vcluster.config import VClusterSettings

from .support import TREES, Manifest, config_data, of_kind, pod_spec, render, workloads

PORTAL_PODS = {"portal-web", "portal-worker", "portal-cron", "portal-migrate"}


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist); {} selects all."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def pod_labels(workload: Manifest) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def ingress_rules(objects: tuple[Manifest, ...], workload: Manifest) -> list[Manifest] | None:
    """The ingress rules admitting traffic to `workload`'s pods; None when no policy isolates
    them (everything may connect)."""
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], pod_labels(workload))
    ]
    if not policies:
        return None
    return [rule for p in policies for rule in p["spec"].get("ingress", [])]


def peers_from(
    rules: list[Manifest], peer_labels: Mapping[str, str], ns_labels: Mapping[str, str]
) -> list[Manifest]:
    """The rules that admit a pod with `peer_labels` in a namespace with `ns_labels`.
    A peer with only podSelector means the policy's own namespace (the portal's)."""
    admitted = []
    for rule in rules:
        for peer in rule.get("from", []):
            pods = peer.get("podSelector")
            namespaces = peer.get("namespaceSelector")
            if namespaces is None:
                same = ns_labels.get("kubernetes.io/metadata.name") == "demo-portal"
                if same and pods is not None and selects(pods, peer_labels):
                    admitted.append(rule)
            elif selects(namespaces, ns_labels) and (pods is None or selects(pods, peer_labels)):
                admitted.append(rule)
    return admitted


def named_ports(workload: Manifest) -> set[str]:
    return {
        port["name"]
        for container in pod_spec(workload)["containers"]
        for port in container.get("ports", [])
        if "name" in port
    }


def by_name(objects: tuple[Manifest, ...]) -> dict[str, Manifest]:
    return {w["metadata"]["name"]: w for w in workloads(objects)}


def ingress_namespace_labels() -> dict[str, str]:
    """Labels of the ingress controller's namespace as the production settings name it."""
    data = config_data(render("overlays/production"))
    cfg = VClusterSettings(ingress_namespace_selector=data["VCLUSTER_INGRESS_NAMESPACE_SELECTOR"])
    return cfg.ingress_labels()


PORTAL_NS = {"kubernetes.io/metadata.name": "demo-portal"}
DEMO_NS = {
    "kubernetes.io/metadata.name": "vcluster-demo-abc",
    "app.kubernetes.io/managed-by": "demo-portal",
}
ANY_POD = {"app": "anything"}


@pytest.fixture(params=TREES)
def objects(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    return render(request.param)


class TestEveryTree:
    def test_every_pod_is_isolated(self, objects: tuple[Manifest, ...]) -> None:
        open_to_all = [
            name for name, w in by_name(objects).items() if ingress_rules(objects, w) is None
        ]
        assert not open_to_all

    def test_web_pods_accept_only_the_ingress_controller_on_http(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        web = by_name(objects)["portal-web"]
        rules = ingress_rules(objects, web)
        assert rules is not None
        controller_ns = {
            **ingress_namespace_labels(),
            "kubernetes.io/metadata.name": "ingress-nginx",
        }
        admitted = peers_from(rules, {"app.kubernetes.io/name": "ingress-nginx"}, controller_ns)
        assert admitted
        for rule in admitted:
            ports = {p["port"] for p in rule["ports"]}
            assert ports <= named_ports(web), ports
            assert ports == {"http"}
        # Nothing else: not a pod of a demo, not the portal's own pods, not another namespace.
        assert not peers_from(rules, ANY_POD, DEMO_NS)
        assert not peers_from(rules, pod_labels(by_name(objects)["portal-worker"]), PORTAL_NS)
        assert not peers_from(rules, ANY_POD, {"kubernetes.io/metadata.name": "default"})

    def test_worker_cron_and_migration_accept_nothing(self, objects: tuple[Manifest, ...]) -> None:
        for name in ("portal-worker", "portal-cron", "portal-migrate"):
            assert ingress_rules(objects, by_name(objects)[name]) == [], name

    def test_the_web_policy_and_the_demo_policy_admit_the_same_controller(self) -> None:
        # VCLUSTER_INGRESS_NAMESPACE_SELECTOR lets the controller reach demo apps; the web's
        # policy must name the same namespace or either the portal or the demos are cut off.
        policy = next(
            p
            for p in of_kind(render("overlays/production"), "NetworkPolicy")
            if p["metadata"]["name"] == "portal-web-from-ingress"
        )
        (peer,) = policy["spec"]["ingress"][0]["from"]
        assert peer["namespaceSelector"]["matchLabels"] == ingress_namespace_labels()


class TestDevDatabases:
    @pytest.mark.parametrize(("name", "port"), [("postgres", "postgres"), ("redis", "redis")])
    def test_only_portal_pods_may_connect(self, name: str, port: str) -> None:
        objects = render("overlays/dev")
        pods = by_name(objects)
        rules = ingress_rules(objects, pods[name])
        assert rules is not None
        for portal in PORTAL_PODS:
            admitted = peers_from(rules, pod_labels(pods[portal]), PORTAL_NS)
            assert admitted, portal
            assert all({p["port"] for p in r["ports"]} == {port} for r in admitted)
            assert port in named_ports(pods[name])
        other = "redis" if name == "postgres" else "postgres"
        assert not peers_from(rules, pod_labels(pods[other]), PORTAL_NS)
        assert not peers_from(rules, ANY_POD, DEMO_NS)
        assert not peers_from(rules, pod_labels(pods["portal-web"]), DEMO_NS)

    def test_production_runs_no_database_here(self) -> None:
        names = {
            p["metadata"]["name"] for p in of_kind(render("overlays/production"), "NetworkPolicy")
        }
        assert names == {"default-deny-ingress", "portal-web-from-ingress"}
