"""Idle demos go to sleep, and demos asleep for too long end: two questions of the reconcile sweep.

A running demo whose template says "sleep after N minutes" and that nobody has used for that
long is paused in place (`lifecycle.sleep_demo`): it keeps its slot and the time it had left, and
the gate wakes it when its link is opened again. "Used" is what the gate counts: its last allowed
request from a person (`demos.gate.activity.last_activity`, Redis first, then the engagement rows),
or the moment the demo became ready (or woke), whichever is later, so a demo nobody opened yet is
given the same time as one just left alone.

Test launches sleep too: a template admin trying a draft sees the draft's sleep setting at work,
exactly as a salesperson's demo would. Unclaimed warm-pool spares never do: they have no clock
and are there to start at once.

Like the sweep's other questions, each reads at most PASS_LIMIT rows, BATCH at a time, oldest
first, and each change is a compare-and-swap, so overlapping sweeps act once.
"""

from __future__ import annotations

import itertools
import logging
from datetime import datetime, timedelta

from django.db.models import QuerySet

from demos.engine import lifecycle
from demos.engine.lifecycle import SCHEDULER
from demos.engine.reconcile import BATCH, in_batches
from demos.errors import InvalidTransition
from demos.gate.activity import last_activity
from demos.models import Demo, Status

log = logging.getLogger(__name__)

# The shortest idle time a template may set (the studio and the admin refuse less).
MIN_SLEEP_AFTER = timedelta(minutes=5)
# A demo this close to its end is left to expire: a sleep and a wake would cost more than the
# few minutes it has left.
MIN_TIME_LEFT = timedelta(minutes=10)


def idle_since(demo: Demo, last_used: datetime | None) -> datetime:
    """Since when nobody has used `demo`: its last counted visit, or when it last began running
    (ready, claimed from the warm pool, woken), whichever is later."""
    moments = [demo.status_changed_at]
    if demo.ready_at is not None:
        moments.append(demo.ready_at)
    if last_used is not None:
        moments.append(last_used)
    return max(moments)


def _sleep_after(demo: Demo) -> timedelta | None:
    seconds = demo.spec.get("sleep_after_seconds")
    return timedelta(seconds=seconds) if seconds else None


def _candidates(now: datetime) -> QuerySet[Demo]:
    # Only demos that could be idle long enough under the shortest setting: the ones that
    # became ready a moment ago would only fill the batches.
    settled = now - MIN_SLEEP_AFTER
    return Demo.objects.filter(
        status=Status.READY,
        is_spare=False,
        spec__sleep_after_seconds__gt=0,
        expires_at__gt=now + MIN_TIME_LEFT,
        status_changed_at__lte=settled,
        ready_at__lte=settled,
    ).select_related("template")


def put_idle_demos_to_sleep(now: datetime) -> list[Demo]:
    """Put to sleep every running demo idle for longer than its template's `sleep_after`.

    Oldest first (by when it last began running). One Redis round trip per batch asks when each
    demo of the batch was last used.
    """
    asleep: list[Demo] = []
    for batch in itertools.batched(in_batches(_candidates(now), "status_changed_at"), BATCH):
        last_used = last_activity([demo.pk for demo in batch])
        for demo in batch:
            sleep_after = _sleep_after(demo)
            if sleep_after is None:
                continue
            idle_for = now - idle_since(demo, last_used.get(demo.pk))
            if idle_for < sleep_after:
                continue
            try:
                asleep.append(lifecycle.sleep_demo(demo=demo, actor=SCHEDULER, idle_for=idle_for))
            except InvalidTransition:
                continue  # extended, deleted or expired meanwhile: the next sweep looks again
    if asleep:
        log.info("Put %d idle demos to sleep", len(asleep))
    return asleep


def end_long_sleeps(now: datetime) -> list[Demo]:
    """Delete demos asleep for longer than their template keeps demos for later (its
    retention), longest asleep first."""
    sleepers = Demo.objects.filter(status=Status.ASLEEP, asleep_since__lte=now).select_related(
        "template"
    )
    ended = []
    for demo in in_batches(sleepers, "asleep_since"):
        if lifecycle.end_long_sleep(demo, now) is not None:
            ended.append(demo)
    return ended
