"""Who may see and act on what. The one place authorization decisions about demos live."""

from typing import Any, Protocol
from uuid import UUID

from django.core.exceptions import PermissionDenied
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


class Owned(Protocol):
    """What deciding who may see a demo needs: a demo, or the few columns a status poll reads."""

    @property
    def owner_id(self) -> int | None: ...

    @property
    def is_spare(self) -> bool: ...


def can_see(user: Any, demo: Owned) -> bool:
    """The rule behind `demos_visible_to`, for one demo already loaded."""
    if demo.is_spare or not getattr(user, "is_authenticated", False):
        return False
    # The owner first: it answers the common case without looking up the person's groups.
    return demo.owner_id == user.pk or roles.can_view_fleet(user)


def get_demo_for_user(user: Any, public_id: UUID | str) -> Demo:
    """The demo if `user` may see it; otherwise 404, so ids of others' demos leak nothing."""
    try:
        demo = Demo.objects.select_related("template", "owner").get(public_id=public_id)
    except (Demo.DoesNotExist, ValueError):
        raise Http404("No such demo.") from None
    if not can_see(user, demo):
        raise Http404("No such demo.")
    return demo


def can_act_on(user: Any, demo: Demo) -> bool:
    """Whether `user` may change `demo` (extend, pause, delete, ...), not only look at it.

    The owner and sales managers act; template admins watch the fleet but leave other people's
    demos alone.
    """
    if not getattr(user, "is_authenticated", False):
        return False
    return demo.owner_id == user.pk or roles.is_manager(user)


def get_demo_to_act_on(user: Any, public_id: UUID | str) -> Demo:
    """The demo if `user` may change it: 404 when they cannot see it, 403 when they only see it."""
    demo = get_demo_for_user(user, public_id)
    if not can_act_on(user, demo):
        raise PermissionDenied("Only the demo's owner or a sales manager can change this demo.")
    return demo


def sees_everyones_demos(user: Any) -> bool:
    """Whether lists of demos should offer to filter by owner."""
    return roles.can_view_fleet(user)
