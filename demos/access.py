"""Who may see and act on what. The one place authorization decisions about demos live.

A demo's people: its owner, the colleagues the owner (or a sales manager) added, who see and act
on it as the owner does, and sales managers, who see and act on everyone's. Template admins watch
every demo and change none. Only the owner and sales managers manage the team and hand a demo
over.
"""

import functools
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.http import Http404

from demos import roles
from demos.models import Demo
from demos.written_once import STAND_IN_ID, id_list, pk_in

# The annotation that says, on a demo loaded for one person, whether that person is one of its
# colleagues: their own id when they are, None when not. Carrying the id rather than a flag means
# a demo loaded for one person can never answer for another.
COLLEAGUE_MARK = "colleague_viewer_id"
_UNKNOWN = object()
_SHARED_DEMOS = "_portal_shared_demo_ids"


def _colleague_row(reader: Any) -> QuerySet[Any]:
    """The row that makes the person `reader` (an id) a colleague of the outer query's demo (an
    EXISTS subquery)."""
    return Demo.colleagues.through.objects.filter(demo_id=OuterRef("pk"), user_id=reader)


def _colleague_count() -> RawSQL:
    """How many colleagues the outer query's demo has: a count on the colleagues table's demo
    index, written as SQL. Counting a join made the query GROUP BY the demo's, its template's
    and its owner's columns: loading the demo took 4.4 ms of CPU with that count and 2.4 without
    it; this one adds about 0.2 (docs/performance.md). A Subquery expression added about 1."""
    quote = connection.ops.quote_name
    team, demo = Demo.colleagues.through._meta, Demo._meta
    return RawSQL(  # noqa: S611 (no value from outside)
        f"SELECT COUNT(*) FROM {quote(team.db_table)} c"  # noqa: S608 (the models' own names)
        f" WHERE c.{quote(team.get_field('demo').column)}"
        f" = {quote(demo.db_table)}.{quote(demo.pk.column)}",
        (),
        output_field=IntegerField(),
    )


def _marked(demos: QuerySet[Demo], reader: Any) -> QuerySet[Demo]:
    """`demos` with `COLLEAGUE_MARK` for the person `reader` (an id, or None for someone not
    signed in), computed in the same query."""
    if reader is None:
        return demos
    mark = Case(
        When(Exists(_colleague_row(reader)), then=Value(reader)),
        default=None,
        output_field=IntegerField(),
    )
    return demos.annotate(**{COLLEAGUE_MARK: mark})


def _reader(user: Any) -> int | None:
    return user.pk if getattr(user, "is_authenticated", False) else None


def shared_demo_ids(user: Any) -> set[int]:
    """The demos `user` was added to as a colleague: read once per request (one small query on
    the colleagues table's user index) and kept on the user object, as `demos.roles` keeps their
    groups."""
    shared = getattr(user, _SHARED_DEMOS, None)
    if shared is None:
        with connection.cursor() as cursor:
            cursor.execute(_shared_sql(), [user.pk])
            shared = {demo_id for (demo_id,) in cursor.fetchall()}
        setattr(user, _SHARED_DEMOS, shared)
    return shared


@functools.cache
def _shared_sql() -> str:
    """The query of `shared_demo_ids`, written once: building it with the ORM cost the web
    process twice what running it did, on almost every page a salesperson opens."""
    quote = connection.ops.quote_name
    team = Demo.colleagues.through._meta
    return (
        f"SELECT {quote(team.get_field('demo').column)} FROM {quote(team.db_table)}"  # noqa: S608
        f" WHERE {quote(team.get_field('user').column)} = %s"
    )


def demos_visible_to(user: Any) -> QuerySet[Demo]:
    """Demos `user` may see: their own and those shared with them, or everyone's for sales
    managers and admins.

    The shared demos are read first, as ids: "owner = me OR id = ANY(a list)" is two index scans,
    where "owner = me OR EXISTS (colleague row)" checked every row of a section's index (157 ms
    instead of 0.35 for a salesperson's active demos among 105,000; docs/performance.md).
    """
    shape, values = visibility_of(user)
    return _visible(shape, values[STAND_IN_ID], values.get(SHARED))


class Visibility(NamedTuple):
    """The shape of the rule for one person: whether they see everyone's demos, and whether any
    are shared with them. Queries written once (demos.written_once) are written once per shape."""

    everyone: bool = False
    with_shared: bool = False


# The stand-in for the demos shared with the reader, as one parameter (demos.written_once).
SHARED = object()


def visibility_of(user: Any) -> tuple[Visibility, dict[Any, Any]]:
    """`user`'s shape of the rule, and the values of its stand-ins (`visible_in_shape`)."""
    if roles.can_view_fleet(user):
        return Visibility(everyone=True), {STAND_IN_ID: _reader(user)}
    shared = shared_demo_ids(user) if getattr(user, "is_authenticated", False) else set()
    return Visibility(with_shared=bool(shared)), {STAND_IN_ID: user.pk, SHARED: id_list(shared)}


def visible_in_shape(shape: Visibility) -> QuerySet[Demo]:
    """`demos_visible_to`'s query set for every person of `shape`, to write a query once: the
    reader's id is `STAND_IN_ID` and the demos shared with them `SHARED`, filled in from
    `visibility_of` when it runs."""
    return _visible(shape, STAND_IN_ID, SHARED)


def _visible(shape: Visibility, reader: Any, shared: Any) -> QuerySet[Demo]:
    """The rule, for the person `reader` (an id) and the demos shared with them (`shared`, one
    parameter: demos.written_once.id_list)."""
    demos = Demo.objects.visible().select_related("template", "owner")
    if shape.everyone:
        # Everyone's: whether they are a colleague of each is asked in the select list, per row
        # of the page only.
        return _marked(demos, reader)
    if reader is None:  # not signed in: "owner_id = None" would mean the demos with no owner
        return demos.none()
    if shape.with_shared:
        return demos.filter(Q(owner_id=reader) | Q(pk_in(Demo, shared)))
    return demos.filter(owner_id=reader)


class Owned(Protocol):
    """What deciding who may see a demo needs: a demo, or the few columns a status poll reads."""

    @property
    def pk(self) -> Any: ...

    @property
    def owner_id(self) -> int | None: ...

    @property
    def is_spare(self) -> bool: ...


def is_colleague(user: Any, demo: Owned) -> bool:
    """Whether `user` was added to `demo` as a colleague. Free for a demo loaded through this
    module (or a status poll's state); otherwise one small query per request."""
    if not getattr(user, "is_authenticated", False) or demo.pk is None:
        return False
    known = getattr(demo, COLLEAGUE_MARK, _UNKNOWN)
    if known is not _UNKNOWN:
        return known == user.pk
    # Demos loaded elsewhere (lists, the gate): one query per request, not one per demo.
    return demo.pk in shared_demo_ids(user)


def can_see(user: Any, demo: Owned) -> bool:
    """The rule behind `demos_visible_to`, for one demo already loaded."""
    if demo.is_spare or not getattr(user, "is_authenticated", False):
        return False
    # The owner first: it answers the common case without looking up the person's groups.
    if demo.owner_id == user.pk:
        return True
    if getattr(demo, COLLEAGUE_MARK, _UNKNOWN) == user.pk:
        return True
    return roles.can_view_fleet(user) or is_colleague(user, demo)


def get_demo_for_user(user: Any, public_id: UUID | str, *, with_team_size: bool = False) -> Demo:
    """The demo if `user` may see it; otherwise 404, so ids of others' demos leak nothing.

    `with_team_size`: also count its colleagues (`team_size`), in the same query.
    """
    demos = _marked(Demo.objects.select_related("template", "owner"), _reader(user))
    if with_team_size:
        demos = demos.annotate(team_size=_colleague_count())
    try:
        demo = demos.get(public_id=public_id)
    except (Demo.DoesNotExist, ValueError):
        raise Http404("No such demo.") from None
    if not can_see(user, demo):
        raise Http404("No such demo.")
    return demo


def can_act_on(user: Any, demo: Owned) -> bool:
    """Whether `user` may change `demo` (extend, pause, share, delete, ...), not only look at it.

    The owner, the colleagues and sales managers act; template admins watch the fleet but leave
    other people's demos alone.
    """
    if not getattr(user, "is_authenticated", False):
        return False
    if demo.owner_id == user.pk:
        return True
    return roles.is_manager(user) or is_colleague(user, demo)


def get_demo_to_act_on(user: Any, public_id: UUID | str) -> Demo:
    """The demo if `user` may change it: 404 when they cannot see it, 403 when they only see it."""
    demo = get_demo_for_user(user, public_id)
    if not can_act_on(user, demo):
        raise PermissionDenied(
            "Only the demo's owner, its colleagues or a sales manager can change it."
        )
    return demo


def can_manage_team(user: Any, demo: Owned) -> bool:
    """Whether `user` may add or remove colleagues and hand the demo over: the owner and sales
    managers. Colleagues act on the demo but do not decide who else does."""
    if not getattr(user, "is_authenticated", False) or demo.is_spare:
        return False
    return demo.owner_id == user.pk or roles.is_manager(user)


def get_demo_to_manage(user: Any, public_id: UUID | str) -> Demo:
    """The demo if `user` may manage its team: 404 when they cannot see it, 403 otherwise."""
    demo = get_demo_for_user(user, public_id)
    if not can_manage_team(user, demo):
        raise PermissionDenied(
            "Only the demo's owner or a sales manager can change who works on it."
        )
    return demo


def sees_everyones_demos(user: Any) -> bool:
    """Whether lists of demos should offer to filter by owner."""
    return roles.can_view_fleet(user)
