"""CSV exports of demos and of prospect visits, streamed row by row.

Cells can hold text that prospects or salespeople typed (names, companies, user agents). A
spreadsheet would run a cell starting with = + - @ (or a tab or carriage return) as a formula, so
such cells are prefixed with a quote: the CSV injection guard OWASP recommends.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from demos.models import Demo, ShareLinkVisit

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

DEMO_COLUMNS = [
    "demo_id",
    "cluster_name",
    "template",
    "template_version",
    "owner",
    "owner_email",
    "prospect_name",
    "prospect_company",
    "status",
    "spare",
    "requested_at",
    "started_at",
    "ready_at",
    "expires_at",
    "ended_at",
    "seconds_to_ready",
    "extensions",
    "error",
]
VISIT_COLUMNS = [
    "visited_at",
    "recipient",
    "demo_id",
    "cluster_name",
    "template",
    "owner",
    "link_created_by",
    "link_created_at",
    "link_revoked_at",
    "client_address",
    "user_agent",
]


def safe_cell(value: Any) -> Any:
    """A cell value a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    if isinstance(value, timedelta):
        return round(value.total_seconds(), 1)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _username(user: Any) -> str:
    return user.get_username() if user is not None else ""


def demo_rows() -> Iterator[Sequence[Any]]:
    """Every demo ever started, oldest first."""
    yield DEMO_COLUMNS
    demos = Demo.objects.select_related("template", "owner").order_by("requested_at", "pk")
    for demo in demos.iterator(chunk_size=500):
        yield [
            demo.public_id,
            demo.cluster_name,
            demo.template.slug,
            demo.template_version,
            _username(demo.owner),
            demo.owner.email if demo.owner else "",
            demo.prospect_name,
            demo.prospect_company,
            demo.status,
            "yes" if demo.is_spare else "no",
            demo.requested_at,
            demo.started_at,
            demo.ready_at,
            demo.expires_at,
            demo.ended_at,
            demo.time_to_ready,
            demo.extension_count,
            demo.error_message,
        ]


def visit_rows() -> Iterator[Sequence[Any]]:
    """Every prospect visit through a share link, oldest first."""
    yield VISIT_COLUMNS
    visits = ShareLinkVisit.objects.select_related(
        "link__demo__template", "link__demo__owner", "link__created_by"
    ).order_by("visited_at", "pk")
    for visit in visits.iterator(chunk_size=500):
        link, demo = visit.link, visit.link.demo
        yield [
            visit.visited_at,
            link.recipient,
            demo.public_id,
            demo.cluster_name,
            demo.template.slug,
            _username(demo.owner),
            _username(link.created_by),
            link.created_at,
            link.revoked_at,
            visit.client_address,
            visit.user_agent,
        ]


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def stream_csv(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([safe_cell(value) for value in row])
