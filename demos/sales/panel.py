"""The live status of one demo, as the demo page and its polling fragment show it.

One context builder serves the full page, the 2-second poll and the in-place action responses,
so the three can never disagree about what a demo looks like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from demos.access import can_act_on, can_manage_team, sees_everyones_demos
from demos.durations import format_duration
from demos.engine import progress
from demos.engine.capacity import CapacityPicture, QueueCause, Queued, QueueReason
from demos.engine.lifecycle.requests import resume_lifetime
from demos.engine.specs import Policy
from demos.engine.speeds import typical_time_to_ready
from demos.gate import activity
from demos.models import STARTING, Demo, DemoEvent, Snapshot, SnapshotKind, Status
from demos.moments import ago, seconds_since, since
from demos.roles import can_view_fleet
from demos.sales.again import StartAgain, start_again
from demos.sales.buttons import OfferedAction, available_actions, extension_note
from demos.sales.forms import RestoreSnapshotForm
from demos.sales.more_time import MoreTimeBadge, badge_for
from demos.sales.team import shared_by_note

TIMELINE_LENGTH = 50

_STEP_STATE_LABELS = {
    progress.PENDING: "Waiting",
    progress.ACTIVE: "In progress",
    progress.DONE: "Done",
    progress.FAILED: "Failed",
}


# The panel's heading, which is also what screen readers announce when the status changes.
_HEADLINES = {
    Status.QUEUED: "Waiting for capacity",
    Status.REQUESTED: "Starting your demo",
    Status.PROVISIONING: "Starting your demo",
    Status.INSTALLING: "Starting your demo",
    Status.READY: "Your demo is ready",
    Status.PAUSING: "Keeping it for later",
    Status.PAUSED: "Kept for later",
    Status.RESUMING: "Resuming your demo",
    Status.ARCHIVING: "Archiving your demo",
    Status.ARCHIVED: "Archived",
    Status.DELETING: "Deleting your demo",
    Status.DELETED: "This demo has ended",
}


def _failed_while_starting(demo: Demo) -> bool:
    return demo.status == Status.FAILED and (not demo.failed_from or demo.failed_from in STARTING)


def headline(demo: Demo) -> str:
    if demo.status == Status.FAILED:
        if _failed_while_starting(demo):
            return "The demo could not start"
        return "Something went wrong"
    return _HEADLINES.get(demo.status, demo.get_status_display())


def steps_display(demo: Demo) -> str:
    """How the start-up steps show: "open" while starting (or when starting failed), "summary"
    (folded away) once ready, or "" when they are no longer of interest."""
    if demo.status in STARTING or demo.status == Status.QUEUED or _failed_while_starting(demo):
        return "open"
    if demo.status == Status.READY:
        return "summary"
    return ""


@dataclass(frozen=True)
class StepView:
    label: str
    state: str
    state_label: str
    seconds: float | None
    ticking: bool = False  # still running: the browser counts its seconds on


@dataclass(frozen=True)
class DemoRow:
    """A demo in a list, with the quick actions its owner (or a manager) may take."""

    demo: Demo
    actions: list[OfferedAction]
    # The panel version the row shows (demos.sales.poll): its poll answers 204 while it holds.
    # Empty in a list, where reading it per row would cost a query each: the first poll sends it.
    version: str = ""
    # A prospect is in the demo right now (read from Redis for the whole list at once).
    prospect_present: bool = False
    # Why a queued demo waits and about how long (`queue_note`); empty for any other demo.
    queue_note: str = ""
    # "Shared with you by Alice Able" on a demo the reader works on as a colleague.
    shared_by: str = ""
    # A prospect's waiting request for more time (demos.sales.more_time), with one-click Extend.
    more_time: MoreTimeBadge | None = None
    # "Start again like this" on an ended demo (demos.sales.again).
    again: StartAgain | None = None

    @property
    def dom_id(self) -> str:
        return row_dom_id(self.demo)


class Moments(Protocol):
    """What a row's times are written from: a demo, or a list's print of it (row_cache)."""

    @property
    def time_left(self) -> timedelta | None: ...
    @property
    def asleep_since(self) -> datetime | None: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def requested_at(self) -> datetime: ...


@dataclass(frozen=True)
class RowTimes:
    """The times a row of My demos writes in words, worked out now. Apart from the row, so a
    row rendered earlier (demos.sales.row_cache) can take today's."""

    left: str  # "Ends in 25 min 10 s"
    asleep: str  # "Asleep for 5 min"
    ended: str  # "Ended 2 h 3 min ago"
    requested: str  # "Requested just now"
    elapsed: str  # seconds since it was requested, for the browser's clock

    @classmethod
    def of(cls, demo: Moments) -> RowTimes:
        return cls(
            left=format_duration(demo.time_left),
            asleep=since(demo.asleep_since),
            ended=ago(demo.ended_at),
            requested=ago(demo.requested_at),
            elapsed=seconds_since(demo.requested_at),
        )


def team_work_of(user: Any, demo: Demo) -> dict[str, Any]:
    """What a row or the status panel shows of team work, from the loaded demo: no query (but
    for a prospect's address, when a request for more time cannot be granted)."""
    return {
        "shared_by": shared_by_note(user, demo),
        # Addressed to who can answer it: template admins watching the fleet cannot extend.
        "more_time": badge_for(demo) if can_act_on(user, demo) else None,
        "again": start_again(demo),
    }


def chart_names(charts: list[dict[str, Any]]) -> str:
    """ "Shop, Payments": the charts of a frozen spec by name, each once."""
    return ", ".join(dict.fromkeys(name for name in map(progress.chart_title, charts) if name))


def steps_of(demo: Demo, position: int | None) -> list[StepView]:
    steps = []
    # Each chart's step by its chart's name, not its release's (recorded as it started).
    installs = {
        f"chart:{chart['name']}": f"Installing {progress.chart_title(chart)}"
        for chart in demo.spec.get("charts", [])
    }
    for step in demo.progress.get("steps", []):
        seconds = progress.step_seconds(step)
        label = installs.get(step["key"], step["label"])
        if step["key"] == "queued":
            if position is not None:
                label = f"Waiting for capacity: number {position} in the queue"
            elif step["state"] == progress.DONE and (seconds or 0) < 1:
                continue  # it never waited: a zero-second step would only add noise
        if step["key"] == "ready" and step["state"] == progress.DONE:
            seconds = None  # the moment it became ready, not a step that took time
        state = step["state"]
        ticking = state == progress.ACTIVE and seconds is not None
        steps.append(StepView(label, state, _STEP_STATE_LABELS.get(state, ""), seconds, ticking))
    return steps


def about(wait: timedelta) -> str:
    """A wait in round minutes: an estimate should not read like a countdown."""
    minutes = math.ceil(wait / timedelta(minutes=1))
    if minutes <= 1:
        return "about a minute"
    if minutes < 60:
        return f"about {minutes} minutes"
    return f"about {format_duration(timedelta(minutes=minutes))}"


def queue_reason(demo: Demo) -> QueueReason | None:
    """Why `demo` waits, or None when it is not queued. Read for it alone: the few demos in its
    way and its place counted by the database, not every demo holding capacity (thousands on
    a busy portal)."""
    if demo.status != Status.QUEUED:
        return None
    return CapacityPicture.read(for_queued=[demo]).why_queued(demo)


def queue_note(reason: QueueReason | None, demo: Queued) -> str:
    """Why a queued demo waits and about how long, in words its owner can act on."""
    if reason is None:
        return ""
    place = f"Number {reason.position} in the queue"
    if reason.cause is None:
        return f"{place}: room has just freed up, so it starts in a moment."
    if reason.cause == QueueCause.OWNER:
        why = f"Waiting because your {reason.limit} demo slots are in use."
        if reason.wait is None:
            return f"{why} It starts when you end one of your demos (Keep for later or Delete)."
        return (
            f"{why} One of them ends in {about(reason.wait)}, and this one starts then, or as "
            "soon as you end one (Keep for later or Delete)."
        )
    if reason.cause == QueueCause.PORTAL:
        why = f"Waiting because the portal is at its limit of {reason.limit} running demos."
    else:
        why = f"Waiting because {demo.template.name} allows {reason.limit} demos at once."
    if reason.wait is None:
        return f"{why} {place}: it starts as soon as other demos end."
    return f"{why} {place}: it starts in {about(reason.wait)}, when the next demo ends."


def elapsed(demo: Demo) -> timedelta | None:
    """How long the demo has been starting, or how long it took to become ready."""
    if demo.status == Status.READY and demo.time_to_ready is not None:
        return demo.time_to_ready
    if demo.status in STARTING or demo.status == Status.QUEUED:
        return timezone.now() - (demo.started_at or demo.requested_at)
    return None


@dataclass(frozen=True)
class StartEstimate:
    """How soon a starting demo is usually ready, from its template's typical time to ready."""

    typical: timedelta | None  # None on a template's first start: nothing to go by yet
    ready_by: datetime | None

    @property
    def left(self) -> timedelta | None:
        return self.ready_by - timezone.now() if self.ready_by else None

    @property
    def overdue(self) -> bool:
        left = self.left
        return left is not None and left <= timedelta(0)


def start_estimate(demo: Demo) -> StartEstimate | None:
    """How soon a starting demo is usually ready; None for a demo that is not starting."""
    if demo.status not in STARTING:
        return None
    typical = typical_time_to_ready(demo.template_id)
    begun = demo.started_at or demo.requested_at
    return StartEstimate(typical, begun + typical if typical else None)


def prospect_present(demo: Demo) -> bool:
    """Whether a prospect is using the running demo right now (Redis only, no query)."""
    return demo.status == Status.READY and demo.pk in activity.present([demo.pk])


def sleep_note(demo: Demo) -> str:
    """Why a demo is asleep and how it comes back, in plain words; "" when it is not asleep."""
    if demo.status != Status.ASLEEP or demo.asleep_since is None:
        return ""
    left = (
        f"the {format_duration(demo.sleep_remaining)} it had left"
        if demo.sleep_remaining is not None
        else "the time it had left"
    )
    since = timezone.localtime(demo.asleep_since)
    when = (
        f"{since:%H:%M}"
        if since.date() == timezone.localdate()
        else f"{since.day} {since:%b %H:%M}"
    )
    idle = demo.spec.get("sleep_after_seconds")
    why = f" because nobody used it for {format_duration(timedelta(seconds=idle))}" if idle else ""
    return f"Asleep since {when}{why}; it wakes when your prospect opens the link, with {left}."


def snapshots_of(demo: Demo) -> QuerySet[Snapshot]:
    return demo.snapshots.filter(kind=SnapshotKind.ARCHIVED).order_by("-created_at")


def timeline(demo: Demo) -> list[DemoEvent]:
    latest = demo.events.select_related("actor").order_by("-created_at", "-pk")[:TIMELINE_LENGTH]
    return list(reversed(latest))


def latest_event_id(demo: Demo) -> int:
    return demo.events.order_by("-pk").values_list("pk", flat=True).first() or 0


def panel_context(
    request: HttpRequest,
    demo: Demo,
    *,
    notice: str = "",
    error: str = "",
    with_timeline: bool = True,
    last_event_id: int | None = None,
    version: str = "",
) -> dict[str, Any]:
    """Everything the status panel shows; the timeline only when asked (it is the costly part).

    `version` is the panel's version (see `demos.sales.poll`), taken before the demo was loaded,
    so it is never newer than what is shown. Without one the next poll is answered in full.
    """
    actions = available_actions(request.user, demo)
    team_work = team_work_of(request.user, demo)
    events = timeline(demo) if with_timeline else None
    archived = demo.status == Status.ARCHIVED
    reason = queue_reason(demo)
    position = reason.position if reason else None
    return {
        "demo": demo,
        "policy": Policy.of(demo),
        "headline": headline(demo),
        "steps": steps_of(demo, position),
        "steps_display": steps_display(demo),
        "elapsed": elapsed(demo),
        "estimate": start_estimate(demo),
        "resume_for": resume_lifetime(demo) if demo.status == Status.PAUSED else None,
        "actions": actions,
        "extension_note": extension_note(demo),
        # Versions, release names and the cluster's name are for the people who run templates
        # and the fleet; salespeople see what is inside by name.
        "technical": can_view_fleet(request.user),
        # Whoever may act on the demo may restore its snapshot (the new demo is theirs).
        "can_restore": archived and can_act_on(request.user, demo),
        "snapshots": list(snapshots_of(demo)) if archived else [],
        "restore_form": RestoreSnapshotForm() if archived else None,
        "credentials": demo.spec.get("credentials", {}),
        "instructions": demo.spec.get("instructions", ""),
        "other_urls": [url for url in demo.urls if url != demo.live_url],
        "poll": not demo.is_settled,
        # The technical cause of a failure is for the people who fix templates and watch the
        # fleet; the salesperson gets plain words and what to do.
        "failure_detail": demo.status == Status.FAILED and sees_everyones_demos(request.user),
        "sleep_note": sleep_note(demo),
        "queue_note": queue_note(reason, demo),
        # Live (the page polls it, see `demos.sales.pages.demo_status`), and about prospects
        # only: a team member in the demo is no news to the salesperson.
        "prospect_present": prospect_present(demo),
        "shared_by": team_work["shared_by"],
        "more_time": team_work["more_time"],
        "start_again": team_work["again"],
        "can_manage_team": can_manage_team(request.user, demo),
        "notice": notice,
        "error": error,
        "events": events,
        # The poll asks "anything after this event?", so unchanged timelines are not resent,
        # and "has anything changed since this version?", so unchanged panels are not either.
        "last_event_id": _last_event_id(demo, events, last_event_id),
        "version": version,
    }


def _last_event_id(demo: Demo, events: list[DemoEvent] | None, known: int | None) -> int:
    if events is not None:
        return events[-1].pk if events else 0
    return known if known is not None else latest_event_id(demo)


def render_status_update(
    request: HttpRequest,
    demo: Demo,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
    since: int | None = None,
    version: str = "",
) -> HttpResponse:
    """The status panel, with the timeline as an out-of-band swap: what polls and actions get.

    A poll that already has every event up to `since` gets the panel alone: rendering the
    timeline is most of a render's cost.
    """
    latest = latest_event_id(demo) if since is not None else None
    context = panel_context(
        request,
        demo,
        notice=notice,
        error=error,
        with_timeline=since is None or latest != since,
        last_event_id=latest,
        version=version,
    )
    return render(request, "demos/detail.html#status_update", context, status=status)


def row_dom_id(demo: Demo) -> str:
    return f"demo-row-{demo.public_id}"


def render_row(
    request: HttpRequest,
    demo: Demo,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
    version: str = "",
) -> HttpResponse:
    actions = available_actions(request.user, demo, in_list=True)
    note = ""
    if demo.status == Status.QUEUED:
        note = queue_note(queue_reason(demo), demo)
    row = DemoRow(
        demo,
        actions,
        version,
        prospect_present=prospect_present(demo),
        queue_note=note,
        **team_work_of(request.user, demo),
    )
    context = {
        "row": row,
        "times": RowTimes.of(demo),
        "notice": notice,
        "error": error,
        "show_owner": sees_everyones_demos(request.user),
        # Without JavaScript an action returns to the list it was started from.
        "next_url": request.htmx.current_url_abs_path or reverse("demos:my_demos"),
    }
    return render(request, "demos/my_demos.html#demo_row", context, status=status)
