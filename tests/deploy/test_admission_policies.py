"""The ValidatingAdmissionPolicies in k8s/base/admission-policies.yaml, evaluated.

Each policy's CEL expressions run under cel-python against admission requests shaped as the API
server builds them (`request`, `object`, `oldObject`, `namespaceObject`, `variables`), for
requests the portal makes and must keep making, and for the abuses the policies exist to stop.
Matching (resource rules, operations, namespace selector, match conditions) follows
`staging/src/k8s.io/apiserver/pkg/admission/plugin/policy/matching`; an expression that fails to
evaluate refuses the request, as `failurePolicy: Fail` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import celpy
import pytest
from celpy import celtypes

from demos.backends.vcluster import entry
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.values import example_spec
from tests.upstream.rbac import WORKER, Rbac, production_rbac

from .support import TREES, Manifest, config_data, find, of_kind, render

DEMO_ROLE = "demo-portal-demo-namespace"
ADMIN = "kubernetes-admin"
SYNCER = "system:serviceaccount:vcluster-demo-abc:vc-demo-abc"
DEMO_LABELS = {
    "app.kubernetes.io/managed-by": "demo-portal",
    "demo-portal/instance": "production",
    "demo-portal/cluster": "demo-abc",
}
RESOURCES = {
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "ClusterRole": ("rbac.authorization.k8s.io", "clusterroles"),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "clusterrolebindings"),
    "Namespace": ("", "namespaces"),
    "Ingress": ("networking.k8s.io", "ingresses"),
}
CEL = celpy.Environment()


@dataclass(frozen=True)
class Request:
    """One admission request: who does what to which object, in which namespace."""

    operation: str
    kind: str
    username: str
    obj: Manifest | None = None
    old: Manifest | None = None
    namespace: Manifest | None = None
    name: str = ""
    groups: tuple[str, ...] = field(default=())

    @property
    def target(self) -> Manifest:
        found = self.obj if self.obj is not None else self.old
        assert found is not None
        return found

    def activation(self) -> dict[str, Any]:
        group, resource = RESOURCES[self.kind]
        meta = self.target["metadata"]
        request = {
            "operation": self.operation,
            "kind": {"group": group, "version": "v1", "kind": self.kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "name": self.name or meta["name"],
            "namespace": meta.get("namespace", ""),
            "userInfo": {"username": self.username, "groups": list(self.groups)},
        }
        return {
            "request": celpy.json_to_cel(request),
            "object": celpy.json_to_cel(self.obj),
            "oldObject": celpy.json_to_cel(self.old),
            "namespaceObject": celpy.json_to_cel(self.namespace),
            "params": None,
        }


def evaluate(expression: str, activation: Mapping[str, Any]) -> Any:
    return CEL.program(CEL.compile(expression)).evaluate(dict(activation))


def matches(policy: Manifest, request: Request) -> bool:
    spec = policy["spec"]
    constraints = spec["matchConstraints"]
    group, resource = RESOURCES[request.kind]
    if not any(
        group in rule["apiGroups"]
        and resource in rule["resources"]
        and request.operation in rule["operations"]
        for rule in constraints["resourceRules"]
    ):
        return False
    selector = constraints.get("namespaceSelector", {}).get("matchLabels", {})
    if selector:
        labels = (request.namespace or {}).get("metadata", {}).get("labels", {})
        if not selector.items() <= labels.items():
            return False
    activation = request.activation()
    return all(bool(evaluate(c["expression"], activation)) for c in spec.get("matchConditions", []))


def refusals(policy: Manifest, request: Request) -> list[str]:
    """What the policy answers: [] when it admits the request (or does not apply)."""
    if not matches(policy, request):
        return []
    activation = request.activation()
    variables: dict[celtypes.StringType, Any] = {}
    activation["variables"] = celtypes.MapType(variables)
    found = []
    try:
        for variable in policy["spec"].get("variables", []):
            variables[celtypes.StringType(variable["name"])] = evaluate(
                variable["expression"], activation
            )
            activation["variables"] = celtypes.MapType(variables)
        for validation in policy["spec"]["validations"]:
            if not bool(evaluate(validation["expression"], activation)):
                if "messageExpression" in validation:
                    found.append(str(evaluate(validation["messageExpression"], activation)))
                else:
                    found.append(" ".join(validation["message"].split()))
    except celpy.CELEvalError as exc:
        found.append(f"evaluation error: {exc}")
    return found


def policy(name: str, tree: str = "overlays/production") -> Manifest:
    return find(render(tree), "ValidatingAdmissionPolicy", name)


def namespace(name: str, labels: Mapping[str, str] | None = None) -> Manifest:
    meta: dict[str, Any] = {"name": name}
    if labels is not None:
        meta["labels"] = {"kubernetes.io/metadata.name": name, **labels}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


DEMO_NS = namespace("vcluster-demo-abc", DEMO_LABELS)
KUBE_SYSTEM = namespace("kube-system", {})


def role_binding(ns: str, role_kind: str, role_name: str, *subjects: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "b", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


WORKER_SUBJECT = {"kind": "ServiceAccount", "name": WORKER.name, "namespace": WORKER.namespace}


class TestStructure:
    @pytest.fixture(params=TREES)
    def objects(self, request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
        return render(request.param)

    def test_every_policy_is_bound_to_deny_and_fails_closed(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        policies = of_kind(objects, "ValidatingAdmissionPolicy")
        assert len(policies) == 4
        bindings = {
            b["spec"]["policyName"]: b for b in of_kind(objects, "ValidatingAdmissionPolicyBinding")
        }
        for found in policies:
            assert found["apiVersion"] == "admissionregistration.k8s.io/v1"
            assert found["spec"]["failurePolicy"] == "Fail"
            assert bindings[found["metadata"]["name"]]["spec"]["validationActions"] == ["Deny"]

    def test_every_expression_compiles(self, objects: tuple[Manifest, ...]) -> None:
        for found in of_kind(objects, "ValidatingAdmissionPolicy"):
            spec = found["spec"]
            for item in (
                *spec.get("matchConditions", []),
                *spec.get("variables", []),
                *spec["validations"],
            ):
                CEL.compile(item["expression"])
                if "messageExpression" in item:
                    CEL.compile(item["messageExpression"])

    def test_worker_policies_name_the_worker_and_its_role_as_the_manifests_do(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        find(objects, "ClusterRole", DEMO_ROLE)
        find(objects, "ServiceAccount", WORKER.name)
        for name in ("rolebindings", "cluster-rbac", "namespaces"):
            (condition,) = policy(f"demo-portal-worker-{name}")["spec"]["matchConditions"]
            assert condition["expression"] == f"request.userInfo.username == '{WORKER.username}'"

    def test_the_ingress_policy_uses_each_trees_demo_base_domain(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        found = find(objects, "ValidatingAdmissionPolicy", "demo-portal-demo-ingress-hosts")
        variables = {v["name"]: v["expression"] for v in found["spec"]["variables"]}
        assert variables["baseDomain"] == f"'{config_data(objects)['DEMO_BASE_DOMAIN']}'"


class TestWorkerRoleBindings:
    name = "demo-portal-worker-rolebindings"

    def create(self, binding: Manifest, ns: Manifest, user: str = WORKER.username) -> list[str]:
        return refusals(
            policy(self.name), Request("CREATE", "RoleBinding", user, binding, None, ns)
        )

    def test_the_workers_own_binding_and_the_charts_are_admitted(self) -> None:
        ns = DEMO_NS["metadata"]["name"]
        assert (
            self.create(role_binding(ns, "ClusterRole", DEMO_ROLE, WORKER_SUBJECT), DEMO_NS) == []
        )
        chart = role_binding(
            ns, "Role", "vc-demo-abc", {"kind": "ServiceAccount", "name": "vc-demo-abc"}
        )
        assert self.create(chart, DEMO_NS) == []

    def test_only_in_demo_namespaces(self) -> None:
        refused = self.create(
            role_binding("kube-system", "ClusterRole", DEMO_ROLE, WORKER_SUBJECT), KUBE_SYSTEM
        )
        assert refused == [
            "The portal's worker may bind roles only in demo namespaces (labelled "
            "app.kubernetes.io/managed-by=demo-portal)."
        ]
        unlabelled = namespace("team-x")
        assert self.create(role_binding("team-x", "Role", "r", WORKER_SUBJECT), unlabelled)

    @pytest.mark.parametrize("role", ["cluster-admin", "admin", "demo-portal-backend"])
    def test_no_other_cluster_role(self, role: str) -> None:
        ns = DEMO_NS["metadata"]["name"]
        refused = self.create(role_binding(ns, "ClusterRole", role, WORKER_SUBJECT), DEMO_NS)
        assert len(refused) == 1
        assert "may bind only a Role of the demo namespace" in refused[0]

    @pytest.mark.parametrize(
        "subject",
        [
            {"kind": "Group", "name": "system:authenticated"},
            {"kind": "ServiceAccount", "name": "default", "namespace": "vcluster-demo-abc"},
            {"kind": "User", "name": "mallory"},
        ],
    )
    def test_the_demo_role_goes_to_the_worker_only(self, subject: dict[str, str]) -> None:
        ns = DEMO_NS["metadata"]["name"]
        binding = role_binding(ns, "ClusterRole", DEMO_ROLE, WORKER_SUBJECT, subject)
        assert self.create(binding, DEMO_NS) == [
            "The ClusterRole demo-portal-demo-namespace may be bound only to the portal's worker."
        ]

    def test_other_users_are_not_concerned(self) -> None:
        binding = role_binding(
            "kube-system", "ClusterRole", "cluster-admin", {"kind": "User", "name": "x"}
        )
        assert self.create(binding, KUBE_SYSTEM, user=ADMIN) == []


def cluster_object(kind: str, name: str, role: str = "") -> Manifest:
    obj: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
    }
    if kind == "ClusterRoleBinding":
        obj["roleRef"] = {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role,
        }
        obj["subjects"] = [WORKER_SUBJECT]
    else:
        obj["rules"] = []
    return obj


class TestWorkerClusterRbac:
    name = "demo-portal-worker-cluster-rbac"
    chart_name = "vc-demo-abc-v-vcluster-demo-abc"

    def decide(self, operation: str, obj: Manifest, user: str = WORKER.username) -> list[str]:
        new, old = (
            (None, obj) if operation == "DELETE" else (obj, obj if operation == "UPDATE" else None)
        )
        return refusals(policy(self.name), Request(operation, obj["kind"], user, new, old))

    @pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE"])
    def test_the_charts_objects_are_admitted(self, operation: str) -> None:
        assert self.decide(operation, cluster_object("ClusterRole", self.chart_name)) == []
        binding = cluster_object("ClusterRoleBinding", self.chart_name, self.chart_name)
        assert self.decide(operation, binding) == []

    @pytest.mark.parametrize("operation", ["UPDATE", "DELETE"])
    @pytest.mark.parametrize("name", ["cluster-admin", "system:node", "demo-portal-backend"])
    def test_other_cluster_roles_are_out_of_reach(self, operation: str, name: str) -> None:
        refused = self.decide(operation, cluster_object("ClusterRole", name))
        assert len(refused) == 1
        assert "only the vCluster chart's ClusterRoles" in refused[0]

    def test_the_demo_role_is_never_bound_cluster_wide(self) -> None:
        # RBAC alone would allow it: the worker holds `bind` on that role everywhere.
        binding = cluster_object("ClusterRoleBinding", "vc-sneaky", DEMO_ROLE)
        assert Rbac(production_rbac()).escalation_refusal(WORKER, binding) is None
        assert self.decide("CREATE", binding) == [
            "The ClusterRole demo-portal-demo-namespace is never bound cluster-wide."
        ]

    def test_other_users_are_not_concerned(self) -> None:
        assert self.decide("DELETE", cluster_object("ClusterRole", "anything"), user=ADMIN) == []


class TestWorkerNamespaces:
    name = "demo-portal-worker-namespaces"

    def decide(self, operation: str, ns: Manifest, user: str = WORKER.username) -> list[str]:
        new, old = (None, ns) if operation == "DELETE" else (ns, None)
        return refusals(policy(self.name), Request(operation, "Namespace", user, new, old))

    @pytest.mark.parametrize("operation", ["CREATE", "DELETE"])
    def test_demo_namespaces_are_admitted(self, operation: str) -> None:
        assert self.decide(operation, DEMO_NS) == []

    @pytest.mark.parametrize("operation", ["CREATE", "DELETE"])
    @pytest.mark.parametrize(
        "ns",
        [
            KUBE_SYSTEM,
            namespace("demo-portal", {"app.kubernetes.io/part-of": "demo-portal"}),
            namespace("bare"),
            namespace("half", {"app.kubernetes.io/managed-by": "demo-portal"}),
        ],
        ids=lambda ns: ns["metadata"]["name"],
    )
    def test_anything_else_is_refused(self, operation: str, ns: Manifest) -> None:
        refused = self.decide(operation, ns)
        assert len(refused) == 1
        assert "creates and deletes only demo namespaces" in refused[0]

    def test_other_users_are_not_concerned(self) -> None:
        assert self.decide("DELETE", KUBE_SYSTEM, user=ADMIN) == []


def ingress(
    *hosts: str | None, tls: tuple[str, ...] = (), default_backend: bool = False
) -> Manifest:
    backend = {"service": {"name": "shop", "port": {"number": 80}}}
    rules = []
    for host in hosts:
        rule: dict[str, Any] = {
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}
        }
        if host is not None:
            rule["host"] = host
        rules.append(rule)
    spec: dict[str, Any] = {"rules": rules}
    if tls:
        spec["tls"] = [{"hosts": list(tls), "secretName": "shop-tls"}]
    if default_backend:
        spec["defaultBackend"] = backend
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "shop-x-default-x-demo-abc", "namespace": "vcluster-demo-abc"},
        "spec": spec,
    }


@pytest.fixture(params=TREES)
def ingress_tree(request: pytest.FixtureRequest) -> tuple[Manifest, str]:
    tree = request.param
    return policy("demo-portal-demo-ingress-hosts", tree), config_data(render(tree))[
        "DEMO_BASE_DOMAIN"
    ]


class TestDemoIngressHosts:
    def decide(self, found: Manifest, obj: Manifest, ns: Manifest = DEMO_NS) -> list[str]:
        return refusals(found, Request("CREATE", "Ingress", SYNCER, obj, None, ns))

    def test_the_demos_own_names_are_admitted(self, ingress_tree: tuple[Manifest, str]) -> None:
        found, base = ingress_tree
        own = f"demo-abc.{base}"
        obj = ingress(
            own,
            f"shop.{own}",
            f"*.{own}",
            f"a.b.{own}",
            f"demo-abc-api.{base}",
            tls=(own, f"*.{own}"),
        )
        assert self.decide(found, obj) == []

    @pytest.mark.parametrize(
        "host",
        [
            "portal.example.com",
            "demo-other.{base}",
            "evil-demo-abc.{base}",
            "demo-abc.{base}.attacker.example",
            "*.{base}",
            "{base}",
            "demo-other-api.{base}",
        ],
    )
    def test_other_hosts_are_refused(self, ingress_tree: tuple[Manifest, str], host: str) -> None:
        found, base = ingress_tree
        refused = self.decide(found, ingress(f"demo-abc.{base}", host.format(base=base)))
        assert refused == [
            f"Every rule of a demo Ingress needs a host: demo-abc.{base}, a name under it, or "
            f"demo-abc-api.{base}."
        ]

    def test_a_rule_without_host_or_a_default_backend_is_refused(
        self, ingress_tree: tuple[Manifest, str]
    ) -> None:
        found, base = ingress_tree
        assert len(self.decide(found, ingress(None))) == 1
        refused = self.decide(found, ingress(f"demo-abc.{base}", default_backend=True))
        assert refused == [
            "A demo's Ingress may not set a default backend (it would answer for every host)."
        ]

    def test_foreign_tls_hosts_are_refused(self, ingress_tree: tuple[Manifest, str]) -> None:
        found, base = ingress_tree
        refused = self.decide(found, ingress(f"demo-abc.{base}", tls=("portal.example.com",)))
        assert len(refused) == 1
        assert refused[0].startswith("TLS hosts of a demo Ingress must be")

    def test_a_demo_namespace_without_its_cluster_label_owns_no_host(
        self, ingress_tree: tuple[Manifest, str]
    ) -> None:
        found, base = ingress_tree
        labels = {k: v for k, v in DEMO_LABELS.items() if k != "demo-portal/cluster"}
        refused = self.decide(found, ingress(f"demo-abc.{base}"), namespace("vcluster-x", labels))
        assert refused[0].startswith("This demo namespace has no demo-portal/cluster label")

    def test_namespaces_that_are_not_demos_are_not_concerned(
        self, ingress_tree: tuple[Manifest, str]
    ) -> None:
        found, _ = ingress_tree
        assert self.decide(found, ingress("anything.example.com"), namespace("team-x", {})) == []


class TestTheGatedEntry:
    @pytest.mark.parametrize("controller", ["ingress-nginx", "traefik"])
    @pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
    def test_the_workers_routes_of_a_demo_host_are_admitted(
        self, ingress_tree: tuple[Manifest, str], controller: str, operation: str
    ) -> None:
        found, base = ingress_tree
        cfg = VClusterSettings(
            gate=True, gate_controller=controller, base_domain=base, entry_tls_secret="wildcard"
        )
        spec = example_spec("demo-abc", entry_service="shop/web:8080")
        routes = [o for o in entry.entry_objects(spec, cfg) if o["kind"] == "Ingress"]

        assert len(routes) == 2
        for route in routes:
            route["metadata"]["namespace"] = "vcluster-demo-abc"
            request = Request(operation, "Ingress", WORKER.username, route, None, DEMO_NS)
            assert refusals(found, request) == []
