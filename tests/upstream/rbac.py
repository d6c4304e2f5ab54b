"""Kubernetes' RBAC authorizer and its escalation prevention, over plain manifest dicts.

What a real API server would decide for one identity, computed from the Roles, ClusterRoles and
bindings given (e.g. the rendered `k8s/overlays/production` plus what helm creates), so tests can
ask "may the worker do this?" and "would Kubernetes let the worker create that Role?" without a
cluster and without trusting the portal's own list of permissions. Written from the Kubernetes
source (v1.35), which it follows rule by rule:

- authorization: `plugin/pkg/auth/authorizer/rbac/rbac.go` (`RuleAllows`) and
  `pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`, `APIGroupMatches`, `ResourceMatches`
  with `*` and `*/subresource`, `ResourceNameMatches`: a rule naming objects never matches a
  request without a name, such as list or create);
- whose rules apply: `pkg/registry/rbac/validation/rule.go` (`VisitRulesFor`: every
  ClusterRoleBinding, plus the RoleBindings of the request's namespace; `appliesToUser`: a
  ServiceAccount subject without a namespace means the binding's own);
- escalation: `pkg/registry/rbac/escalation_check.go` (`EscalationAllowed` for system:masters,
  `RoleEscalationAuthorized` for the `escalate` verb on roles/clusterroles, `BindingAuthorized`
  for `bind` on the referenced role, checked in the binding's namespace) and
  `pkg/registry/rbac/validation/rule.go` (`ConfirmNoEscalation`: the creator's rules in the
  object's namespace must cover every rule it grants), with coverage as in
  `staging/src/k8s.io/component-helpers/auth/rbac/validation/policy_comparator.go` (`Covers`,
  `BreakdownRule`, `ruleCovers`); a ClusterRole with an aggregationRule needs full authority
  (`pkg/registry/rbac/clusterrole/policybased/storage.go`).

Not modelled: webhook or node authorizers, impersonation, and the default bindings a real
cluster adds for every authenticated user (discovery, self reviews), which grant nothing the
portal relies on.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upstream.tools import kustomize

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
# API server loopback and cluster-admin certificates: never subject to escalation checks.
PRIVILEGED_GROUP = "system:masters"
# What an aggregationRule needs: everything (clusterrole/policybased/storage.go, fullAuthority).
FULL_AUTHORITY: tuple[Mapping[str, Any], ...] = (
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
)

Manifest = Mapping[str, Any]
Rule = Mapping[str, Any]


@dataclass(frozen=True)
class Subject:
    """A ServiceAccount as the API server authenticates it."""

    namespace: str
    name: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> tuple[str, ...]:
        return (
            "system:serviceaccounts",
            f"system:serviceaccounts:{self.namespace}",
            "system:authenticated",
        )


@dataclass(frozen=True)
class User:
    """Any other authenticated identity (a person, a certificate)."""

    name: str
    extra_groups: tuple[str, ...] = field(default=())

    @property
    def username(self) -> str:
        return self.name

    @property
    def groups(self) -> tuple[str, ...]:
        return (*self.extra_groups, "system:authenticated")


Identity = Subject | User

# The portal's worker: k8s/base/serviceaccounts.yaml, namespace from k8s/base/kustomization.yaml.
WORKER = Subject("demo-portal", "portal-backend")


def _has(values: Sequence[str] | None, wanted: str, wildcard: str = "*") -> bool:
    values = values or ()
    return wanted in values or wildcard in values


def resource_matches(rule: Rule, resource: str) -> bool:
    """`resource` may be `pods` or `pods/exec`; `*/exec` in a rule matches any resource's exec."""
    _, _, subresource = resource.partition("/")
    for allowed in rule.get("resources") or ():
        if allowed in ("*", resource):
            return True
        if subresource and allowed == f"*/{subresource}":
            return True
    return False


def rule_allows(rule: Rule, *, verb: str, group: str, resource: str, name: str | None) -> bool:
    """One rule against one resource request (rbac.go, RuleAllows)."""
    names = rule.get("resourceNames") or ()
    return (
        _has(rule.get("verbs"), verb)
        and _has(rule.get("apiGroups"), group)
        and resource_matches(rule, resource)
        and (not names or (name is not None and name in names))
    )


def breakdown(rule: Rule) -> list[dict[str, list[str]]]:
    """One rule per group, resource, verb (and name), as policy_comparator.go BreakdownRule."""
    parts: list[dict[str, list[str]]] = []
    for group in rule.get("apiGroups") or ():
        for resource in rule.get("resources") or ():
            for verb in rule.get("verbs") or ():
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                names = rule.get("resourceNames") or ()
                parts.extend({**base, "resourceNames": [n]} for n in names)
                if not names:
                    parts.append(base)
    for url in rule.get("nonResourceURLs") or ():
        for verb in rule.get("verbs") or ():
            parts.append({"nonResourceURLs": [url], "verbs": [verb]})
    return parts


def _resources_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    if "*" in owned or all(r in owned for r in wanted):
        return True
    for resource in wanted:
        if resource in owned:
            continue
        if "/" not in resource:
            return False
        if f"*/{resource.split('/', 1)[1]}" not in owned:
            return False
    return True


def _urls_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    def one(url: str) -> bool:
        return any(own == url or (own.endswith("*") and url.startswith(own[:-1])) for own in owned)

    return all(one(url) for url in wanted)


def rule_covers(owner: Rule, sub: Rule) -> bool:
    """Whether `owner` grants everything single-valued `sub` does (policy_comparator.go)."""
    owner_names = owner.get("resourceNames") or ()
    sub_names = sub.get("resourceNames") or ()
    names_ok = not owner_names or (bool(sub_names) and all(n in owner_names for n in sub_names))
    return (
        ("*" in (owner.get("verbs") or ()) or all(v in owner["verbs"] for v in sub["verbs"]))
        and (
            "*" in (owner.get("apiGroups") or ())
            or all(g in (owner.get("apiGroups") or ()) for g in sub.get("apiGroups") or ())
        )
        and _resources_cover(owner.get("resources") or (), sub.get("resources") or ())
        and _urls_cover(owner.get("nonResourceURLs") or (), sub.get("nonResourceURLs") or ())
        and names_ok
    )


def uncovered(owner_rules: Iterable[Rule], rules: Iterable[Rule]) -> list[dict[str, list[str]]]:
    """Every single-valued part of `rules` that no rule in `owner_rules` covers (`Covers`)."""
    owner_rules = list(owner_rules)
    return [
        part
        for rule in rules
        for part in breakdown(rule)
        if not any(rule_covers(owner, part) for owner in owner_rules)
    ]


def compact(rule: Mapping[str, Sequence[str]]) -> str:
    """A rule as the API server prints it in a refusal (rbacv1helpers.CompactString)."""
    fields = (
        ("APIGroups", "apiGroups"),
        ("Resources", "resources"),
        ("ResourceNames", "resourceNames"),
        ("NonResourceURLs", "nonResourceURLs"),
        ("Verbs", "verbs"),
    )
    shown = [
        f"{label}:[{' '.join(json.dumps(v) for v in rule[key])}]"
        for label, key in fields
        if rule.get(key)
    ]
    return "{" + ", ".join(shown) + "}"


def _key(obj: Manifest) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace") or "", meta["name"]


class Rbac:
    """The RBAC objects of one host cluster, and what they allow."""

    def __init__(self, objects: Iterable[Manifest] = ()) -> None:
        self._objects: dict[tuple[str, str, str], Manifest] = {}
        for obj in objects:
            self.add(obj)

    def add(self, obj: Manifest) -> None:
        """Create or replace `obj`; kinds other than the four RBAC ones are ignored."""
        if obj.get("kind") in RBAC_KINDS and obj.get("apiVersion", "").startswith(RBAC_GROUP):
            self._objects[_key(obj)] = obj

    def remove(self, kind: str, namespace: str | None, name: str) -> None:
        self._objects.pop((kind, namespace or "", name), None)

    def _of_kind(self, kind: str, namespace: str = "") -> list[Manifest]:
        return [o for (k, ns, _), o in self._objects.items() if k == kind and ns == namespace]

    def role_rules(self, role_ref: Mapping[str, str], namespace: str | None) -> list[Rule] | None:
        """The rules a roleRef points at, or None when that role does not exist."""
        if role_ref.get("kind") == "Role":
            if not namespace:
                return None
            role = self._objects.get(("Role", namespace, role_ref["name"]))
        elif role_ref.get("kind") == "ClusterRole":
            role = self._objects.get(("ClusterRole", "", role_ref["name"]))
        else:
            return None
        return None if role is None else list(role.get("rules") or ())

    def rules_for(self, subject: Identity, namespace: str | None = None) -> list[Rule]:
        """Every rule that applies to `subject` in `namespace` (None: cluster-scoped requests)."""
        found: list[Rule] = []
        bindings = [(b, "") for b in self._of_kind("ClusterRoleBinding")]
        if namespace:
            bindings += [(b, namespace) for b in self._of_kind("RoleBinding", namespace)]
        for binding, where in bindings:
            if any(_applies(subject, s, where) for s in binding.get("subjects") or ()):
                found.extend(self.role_rules(binding["roleRef"], where or None) or ())
        return found

    def allows(
        self,
        subject: Identity,
        *,
        verb: str,
        group: str,
        resource: str,
        namespace: str | None = None,
        name: str | None = None,
    ) -> bool:
        """Whether RBAC authorizes this resource request (a cluster-scoped one without
        `namespace`). `group` is "" for the core API; `resource` may carry a subresource."""
        return any(
            rule_allows(rule, verb=verb, group=group, resource=resource, name=name)
            for rule in self.rules_for(subject, namespace)
        )

    def escalation_refusal(self, subject: Identity, obj: Manifest) -> str | None:
        """None when Kubernetes would let `subject` create or update the Role, ClusterRole,
        RoleBinding or ClusterRoleBinding `obj`; else the API server's reason."""
        if PRIVILEGED_GROUP in subject.groups:
            return None
        kind = obj["kind"]
        meta = obj["metadata"]
        namespace = meta.get("namespace") if kind in ("Role", "RoleBinding") else None
        if kind in ("Role", "ClusterRole"):
            resource = "roles" if kind == "Role" else "clusterroles"
            if self.allows(
                subject,
                verb="escalate",
                group=RBAC_GROUP,
                resource=resource,
                namespace=namespace,
                name=meta["name"],
            ):
                return None
            refusal = self._not_held(subject, obj.get("rules") or (), namespace)
            aggregates = kind == "ClusterRole" and bool(obj.get("aggregationRule"))
            if refusal is None and aggregates and self._not_held(subject, FULL_AUTHORITY, None):
                return "must have cluster-admin privileges to use the aggregationRule"
            return refusal
        if kind in ("RoleBinding", "ClusterRoleBinding"):
            role_ref = obj["roleRef"]
            if kind == "ClusterRoleBinding" and role_ref.get("kind") != "ClusterRole":
                return "a ClusterRoleBinding may only reference a ClusterRole"
            resource = "roles" if role_ref.get("kind") == "Role" else "clusterroles"
            if self.allows(
                subject,
                verb="bind",
                group=role_ref.get("apiGroup", RBAC_GROUP),
                resource=resource,
                namespace=namespace,
                name=role_ref["name"],
            ):
                return None
            rules = self.role_rules(role_ref, namespace)
            if rules is None:
                return f"{role_ref.get('kind')}.{RBAC_GROUP} {role_ref['name']!r} not found"
            return self._not_held(subject, rules, namespace)
        raise ValueError(f"{kind} is not an RBAC kind")

    def _not_held(
        self, subject: Identity, rules: Iterable[Rule], namespace: str | None
    ) -> str | None:
        missing = uncovered(self.rules_for(subject, namespace), rules)
        if not missing:
            return None
        groups = "[" + " ".join(f'"{g}"' for g in subject.groups) + "]"
        listed = "\n".join(sorted({compact(part) for part in missing}))
        return (
            f'user "{subject.username}" (groups={groups}) is attempting to grant RBAC '
            f"permissions not currently held:\n{listed}"
        )


def _applies(subject: Identity, binding_subject: Mapping[str, str], namespace: str) -> bool:
    kind = binding_subject.get("kind")
    if kind == "User":
        return binding_subject.get("name") == subject.username
    if kind == "Group":
        return binding_subject.get("name") in subject.groups
    if kind == "ServiceAccount":
        account_namespace = binding_subject.get("namespace") or namespace
        return bool(account_namespace) and subject.username == (
            f"system:serviceaccount:{account_namespace}:{binding_subject.get('name')}"
        )
    return False


def rendered(tree: str = "overlays/production") -> list[dict[str, Any]]:
    """Every object `kubectl kustomize k8s/<tree>` renders (copies: callers may change them)."""
    return copy.deepcopy([dict(doc) for doc in kustomize(tree)])


def production_rbac() -> list[dict[str, Any]]:
    """The RBAC objects the production overlay installs on the host cluster."""
    return [obj for obj in rendered("overlays/production") if obj["kind"] in RBAC_KINDS]
