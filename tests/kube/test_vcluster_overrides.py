"""What template admins may put in a demo's vcluster.yaml: the allow-list and its bounds.

The findings come from the security review (issue: template admins could reach the host): each
override below was accepted before and would weaken a demo's isolation up to the host.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from upstream.chart import SCHEMA, of_kind, render_chart

from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.overrides import ALLOWED, parse_quantity
from demos.backends.vcluster.values import (
    QUOTA_DEFAULTS,
    example_spec,
    render_values,
    to_yaml,
    validate_overrides,
)

CFG = VClusterSettings(values_schema=str(SCHEMA))

HOST_REACHING = {
    "policies removed": "policies: null",
    "privileged pod security": "policies:\n  podSecurityStandard: privileged",
    "privileged root control plane with a host path": (
        "controlPlane:\n  statefulSet:\n    security:\n      containerSecurityContext:\n"
        "        privileged: true\n        runAsUser: 0\n    persistence:\n      addVolumes:\n"
        "      - name: host\n        hostPath:\n          path: /\n"
    ),
    "an image from another registry": (
        "controlPlane:\n  statefulSet:\n    image:\n      registry: evil.example.com\n"
    ),
    "RBAC rules reading Secrets cluster-wide": (
        "rbac:\n  clusterRole:\n    extraRules:\n    - apiGroups: ['']\n"
        "      resources: [secrets]\n      verbs: [get, list]\n"
    ),
    "host priority classes synced in (the chart then writes them)": (
        "sync:\n  fromHost:\n    priorityClasses:\n      enabled: true\n"
    ),
    "host nodes synced in": "sync:\n  fromHost:\n    nodes:\n      selector:\n        all: true\n",
    "host secrets synced in": (
        "sync:\n  fromHost:\n    secrets:\n      enabled: true\n      mappings:\n"
        "        byName:\n          demo-portal/portal-secrets: default/stolen\n"
    ),
    "the portal's database replicated in": (
        "networking:\n  replicateServices:\n    fromHost:\n    - from: demo-portal/postgres\n"
        "      to: default/postgres\n"
    ),
    "manifests applied at start": (
        "experimental:\n  deploy:\n    vcluster:\n      manifests: 'kind: ClusterRoleBinding'\n"
    ),
    "a load balancer outside the portal": (
        "policies:\n  resourceQuota:\n    quota:\n      services.loadbalancers: 5\n"
    ),
    "unbounded quota": "policies:\n  resourceQuota:\n    quota:\n      requests.cpu: 1000\n",
    "a quota limit removed": "policies:\n  resourceQuota:\n    quota:\n      count/pods: null\n",
}


class TestTemplateAdmins:
    @pytest.mark.parametrize("text", HOST_REACHING.values(), ids=HOST_REACHING.keys())
    def test_overrides_that_reach_the_host_are_refused_with_the_path(self, text: str) -> None:
        problems = validate_overrides(text, CFG)

        assert problems, "accepted an override that weakens isolation"
        assert all(p.startswith("vCluster overrides: ") for p in problems)
        first_leaf = _first_leaf(yaml.safe_load(text))
        assert any(first_leaf in p for p in problems), problems

    def test_what_the_list_allows_renders_and_validates(self) -> None:
        text = (
            "sync:\n  toHost:\n    services:\n      enabled: true\n"
            "  fromHost:\n    storageClasses:\n      enabled: auto\n"
            "policies:\n  resourceQuota:\n    quota:\n      count/services: 120\n"
            "      requests.memory: 32Gi\n"
            "  limitRange:\n    default:\n      memory: 1Gi\n"
            "controlPlane:\n  statefulSet:\n    resources:\n      limits:\n        memory: 2Gi\n"
        )

        assert validate_overrides(text, CFG) == []

    def test_bounds_are_named(self) -> None:
        problems = validate_overrides(
            "policies:\n  limitRange:\n    max:\n      memory: lots\n", CFG
        )

        assert problems == [
            "vCluster overrides: policies.limitRange.max.memory cannot be set by template admins: "
            "it must be a quantity such as 64Gi."
        ]

    def test_every_allowed_path_exists_in_the_upstream_schema(self) -> None:
        # An allow-list entry the chart does not know would be a promise the portal cannot keep.
        for path in ALLOWED:
            value: Any = True if path.endswith(".enabled") else "0"
            overrides = _tree(path, value)
            spec = example_spec(vcluster_overrides=overrides)
            problems = validate_overrides(overrides, CFG)
            assert problems == [], (path, problems)
            assert render_values(spec, CFG)


class TestSuperusers:
    def test_the_unsafe_layer_takes_what_template_admins_may_not(self) -> None:
        text = HOST_REACHING["privileged root control plane with a host path"]

        assert validate_overrides(text, CFG, unsafe=True) == []
        spec = example_spec(unsafe_vcluster_overrides=yaml.safe_load(text))
        security = render_values(spec, CFG)["controlPlane"]["statefulSet"]["security"]
        assert security["containerSecurityContext"]["privileged"] is True

    def test_the_unsafe_layer_still_cannot_break_the_portal(self) -> None:
        problems = validate_overrides(
            "exportKubeConfig:\n  server: https://elsewhere\n", CFG, unsafe=True
        )

        assert problems == [
            "vCluster overrides: exportKubeConfig is not allowed: the portal sets the exported "
            "kubeconfigs itself."
        ]


class TestQuotaAndLimitsRenderedByTheChart:
    """What helm makes of the portal's values: no hidden chart default caps a demo."""

    def objects(self, **changes: Any) -> list[dict[str, Any]]:
        values = render_values(example_spec(**changes), CFG)
        return render_chart(to_yaml(values), name="demo-example", namespace="vcluster-x")

    def test_the_quota_holds_exactly_the_portals_keys(self) -> None:
        [quota] = of_kind(self.objects(), "ResourceQuota")
        chart_defaults = yaml.safe_load((SCHEMA.parent / "values.yaml").read_text())["policies"][
            "resourceQuota"
        ]["quota"]

        hard = quota["spec"]["hard"]
        expected = {"requests.cpu", "requests.memory", "count/pods"} | {
            key for key, value in QUOTA_DEFAULTS.items() if value is not None
        }
        assert set(hard) == expected
        # Every default the chart would have merged in is decided by the portal.
        assert set(chart_defaults) <= set(QUOTA_DEFAULTS) | {"requests.cpu", "requests.memory"} | {
            "count/pods"
        }
        assert hard["count/services"] == "50"
        assert hard["services.loadbalancers"] == "0"
        assert "limits.memory" not in hard

    def test_the_limit_range_requests_little_ephemeral_storage(self) -> None:
        [limit_range] = of_kind(self.objects(), "LimitRange")

        [limits] = limit_range["spec"]["limits"]
        assert limits["defaultRequest"]["ephemeral-storage"] == "256Mi"
        assert parse_quantity(limits["defaultRequest"]["ephemeral-storage"]) < parse_quantity("3Gi")

    def test_a_template_may_raise_a_limit_within_bounds(self) -> None:
        overrides = {"policies": {"resourceQuota": {"quota": {"count/services": 120}}}}
        [quota] = of_kind(self.objects(vcluster_overrides=overrides), "ResourceQuota")

        assert quota["spec"]["hard"]["count/services"] == "120"


class TestNetworkPolicy:
    def test_the_ingress_controller_reaches_the_demos_apps(self) -> None:
        cfg = VClusterSettings(network_policy=True)
        values = render_values(example_spec(), cfg)
        objects = render_chart(to_yaml(values), name="demo-example", namespace="vcluster-x")

        [workload] = [
            p
            for p in of_kind(objects, "NetworkPolicy")
            if p["metadata"]["name"].startswith("vc-work")
        ]
        peers = [peer for rule in workload["spec"]["ingress"] for peer in rule["from"]]
        assert {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
        } in peers

    def test_without_that_rule_the_chart_admits_only_the_vcluster_itself(self) -> None:
        # The upstream policy alone: what made live links silent with VCLUSTER_NETWORK_POLICY.
        values = render_values(example_spec(), VClusterSettings(network_policy=True))
        values["policies"]["networkPolicy"].pop("workload")
        objects = render_chart(to_yaml(values), name="demo-example", namespace="vcluster-x")

        [workload] = [
            p
            for p in of_kind(objects, "NetworkPolicy")
            if p["metadata"]["name"].startswith("vc-work")
        ]
        peers = [peer for rule in workload["spec"]["ingress"] for peer in rule["from"]]
        assert all("namespaceSelector" not in peer for peer in peers)

    def test_a_malformed_selector_is_a_configuration_error(self) -> None:
        cfg = VClusterSettings(network_policy=True, ingress_namespace_selector="ingress-nginx")

        assert any("VCLUSTER_INGRESS_NAMESPACE_SELECTOR" in p for p in cfg.problems())


def _first_leaf(tree: Any, prefix: str = "") -> str:
    if isinstance(tree, dict) and tree:
        key, value = next(iter(tree.items()))
        return _first_leaf(value, f"{prefix}.{key}" if prefix else key)
    return prefix


def _tree(path: str, value: Any) -> dict[str, Any]:
    node: Any = value
    for key in reversed(_split(path)):
        node = {key: node}
    return node


def _split(path: str) -> list[str]:
    # Quota keys contain dots (requests.cpu): they are the last part after `quota.`.
    head, sep, key = path.partition(".quota.")
    return [*head.split("."), "quota", key] if sep else path.split(".")
