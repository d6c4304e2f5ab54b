"""The portal's RBAC: least privilege, no wildcards, and exactly what the vCluster backend needs.

The list of needed permissions lives with the backend (demos/backends/vcluster/permissions.py,
checked there against the calls the backend really makes); these tests hold the ClusterRole in
k8s/base/rbac.yaml to that list, so neither can change without the other.
"""

from __future__ import annotations

import pytest

from demos.backends.vcluster import permissions

from .support import TREES, Manifest, find, name_of, of_kind, pod_spec, render

ROLE = "demo-portal-backend"
BACKEND_ACCOUNT = "portal-backend"
RULE_FIELDS = ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs")


@pytest.fixture(params=TREES)
def objects(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    return render(request.param)


def grants(rules: list[Manifest]) -> set[tuple[str, str, str]]:
    """Every (api group, resource, verb) the rules allow."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def required() -> set[tuple[str, str, str]]:
    return {(p.api_group, p.resource, verb) for p in permissions.REQUIRED for verb in p.verbs}


class TestRbac:
    def test_no_rule_uses_a_wildcard(self, objects: tuple[Manifest, ...]) -> None:
        roles = of_kind(objects, "ClusterRole") + of_kind(objects, "Role")
        assert roles
        for role in roles:
            for rule in role["rules"]:
                for field in RULE_FIELDS:
                    assert "*" not in rule.get(field, []), f"{name_of(role)}: {field}: {rule}"
                    assert not any("*" in value for value in rule.get(field, [])), name_of(role)

    def test_the_cluster_role_covers_every_call_the_backend_declares(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        rules = find(objects, "ClusterRole", ROLE)["rules"]
        assert permissions.missing(rules) == []

    def test_the_cluster_role_grants_nothing_beyond_the_declared_list(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        extra = grants(find(objects, "ClusterRole", ROLE)["rules"]) - required()
        assert not extra, sorted(extra)

    def test_rules_name_neither_specific_objects_nor_raw_urls(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        # The declared list is per resource; resourceNames would silently narrow it.
        for rule in find(objects, "ClusterRole", ROLE)["rules"]:
            assert "resourceNames" not in rule
            assert "nonResourceURLs" not in rule

    def test_only_the_worker_account_is_bound(self, objects: tuple[Manifest, ...]) -> None:
        bindings = of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding")
        assert [name_of(b) for b in bindings] == [f"ClusterRoleBinding/{ROLE}"]
        binding = bindings[0]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": ROLE,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": BACKEND_ACCOUNT, "namespace": "demo-portal"}
        ]
        find(objects, "ServiceAccount", BACKEND_ACCOUNT)
        worker = pod_spec(find(objects, "Deployment", "portal-worker"))
        assert worker["serviceAccountName"] == BACKEND_ACCOUNT

    def test_service_accounts_mount_no_token_by_default(
        self, objects: tuple[Manifest, ...]
    ) -> None:
        for account in of_kind(objects, "ServiceAccount"):
            assert account["automountServiceAccountToken"] is False, name_of(account)
