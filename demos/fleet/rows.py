"""Rows of the fleet overview, rendered once and kept while nothing they show changes.

The overview lists a page of demos and the last day's failures, 25 rows each, and rendering them
was most of the page's time. Each row is kept (`demos.fragments`, in this process and in Redis),
keyed by every column of its demo (or event and demo) as loaded, its template's name and its
owner's names, and whether the reader may act on it. The times it writes in words are holes,
filled in on each view.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, partial
from typing import Any

from django.db.models import Model
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from demos.durations import format_duration
from demos.fragments import Kept, hole
from demos.models import Demo, DemoEvent
from demos.moments import since

DEMO_ROW = "fleet/overview.html#demo_row"
FAILURE_ROW = "fleet/overview.html#failure_row"


def of_demos(request: HttpRequest, demos: Iterable[Demo]) -> list[SafeString]:
    """Each demo's row; `fleet_can_act` must be set on each."""
    return Kept(request).many(
        [
            (
                ("fleet-demo", _columns(demo), *_template_and_owner(demo), demo.fleet_can_act),
                partial(_render, DEMO_ROW, demo=demo, times=_holes("age", "left")),
                {"age": since(demo.requested_at), "left": format_duration(demo.time_left)},
            )
            for demo in demos
        ]
    )


def of_failures(request: HttpRequest, failures: Iterable[DemoEvent]) -> list[SafeString]:
    """Each failure's row, its event loaded with its demo, template and owner."""
    return Kept(request).many(
        [
            (
                (
                    "fleet-failure",
                    _columns(event),
                    _columns(event.demo),
                    *_template_and_owner(event.demo),
                ),
                partial(_render, FAILURE_ROW, event=event, times=_holes("when")),
                {"when": since(event.created_at)},
            )
            for event in failures
        ]
    )


def _render(template_name: str, **context: Any) -> str:
    return render_to_string(template_name, context)


def _holes(*names: str) -> dict[str, SafeString]:
    return {name: hole(name) for name in names}


@cache
def _column_names(model: type[Model]) -> tuple[str, ...]:
    """A model's columns but its JSON ones, which no row shows (and lists may leave unloaded)."""
    return tuple(
        field.attname
        for field in model._meta.concrete_fields
        if field.get_internal_type() != "JSONField"
    )


def _columns(instance: Model) -> tuple[object, ...]:
    # A deferred column is absent from the instance's dict: None here, never a query.
    return tuple(map(instance.__dict__.get, _column_names(type(instance))))


def _template_and_owner(demo: Demo) -> tuple[object, ...]:
    template, owner = demo.template, demo.owner
    names = (owner.get_username(), owner.get_full_name()) if owner else None
    return (template.pk, template.name, template.updated_at), names
