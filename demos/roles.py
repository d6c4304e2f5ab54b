"""The portal's roles, as Django groups (created by migration 0002).

- Sales: start demos and act on their own.
- Sales managers: see and act on everyone's demos, and the fleet.
- Template admins: edit templates in the admin, and the fleet.
Superusers can do everything.
"""

from typing import Any

SALES = "Sales"
SALES_MANAGERS = "Sales managers"
TEMPLATE_ADMINS = "Template admins"


def _in_group(user: Any, name: str) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    cache = getattr(user, "_portal_groups", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))
        user._portal_groups = cache
    return name in cache


def is_manager(user: Any) -> bool:
    """Sees and acts on every salesperson's demos."""
    return _in_group(user, SALES_MANAGERS)


def is_template_admin(user: Any) -> bool:
    return _in_group(user, TEMPLATE_ADMINS)


def can_view_fleet(user: Any) -> bool:
    return is_manager(user) or is_template_admin(user)


# What each group may do in Django's admin, as (app, model, actions).
ROLE_PERMISSIONS: dict[str, list[tuple[str, str, list[str]]]] = {
    SALES: [],
    SALES_MANAGERS: [],
    TEMPLATE_ADMINS: [
        ("demos", "demotemplate", ["add", "change", "delete", "view"]),
        ("demos", "templatechart", ["add", "change", "delete", "view"]),
        ("demos", "demo", ["view"]),
        ("demos", "demoevent", ["view"]),
        ("demos", "snapshot", ["view"]),
    ],
}


def ensure_role_groups(apps: Any = None) -> None:
    """Create the groups and grant their permissions. Idempotent.

    Runs from migration 0002 and after every `migrate`/`flush` (post_migrate), so the roles exist
    even after a test run empties the tables.
    """
    if apps is None:
        from django.apps import apps
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, grants in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        for app_label, model, actions in grants:
            group.permissions.add(
                *permission_model.objects.filter(
                    content_type__app_label=app_label,
                    codename__in=[f"{action}_{model}" for action in actions],
                )
            )
