"""Who may see and act on what. The one place authorization decisions about demos live."""

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.http import Http404

from demos import roles
from demos.models import Demo


def demos_visible_to(user: Any) -> QuerySet[Demo]:
    """Demos `user` may see: their own, or everyone's for sales managers and admins."""
    demos = Demo.objects.visible().select_related("template", "owner")
    if roles.can_view_fleet(user):
        return demos
    return demos.filter(owner=user)


def get_demo_for_user(user: Any, public_id: UUID | str) -> Demo:
    """The demo if `user` may see it; otherwise 404, so ids of others' demos leak nothing."""
    try:
        return demos_visible_to(user).get(public_id=public_id)
    except (Demo.DoesNotExist, ValueError):
        raise Http404("No such demo.") from None
