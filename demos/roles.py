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
