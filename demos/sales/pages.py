"""What a salesperson looks at: one demo with its live status, and the list of their demos."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from http import HTTPStatus
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_htmx.http import HTMX_STOP_POLLING, retarget

from demos.access import (
    can_act_on,
    can_see,
    demos_visible_to,
    get_demo_for_user,
    sees_everyones_demos,
)
from demos.engine.capacity import CapacityPicture, slots_for
from demos.gate import activity
from demos.guards import login_required
from demos.models import Demo, Status
from demos.paging import Page
from demos.sales.buttons import available_actions
from demos.sales.panel import (
    DemoRow,
    prospect_present,
    queue_note,
    render_row,
    render_status_update,
    team_work_of,
)
from demos.sales.poll import panel_state
from demos.sales.row_cache import Listing, RowPrint
from demos.sales.sections import SECTION_TITLES, section_pages
from demos.sharing.views import demo_page_context

# An event id, as the page sends it back: ASCII digits only (str.isdigit() also takes "²").
_EVENT_ID = re.compile(r"[0-9]{1,18}")


# The demo page and its fragments show the demo's credentials: never kept by a browser or proxy.
@never_cache
@login_required
@require_GET
def demo_detail(request: HttpRequest, public_id: UUID) -> HttpResponse:
    # The panel's version before the demo (see `demo_status`), so the first poll can answer 204.
    state = panel_state(public_id, request.user.pk)
    demo = get_demo_for_user(request.user, public_id, with_team_size=True)
    version = state.version if state else ""
    can_act = can_act_on(request.user, demo)
    context = demo_page_context(request, demo, version=version, can_act=can_act)
    return render(request, "demos/detail.html", context)


@never_cache
@login_required
@require_GET
def demo_status(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """The fragment the demo page (or a row of My demos) polls every two seconds.

    Answers 204 when the panel the page shows is still current (most polls), and 286 once the
    demo has settled, which tells htmx to stop polling.
    """
    if request.GET.get("fragment") == "presence":
        return _presence_update(request, public_id)
    # The version first and the demo after it, so the panel sent is never older than its version.
    state = panel_state(public_id, request.user.pk)
    if state and state.unchanged_since(request.GET.get("v", "")) and can_see(request.user, state):
        return HttpResponse(status=HTTPStatus.NO_CONTENT)
    version = state.version if state else ""
    if request.GET.get("fragment") == "row":
        demo = get_demo_for_user(request.user, public_id)
        status = HTMX_STOP_POLLING if demo.is_settled else 200
        return render_row(request, demo, status=status, version=version)
    since = request.GET.get("since", "")
    if since and not _EVENT_ID.fullmatch(since):
        return HttpResponseBadRequest("since must be an event id (digits).")
    demo = get_demo_for_user(request.user, public_id)
    return render_status_update(
        request,
        demo,
        status=HTMX_STOP_POLLING if demo.is_settled else 200,
        since=int(since) if since else None,
        version=version,
    )


def _presence_update(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """The "your prospect is in the demo now" line of a running demo's page, polled.

    One small query (for access) and one Redis read; 204 while the page already shows the
    answer (`present`). When the demo is no longer running, or a prospect's request for more
    time came or went (`asked`), the whole status panel is sent in its place, so a page left open
    sees the demo fall asleep or end, and the request's badge with its one-click Extend.
    """
    fields = ("public_id", "owner_id", "is_spare", "status", "more_time_requested_at")
    demo = Demo.objects.only(*fields).filter(public_id=public_id).first()
    if demo is None or not can_see(request.user, demo):
        raise Http404("No such demo.")
    asked = "1" if demo.more_time_requested_at else "0"
    if demo.status != Status.READY or request.GET.get("asked", asked) != asked:
        demo = get_demo_for_user(request.user, public_id)
        status = HTMX_STOP_POLLING if demo.is_settled else 200
        return retarget(render_status_update(request, demo, status=status), "#status-panel")
    present = prospect_present(demo)
    if request.GET.get("present") == ("1" if present else "0"):
        return HttpResponse(status=HTTPStatus.NO_CONTENT)
    context = {"demo": demo, "prospect_present": present}
    return render(request, "demos/detail.html#presence", context)


@login_required
@require_GET
def my_demos(request: HttpRequest) -> HttpResponse:
    """The person's demos, split into active, kept for later and ended, each paged.

    Salespeople see their own and those they work on as colleagues (marked "Shared with you
    by ..."); sales managers (and fleet watchers) see everyone's and can narrow the list to one
    owner. Each section is read one page at a time, so the page costs the same few queries
    however many demos a person (or the whole team) has had; and read as prints first, so only
    the rows not kept from an earlier view are loaded and rendered (demos.sales.row_cache).
    """
    everyone = sees_everyones_demos(request.user)
    owner = request.GET.get("owner", "") if everyone else ""
    owners = owner_options(chosen=owner, me=request.user.pk) if everyone else ""
    pages = section_pages(request.user, request.GET, owner=owner)
    prints = [p for page in pages.values() for p in page]
    # Who has a prospect in it now, for every running demo of the page in one Redis read.
    present = activity.present(p.pk for p in prints if p.status == Status.READY)
    # Why each queued demo waits needs the demos holding capacity in its way: read only when
    # one is shown, and worked out from the prints.
    queued = [p for p in prints if p.status == Status.QUEUED]
    capacity = CapacityPicture.read(for_queued=queued, reader=request.user) if queued else None
    notes = {p.pk: queue_note(capacity.why_queued(p), p) for p in queued} if capacity else {}
    listing = Listing(
        request,
        prints,
        present=present,
        notes=notes,
        show_owner=everyone and not owner,
        next_url=request.get_full_path(),
    )
    # Only the rows not kept are loaded and rendered: one query, however many.
    loaded = []
    if to_load := listing.to_load:  # the query set is built only when some row must be loaded
        loaded = list(demos_visible_to(request.user).for_lists().filter(pk__in=to_load))

    def row(demo: Demo) -> DemoRow:
        return DemoRow(
            demo,
            available_actions(request.user, demo, in_list=True),
            prospect_present=demo.pk in present,
            queue_note=notes.get(demo.pk, ""),
            **team_work_of(request.user, demo),
        )

    rendered = listing.rendered(row(demo) for demo in loaded)
    sections = [
        Section(key, SECTION_TITLES[key], page, [rendered[p.pk] for p in page if p.pk in rendered])
        for key, page in pages.items()
    ]
    context = {
        "sections": sections,
        "has_any": any(s.page.items or s.page.is_paged for s in sections),
        "everyone": everyone,
        "owners": owners,
        "owner": owner,
        # The person's own slots (a manager's too): one query either way.
        "slots": capacity.slots_of(request.user) if capacity else slots_for(request.user),
    }
    return render(request, "demos/my_demos.html", context)


# Who has demos changes only when someone starts their first (or hands one over): the list is
# kept for a minute, shared by every process, so a newcomer appears in the filter within one.
# Filtering by any owner works at once (`?owner=`).
OWNERS_CACHE_KEY = "my-demos:owners"
OWNERS_KEEP_SECONDS = 60


def owner_options(*, chosen: str, me: int) -> SafeString:
    """The owner filter's options: everyone with at least one demo, by name. Written here
    rather than in the template: a team of 200 is 200 options, and the template engine took
    8 ms over them (Django's `format_html` 3 ms)."""
    options = []
    for pk, username, first, last in _people_with_demos():
        name = html.escape(f"{first} {last}".strip() or username)
        selected = " selected" if username == chosen else ""
        mine = " (me)" if pk == me else ""
        options.append(f'<option value="{html.escape(username)}"{selected}>{name}{mine}</option>')
    return mark_safe("\n".join(options))  # noqa: S308 (every value escaped above)


def _people_with_demos() -> list[tuple[int, str, str, str]]:
    """(id, username, first name, last name) of everyone with at least one demo: an EXISTS per
    person, not a scan of all their demos."""
    people = cache.get(OWNERS_CACHE_KEY)
    if people is None:
        people = list(
            get_user_model()
            .objects.filter(Exists(Demo.objects.visible().filter(owner=OuterRef("pk"))))
            .order_by("first_name", "username")
            .values_list("pk", "username", "first_name", "last_name")
        )
        cache.set(OWNERS_CACHE_KEY, people, OWNERS_KEEP_SECONDS)
    return people


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    page: Page[RowPrint]
    html: list[SafeString]  # each row rendered (demos.sales.row_cache)
