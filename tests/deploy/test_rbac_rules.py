"""tests/upstream/rbac.py against the behaviour Kubernetes documents and tests upstream.

Cases from the RBAC reference ("Privilege escalation prevention and bootstrapping", "Referring to
resources", "Referring to subjects") and from the upstream unit tests of the same rules
(`policy_comparator_test.go`, `rbac_test.go`), so the emulation the RBAC tests rely on is itself
held to Kubernetes' behaviour rather than to ours.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.upstream.rbac import Rbac, Subject, User, rule_covers, uncovered

RBAC = "rbac.authorization.k8s.io/v1"
ALICE = User("alice")
SA = Subject("team-a", "deployer")


def cluster_role(name: str, *rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": RBAC,
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": list(rules),
        **extra,
    }


def role(namespace: str, name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": RBAC,
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": list(rules),
    }


def binding(
    kind: str,
    name: str,
    role_kind: str,
    role_name: str,
    *subjects: dict[str, str],
    namespace: str = "",
) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def rule(groups: list[str], resources: list[str], verbs: list[str], **extra: Any) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs, **extra}


POD_READER = rule([""], ["pods"], ["get", "watch", "list"])


class TestAuthorizer:
    def test_a_role_binding_grants_only_in_its_namespace(self) -> None:
        rbac = Rbac(
            [
                role("default", "pod-reader", POD_READER),
                binding(
                    "RoleBinding",
                    "read-pods",
                    "Role",
                    "pod-reader",
                    user("alice"),
                    namespace="default",
                ),
            ]
        )
        assert rbac.allows(ALICE, verb="list", group="", resource="pods", namespace="default")
        assert not rbac.allows(ALICE, verb="list", group="", resource="pods", namespace="other")
        assert not rbac.allows(ALICE, verb="delete", group="", resource="pods", namespace="default")
        assert not rbac.allows(ALICE, verb="list", group="", resource="pods")

    def test_a_cluster_role_bound_by_a_role_binding_applies_in_that_namespace_only(self) -> None:
        # "A RoleBinding can also reference a ClusterRole to grant the permissions defined in
        # that ClusterRole to resources inside the RoleBinding's namespace."
        rbac = Rbac(
            [
                cluster_role("secret-reader", rule([""], ["secrets"], ["get", "watch", "list"])),
                binding(
                    "RoleBinding",
                    "read-secrets",
                    "ClusterRole",
                    "secret-reader",
                    user("alice"),
                    namespace="development",
                ),
            ]
        )
        assert rbac.allows(ALICE, verb="get", group="", resource="secrets", namespace="development")
        assert not rbac.allows(
            ALICE, verb="get", group="", resource="secrets", namespace="production"
        )
        assert not rbac.allows(ALICE, verb="list", group="", resource="secrets")

    def test_a_cluster_role_binding_grants_everywhere(self) -> None:
        rbac = Rbac(
            [
                cluster_role("secret-reader", rule([""], ["secrets"], ["get"])),
                binding(
                    "ClusterRoleBinding",
                    "read-secrets-global",
                    "ClusterRole",
                    "secret-reader",
                    user("alice"),
                ),
            ]
        )
        assert rbac.allows(ALICE, verb="get", group="", resource="secrets", namespace="any")
        assert rbac.allows(ALICE, verb="get", group="", resource="secrets")

    def test_subresources_are_separate_resources(self) -> None:
        rbac = Rbac(
            [
                cluster_role("logs", rule([""], ["pods", "pods/log"], ["get"])),
                cluster_role("scaler", rule(["apps"], ["*/scale"], ["update"])),
                binding("ClusterRoleBinding", "logs", "ClusterRole", "logs", user("alice")),
                binding("ClusterRoleBinding", "scaler", "ClusterRole", "scaler", user("alice")),
            ]
        )
        assert rbac.allows(ALICE, verb="get", group="", resource="pods/log", namespace="x")
        assert not rbac.allows(ALICE, verb="get", group="", resource="pods/exec", namespace="x")
        assert rbac.allows(
            ALICE, verb="update", group="apps", resource="deployments/scale", namespace="x"
        )
        assert not rbac.allows(
            ALICE, verb="update", group="apps", resource="deployments", namespace="x"
        )

    def test_resource_names_match_only_requests_that_name_an_object(self) -> None:
        # "You cannot restrict create or deletecollection requests by their resource name", and
        # list/watch carry no name, so a rule with resourceNames never allows them.
        rbac = Rbac(
            [
                role(
                    "default",
                    "cm",
                    rule(
                        [""],
                        ["configmaps"],
                        ["get", "update", "list", "create"],
                        resourceNames=["my-configmap"],
                    ),
                ),
                binding("RoleBinding", "cm", "Role", "cm", user("alice"), namespace="default"),
            ]
        )
        allows = rbac.allows
        assert allows(
            ALICE,
            verb="get",
            group="",
            resource="configmaps",
            namespace="default",
            name="my-configmap",
        )
        assert not allows(
            ALICE, verb="get", group="", resource="configmaps", namespace="default", name="other"
        )
        assert not allows(ALICE, verb="list", group="", resource="configmaps", namespace="default")
        assert not allows(
            ALICE, verb="create", group="", resource="configmaps", namespace="default"
        )

    def test_wildcards(self) -> None:
        rbac = Rbac(
            [
                cluster_role("all", rule(["*"], ["*"], ["*"])),
                binding("ClusterRoleBinding", "all", "ClusterRole", "all", user("alice")),
            ]
        )
        assert rbac.allows(
            ALICE,
            verb="escalate",
            group="rbac.authorization.k8s.io",
            resource="roles",
            namespace="x",
        )
        assert rbac.allows(
            ALICE, verb="delete", group="", resource="namespaces", name="kube-system"
        )

    def test_service_account_subjects_and_groups(self) -> None:
        rbac = Rbac(
            [
                role("team-a", "pod-reader", POD_READER),
                # A ServiceAccount subject without a namespace is the binding's namespace's.
                binding(
                    "RoleBinding",
                    "own",
                    "Role",
                    "pod-reader",
                    {"kind": "ServiceAccount", "name": "deployer"},
                    namespace="team-a",
                ),
                cluster_role("view-nodes", rule([""], ["nodes"], ["get"])),
                binding(
                    "ClusterRoleBinding",
                    "all-sa-of-team-a",
                    "ClusterRole",
                    "view-nodes",
                    {
                        "kind": "Group",
                        "name": "system:serviceaccounts:team-a",
                        "apiGroup": "rbac.authorization.k8s.io",
                    },
                ),
            ]
        )
        assert rbac.allows(SA, verb="get", group="", resource="pods", namespace="team-a")
        assert rbac.allows(SA, verb="get", group="", resource="nodes")
        assert not rbac.allows(
            Subject("team-b", "deployer"), verb="get", group="", resource="nodes"
        )
        assert not rbac.allows(
            Subject("team-b", "deployer"), verb="get", group="", resource="pods", namespace="team-a"
        )

    def test_a_binding_to_a_missing_role_grants_nothing_and_removal_revokes(self) -> None:
        rbac = Rbac(
            [binding("RoleBinding", "b", "Role", "gone", user("alice"), namespace="default")]
        )
        assert not rbac.allows(ALICE, verb="get", group="", resource="pods", namespace="default")
        rbac.add(role("default", "gone", POD_READER))
        assert rbac.allows(ALICE, verb="get", group="", resource="pods", namespace="default")
        rbac.remove("RoleBinding", "default", "b")
        assert not rbac.allows(ALICE, verb="get", group="", resource="pods", namespace="default")


class TestCovers:
    # From policy_comparator_test.go.
    @pytest.mark.parametrize(
        ("owner", "servant", "covered"),
        [
            (rule(["v1"], ["builds"], ["*"]), rule(["v1"], ["builds"], ["create"]), True),
            (rule(["*"], ["builds"], ["get"]), rule(["extensions"], ["builds"], ["get"]), True),
            (rule(["v1"], ["*"], ["get"]), rule(["v1"], ["builds/status"], ["get"]), True),
            (rule(["v1"], ["*/status"], ["get"]), rule(["v1"], ["builds/status"], ["get"]), True),
            (rule(["v1"], ["*/status"], ["get"]), rule(["v1"], ["builds"], ["get"]), False),
            (
                rule(["v1"], ["builds"], ["get"]),
                rule(["v1"], ["builds"], ["get"], resourceNames=["foo"]),
                True,
            ),
            (
                rule(["v1"], ["builds"], ["get"], resourceNames=["foo"]),
                rule(["v1"], ["builds"], ["get"]),
                False,
            ),
            (
                rule(["v1"], ["builds"], ["get"], resourceNames=["foo"]),
                rule(["v1"], ["builds"], ["get"], resourceNames=["bar"]),
                False,
            ),
            (
                {"nonResourceURLs": ["/api/*"], "verbs": ["get"]},
                {"nonResourceURLs": ["/api/v1"], "verbs": ["get"]},
                True,
            ),
            (
                {"nonResourceURLs": ["/api"], "verbs": ["get"]},
                {"nonResourceURLs": ["/apis"], "verbs": ["get"]},
                False,
            ),
        ],
    )
    def test_rule_coverage(
        self, owner: dict[str, Any], servant: dict[str, Any], covered: bool
    ) -> None:
        assert (not uncovered([owner], [servant])) is covered

    def test_a_wildcard_in_the_servant_is_literal(self) -> None:
        # Holding every listed verb is not holding `*`.
        owner = rule(
            [""], ["pods"], ["get", "list", "watch", "create", "update", "patch", "delete"]
        )
        assert not rule_covers(owner, rule([""], ["pods"], ["*"]))

    def test_each_part_of_a_rule_is_checked_on_its_own(self) -> None:
        owners = [rule([""], ["pods"], ["get"]), rule([""], ["services"], ["list"])]
        missing = uncovered(owners, [rule([""], ["pods", "services"], ["get", "list"])])
        assert missing == [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
        ]


class TestEscalation:
    def test_a_role_needs_every_right_it_grants_in_its_namespace(self) -> None:
        rbac = Rbac(
            [
                role("team-a", "pod-reader", POD_READER),
                binding(
                    "RoleBinding", "own", "Role", "pod-reader", user("alice"), namespace="team-a"
                ),
            ]
        )
        assert rbac.escalation_refusal(ALICE, role("team-a", "copy", POD_READER)) is None
        # Same rights, other namespace: not held there.
        refusal = rbac.escalation_refusal(ALICE, role("team-b", "copy", POD_READER))
        assert refusal is not None
        assert refusal.startswith(
            'user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC '
            "permissions not currently held:"
        )
        assert '{APIGroups:[""], Resources:["pods"], Verbs:["get"]}' in refusal
        # More rights than held.
        more = role("team-a", "more", rule([""], ["pods"], ["get", "delete"]))
        refusal = rbac.escalation_refusal(ALICE, more)
        assert refusal is not None
        assert refusal.endswith('{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}')
        # A ClusterRole needs the rights cluster-wide.
        assert rbac.escalation_refusal(ALICE, cluster_role("c", POD_READER)) is not None

    def test_escalate_lifts_the_check(self) -> None:
        rbac = Rbac(
            [
                cluster_role(
                    "role-admin",
                    rule(["rbac.authorization.k8s.io"], ["roles"], ["create", "escalate"]),
                ),
                binding(
                    "RoleBinding",
                    "ra",
                    "ClusterRole",
                    "role-admin",
                    user("alice"),
                    namespace="team-a",
                ),
            ]
        )
        assert (
            rbac.escalation_refusal(ALICE, role("team-a", "big", rule(["*"], ["*"], ["*"]))) is None
        )
        assert (
            rbac.escalation_refusal(ALICE, role("team-b", "big", rule(["*"], ["*"], ["*"])))
            is not None
        )

    def test_bind_lets_a_user_grant_the_named_roles_only(self) -> None:
        # The documented example: user-1 may grant admin, edit or view in user-1-namespace.
        admin = cluster_role("admin", rule(["*"], ["*"], ["*"]))
        rbac = Rbac(
            [
                admin,
                cluster_role("cluster-admin", rule(["*"], ["*"], ["*"])),
                cluster_role(
                    "role-grantor",
                    rule(["rbac.authorization.k8s.io"], ["rolebindings"], ["create"]),
                    rule(
                        ["rbac.authorization.k8s.io"],
                        ["clusterroles"],
                        ["bind"],
                        resourceNames=["admin", "edit", "view"],
                    ),
                ),
                binding(
                    "RoleBinding",
                    "role-grantor-binding",
                    "ClusterRole",
                    "role-grantor",
                    user("user-1"),
                    namespace="user-1-namespace",
                ),
            ]
        )
        user_1 = User("user-1")
        grant = binding(
            "RoleBinding", "g", "ClusterRole", "admin", user("user-2"), namespace="user-1-namespace"
        )
        assert rbac.escalation_refusal(user_1, grant) is None
        elsewhere = binding(
            "RoleBinding", "g", "ClusterRole", "admin", user("user-2"), namespace="other"
        )
        assert rbac.escalation_refusal(user_1, elsewhere) is not None
        other_role = binding(
            "RoleBinding",
            "g",
            "ClusterRole",
            "cluster-admin",
            user("user-2"),
            namespace="user-1-namespace",
        )
        assert rbac.escalation_refusal(user_1, other_role) is not None
        cluster_wide = binding("ClusterRoleBinding", "g", "ClusterRole", "admin", user("user-2"))
        assert rbac.escalation_refusal(user_1, cluster_wide) is not None

    def test_a_binding_without_bind_needs_the_roles_rights(self) -> None:
        rbac = Rbac(
            [
                role("team-a", "pod-reader", POD_READER),
                binding(
                    "RoleBinding", "own", "Role", "pod-reader", user("alice"), namespace="team-a"
                ),
            ]
        )
        same = binding(
            "RoleBinding", "share", "Role", "pod-reader", user("bob"), namespace="team-a"
        )
        assert rbac.escalation_refusal(ALICE, same) is None
        missing = binding(
            "RoleBinding", "share", "Role", "nothing-here", user("bob"), namespace="team-a"
        )
        assert "not found" in (rbac.escalation_refusal(ALICE, missing) or "")

    def test_system_masters_may_grant_anything(self) -> None:
        root = User("kubernetes-admin", ("system:masters",))
        assert (
            Rbac().escalation_refusal(root, cluster_role("all", rule(["*"], ["*"], ["*"]))) is None
        )

    def test_an_aggregation_rule_needs_full_authority(self) -> None:
        rbac = Rbac(
            [
                cluster_role("pods", POD_READER),
                binding("ClusterRoleBinding", "pods", "ClusterRole", "pods", user("alice")),
            ]
        )
        aggregating = cluster_role(
            "agg",
            POD_READER,
            aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]},
        )
        assert rbac.escalation_refusal(ALICE, aggregating) == (
            "must have cluster-admin privileges to use the aggregationRule"
        )
        assert rbac.escalation_refusal(ALICE, cluster_role("plain", POD_READER)) is None

    def test_other_kinds_are_ignored(self) -> None:
        rbac = Rbac(
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"}}]
        )
        assert rbac.rules_for(ALICE, "y") == []
