"""The worker's RBAC, judged by Kubernetes' rules against the upstream vCluster chart.

Nothing here compares the portal with itself. For every sample template and the example spec, at
host Kubernetes 1.33 and 1.35, the portal renders its vcluster.yaml, the real `helm template` of
the vendored upstream chart (v0.36.1) turns it into the objects helm would create, and
tests/upstream/rbac.py, which follows the API server's authorizer and escalation checks, decides
whether the worker's rights from the rendered `k8s/overlays/production` let it install them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from demos.backends.vcluster import entry, naming
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.values import example_spec, render_values, to_yaml
from tests.upstream.chart import HOST_VERSIONS, render_chart
from tests.upstream.rbac import WORKER, Rbac, Subject, production_rbac, uncovered

from .support import TREES, Manifest, config_data, find, name_of, of_kind, pod_spec, render

BACKEND_ROLE = "demo-portal-backend"
DEMO_ROLE = "demo-portal-demo-namespace"
WEB_ACCOUNT = Subject("demo-portal", "portal")
RBAC_FIELDS = ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs")
# Every verb helm 4 uses on what it installs: server-side apply (patch), reads and watches for
# --wait and upgrades, update and delete for upgrades and uninstall.
HELM_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace", "StorageClass"}
# Namespaces that are not demos: the portal's own, the system's, anyone else's.
OTHER_NAMESPACES = ("demo-portal", "kube-system", "default", "ingress-nginx", "vcluster-not-ours")
SAMPLES = ("webshop", "observability", "data-platform", "example", "allowed-overrides")


def production_settings() -> VClusterSettings:
    """The backend's settings as the production overlay sets them, plus the API ingress (an
    operator option) so its Ingress is among the objects checked."""
    data = config_data(render("overlays/production"))
    return VClusterSettings(
        base_domain=data["DEMO_BASE_DOMAIN"],
        network_policy=data.get("VCLUSTER_NETWORK_POLICY") == "true",
        ingress_namespace_selector=data["VCLUSTER_INGRESS_NAMESPACE_SELECTOR"],
        namespace_role=data["VCLUSTER_NAMESPACE_ROLE"],
        worker_service_account=data["VCLUSTER_WORKER_SERVICE_ACCOUNT"],
        portal_instance=data["VCLUSTER_PORTAL_INSTANCE"],
        api_ingress_host="{name}-api.{base_domain}",
    )


def allowed_overrides_spec() -> dict[str, Any]:
    """The example demo with every sync a template admin may switch on (overrides.py)."""
    from demos.backends.vcluster import overrides

    sync = {
        "toHost": {kind: {"enabled": True} for kind in overrides.SYNC_TO_HOST},
        "fromHost": {kind: {"enabled": True} for kind in overrides.SYNC_FROM_HOST},
    }
    return example_spec("demo-overrides", vcluster_overrides={"sync": sync})


_SPECS: dict[str, dict[str, Any]] = {}


@pytest.fixture
def specs(db: None) -> dict[str, dict[str, Any]]:
    """Every sample template's frozen spec as a demo would get it, plus the example specs.
    Rendered once (through the database, as the portal does) and reused."""
    if not _SPECS:
        from demos import seed
        from demos.engine.specs import render_spec
        from demos.models import Demo, DemoTemplate

        _SPECS["example"] = example_spec("demo-example")
        _SPECS["allowed-overrides"] = allowed_overrides_spec()
        seed.seed_templates()
        for index, template in enumerate(DemoTemplate.objects.order_by("slug")):
            demo = Demo(template=template, cluster_name=f"demo-0f3a9c{index:02d}")
            _SPECS[template.slug] = render_spec(demo)
    assert set(SAMPLES) <= set(_SPECS), sorted(_SPECS)
    return _SPECS


@dataclass(frozen=True)
class Install:
    """One demo's chart objects and the host's RBAC just before helm installs them."""

    namespace: str
    objects: list[Manifest]
    worker_binding: Manifest
    rbac: Rbac

    def one(self, kind: str) -> Manifest:
        (found,) = [o for o in self.objects if o["kind"] == kind]
        return found


def worker_binding(cfg: VClusterSettings, namespace: str) -> Manifest:
    """The RoleBinding the backend creates in each new demo namespace (the contract with
    demos/backends/vcluster/backend.py: name, role and subject from the settings)."""
    account_namespace, account = cfg.worker_service_account.split("/")
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": naming.WORKER_ROLE_BINDING, "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": cfg.namespace_role,
        },
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}],
    }


@pytest.fixture(params=[(s, v) for s in SAMPLES for v in HOST_VERSIONS], ids=lambda p: "-".join(p))
def install(request: pytest.FixtureRequest, specs: dict[str, dict[str, Any]]) -> Install:
    sample, version = request.param
    cfg = production_settings()
    spec = specs[sample]
    namespace = naming.namespace_for(spec["cluster_name"], cfg.namespace_prefix)
    objects = render_chart(
        to_yaml(render_values(spec, cfg)),
        name=spec["cluster_name"],
        namespace=namespace,
        kube_version=version,
    )
    return Install(namespace, objects, worker_binding(cfg, namespace), Rbac(production_rbac()))


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


def group_of(obj: Manifest) -> str:
    api_version = obj["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


class TestTheChartInstalls:
    def test_the_worker_may_bind_its_demo_role_before_holding_anything_there(
        self, install: Install
    ) -> None:
        rbac = install.rbac
        assert not rbac.allows(
            WORKER, verb="get", group="", resource="secrets", namespace=install.namespace
        )
        assert rbac.escalation_refusal(WORKER, install.worker_binding) is None

    def test_it_holds_every_rule_of_the_charts_role_in_the_demo_namespace(
        self, install: Install
    ) -> None:
        install.rbac.add(install.worker_binding)
        role = install.one("Role")
        held = install.rbac.rules_for(WORKER, install.namespace)
        assert uncovered(held, role["rules"]) == []

    def test_it_holds_every_rule_of_the_charts_cluster_role_cluster_wide(
        self, install: Install
    ) -> None:
        install.rbac.add(install.worker_binding)
        cluster_role = install.one("ClusterRole")
        assert uncovered(install.rbac.rules_for(WORKER), cluster_role["rules"]) == []

    def test_it_may_manage_every_object_the_chart_renders(self, install: Install) -> None:
        install.rbac.add(install.worker_binding)
        refused = []
        for obj in install.objects:
            scoped = obj["kind"] not in CLUSTER_SCOPED
            if scoped:
                assert obj["metadata"].get("namespace") == install.namespace, name_of(obj)
            for verb in HELM_VERBS:
                if not install.rbac.allows(
                    WORKER,
                    verb=verb,
                    group=group_of(obj),
                    resource=plural(obj["kind"]),
                    namespace=install.namespace if scoped else None,
                    name=None if verb in ("list", "watch", "create") else obj["metadata"]["name"],
                ):
                    refused.append(f"{verb} {name_of(obj)}")
        # Helm's own release record, a Secret sh.helm.release.v1.<name>.v<revision>.
        for verb in ("get", "list", "create", "update", "delete"):
            if not install.rbac.allows(
                WORKER, verb=verb, group="", resource="secrets", namespace=install.namespace
            ):
                refused.append(f"{verb} helm release Secret")
        assert not refused

    def test_kubernetes_lets_it_create_the_charts_rbac_objects(self, install: Install) -> None:
        install.rbac.add(install.worker_binding)
        # In helm's install order: roles before the bindings that refer to them.
        for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            obj = install.one(kind)
            assert install.rbac.escalation_refusal(WORKER, obj) is None, name_of(obj)
            install.rbac.add(obj)


class TestTheOldSingleRoleWasRefused:
    def test_a_role_without_event_creation_cannot_install_the_chart(self) -> None:
        # The previous ClusterRole had no `create` on events (nor events.k8s.io, nor patch on
        # deployments and replicasets): Kubernetes refuses the chart's Role outright.
        cfg = production_settings()
        spec = example_spec("demo-old")
        namespace = naming.namespace_for("demo-old", cfg.namespace_prefix)
        objects = render_chart(
            to_yaml(render_values(spec, cfg)), name="demo-old", namespace=namespace
        )
        (chart_role,) = [o for o in objects if o["kind"] == "Role"]
        weakened = copy.deepcopy(production_rbac())
        demo_role = next(o for o in weakened if o["metadata"]["name"] == DEMO_ROLE)
        for rule in demo_role["rules"]:
            if rule["resources"] == ["events"]:
                rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
        rbac = Rbac(weakened)
        rbac.add(worker_binding(cfg, namespace))

        refusal = rbac.escalation_refusal(WORKER, chart_role)

        assert refusal is not None
        assert "is attempting to grant RBAC permissions not currently held" in refusal
        assert 'Resources:["events"], Verbs:["create"]' in refusal
        assert (
            Rbac([*production_rbac(), worker_binding(cfg, namespace)]).escalation_refusal(
                WORKER, chart_role
            )
            is None
        )


def demo_rbac() -> Rbac:
    """Production RBAC with one demo namespace bound, as on a host running a demo."""
    cfg = production_settings()
    return Rbac([*production_rbac(), worker_binding(cfg, "vcluster-demo-1")])


# What HostCluster.put_object sends for each object of a demo's gated entry (POST, then GET and
# PUT when it exists), and delete, for an operator or a later clean-up.
GATE_VERBS = ("get", "create", "update", "delete")


def gate_objects(controller: str) -> list[Manifest]:
    """The gated entry the backend creates for demo `demo-1` with this controller."""
    cfg = VClusterSettings(
        gate=True, gate_controller=controller, gateway="envoy-gateway-system/demos"
    )
    return entry.entry_objects(example_spec("demo-1", entry_service="shop/web:80"), cfg)


class TestGateRouting:
    @pytest.mark.parametrize("controller", ["ingress-nginx", "traefik", "envoy-gateway"])
    def test_the_worker_may_manage_a_demos_gated_entry_in_its_namespace(
        self, controller: str
    ) -> None:
        rbac = demo_rbac()
        missing = [
            f"{verb} {obj['kind']} {obj['metadata']['name']}"
            for obj in gate_objects(controller)
            for verb in GATE_VERBS
            if not rbac.allows(
                WORKER,
                verb=verb,
                group=group_of(obj),
                resource=plural(obj["kind"]),
                namespace="vcluster-demo-1",
                name=None if verb == "create" else obj["metadata"]["name"],
            )
        ]
        assert missing == []

    @pytest.mark.parametrize("namespace", OTHER_NAMESPACES)
    @pytest.mark.parametrize("controller", ["ingress-nginx", "traefik", "envoy-gateway"])
    def test_nowhere_else(self, controller: str, namespace: str) -> None:
        rbac = demo_rbac()
        held = [
            f"{verb} {obj['kind']}"
            for obj in gate_objects(controller)
            for verb in GATE_VERBS
            if rbac.allows(
                WORKER,
                verb=verb,
                group=group_of(obj),
                resource=plural(obj["kind"]),
                namespace=namespace,
                name=obj["metadata"]["name"],
            )
        ]
        assert held == []


class TestWhatStaysOutOfReach:
    @pytest.mark.parametrize("namespace", [*OTHER_NAMESPACES, None])
    @pytest.mark.parametrize(
        "resource", ["secrets", "pods", "pods/exec", "pods/log", "configmaps", "serviceaccounts"]
    )
    def test_no_secret_pod_or_configmap_right_outside_demo_namespaces(
        self, namespace: str | None, resource: str
    ) -> None:
        rbac = demo_rbac()
        held = [
            verb
            for verb in (*HELM_VERBS, "deletecollection")
            if rbac.allows(WORKER, verb=verb, group="", resource=resource, namespace=namespace)
            or rbac.allows(
                WORKER, verb=verb, group="", resource=resource, namespace=namespace, name="x"
            )
        ]
        assert not held

    def test_it_cannot_relabel_or_change_namespaces(self) -> None:
        rbac = demo_rbac()
        for verb in ("update", "patch"):
            assert not rbac.allows(
                WORKER, verb=verb, group="", resource="namespaces", name="kube-system"
            )

    def test_it_can_bind_no_other_cluster_role(self) -> None:
        rbac = demo_rbac()
        stand_ins = {
            "cluster-admin": {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            "admin": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            "view": {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            "vc-other-v-vcluster-other": {
                "apiGroups": [""],
                "resources": ["nodes"],
                "verbs": ["get"],
            },
        }
        for name, rule in stand_ins.items():
            rbac.add(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": name},
                    "rules": [rule],
                }
            )
        for name in (*stand_ins, BACKEND_ROLE):
            assert not rbac.allows(
                WORKER,
                verb="bind",
                group="rbac.authorization.k8s.io",
                resource="clusterroles",
                namespace="vcluster-demo-1",
                name=name,
            ), name
        # Without `bind`, a binding needs the role's rights, which the worker does not hold
        # outside demo namespaces. (Inside one, binding rights it already holds there is no
        # escalation for RBAC; the admission policy demo-portal-worker-rolebindings allows only
        # its demo role and the namespace's own Roles.)
        for name in stand_ins:
            grant = worker_binding(production_settings(), "default")
            grant["roleRef"]["name"] = name
            assert rbac.escalation_refusal(WORKER, grant) is not None, name

    def test_it_can_neither_escalate_nor_impersonate(self) -> None:
        rbac = demo_rbac()
        for namespace in ("vcluster-demo-1", None):
            for resource in ("roles", "clusterroles"):
                assert not rbac.allows(
                    WORKER,
                    verb="escalate",
                    group="rbac.authorization.k8s.io",
                    resource=resource,
                    namespace=namespace,
                )
            for resource in ("users", "groups", "serviceaccounts"):
                assert not rbac.allows(
                    WORKER, verb="impersonate", group="", resource=resource, namespace=namespace
                )

    def test_a_template_syncing_priority_classes_from_the_host_is_refused(self) -> None:
        # Why sync.fromHost.priorityClasses is off the template admins' allow-list
        # (overrides.SYNC_FROM_HOST): the chart would grant write access to PriorityClasses.
        cfg = production_settings()
        spec = example_spec(
            "demo-prio",
            vcluster_overrides={"sync": {"fromHost": {"priorityClasses": {"enabled": True}}}},
        )
        namespace = naming.namespace_for("demo-prio", cfg.namespace_prefix)
        objects = render_chart(
            to_yaml(render_values(spec, cfg)), name="demo-prio", namespace=namespace
        )
        (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
        refusal = demo_rbac().escalation_refusal(WORKER, cluster_role)
        assert refusal is not None
        assert "priorityclasses" in refusal

    def test_the_web_account_holds_nothing(self) -> None:
        # k8s/base/serviceaccounts.yaml: web, cron and the migration Job run as `portal`, which
        # needs no API access (prospects' kubeconfigs are served from the database).
        rbac = demo_rbac()
        for namespace in (*OTHER_NAMESPACES, "vcluster-demo-1", None):
            assert rbac.rules_for(WEB_ACCOUNT, namespace) == [], namespace


@pytest.fixture(params=TREES)
def objects(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    return render(request.param)


def _all_rules(objects: tuple[Manifest, ...]) -> Iterator[tuple[Manifest, Manifest]]:
    for role in of_kind(objects, "ClusterRole") + of_kind(objects, "Role"):
        for rule in role["rules"]:
            yield role, rule


class TestManifests:
    def test_no_rule_uses_a_wildcard(self, objects: tuple[Manifest, ...]) -> None:
        rules = list(_all_rules(objects))
        assert rules
        for role, rule in rules:
            for field in RBAC_FIELDS:
                assert not any("*" in value for value in rule.get(field, [])), name_of(role)

    def test_only_the_backend_role_is_bound_and_only_to_the_worker(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        # The demo namespace role is bound by the worker itself, namespace by namespace.
        bindings = of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding")
        assert [name_of(b) for b in bindings] == [f"ClusterRoleBinding/{BACKEND_ROLE}"]
        assert bindings[0]["roleRef"]["name"] == BACKEND_ROLE
        assert bindings[0]["subjects"] == [
            {"kind": "ServiceAccount", "name": WORKER.name, "namespace": WORKER.namespace}
        ]
        find(objects, "ClusterRole", DEMO_ROLE)
        find(objects, "ServiceAccount", WORKER.name)
        assert pod_spec(find(objects, "Deployment", "portal-worker"))["serviceAccountName"] == (
            WORKER.name
        )

    def test_service_accounts_mount_no_token_by_default(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        for account in of_kind(objects, "ServiceAccount"):
            assert account["automountServiceAccountToken"] is False, name_of(account)

    def test_the_settings_name_the_role_and_account_the_manifests_define(self) -> None:
        objects = render("overlays/production")
        cfg = production_settings()
        find(objects, "ClusterRole", cfg.namespace_role)
        assert cfg.worker_service_account == f"{WORKER.namespace}/{WORKER.name}"
        data = config_data(objects)
        assert data["VCLUSTER_NETWORK_POLICY"] == "true"
        assert data["VCLUSTER_IN_CLUSTER"] == "true"
