"""What the studio's pages read: the list of templates with their health, and one template's
versions, draft and test launches. Reads only; a bounded number of queries per page."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone

from demos.durations import percentile
from demos.models import ACTIVE, Demo, DemoEvent, DemoTemplate, TemplateDraft, TemplateVersion

FAILURE_WINDOW = timedelta(days=7)
SPEED_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class TemplateRow:
    template: DemoTemplate
    versions: int
    has_draft: bool
    running: int
    failures: int
    typical_time_to_ready: timedelta | None

    @property
    def status(self) -> str:
        return status_of(self.template)


def status_of(template: DemoTemplate) -> str:
    """draft (never published), disabled, or published."""
    if template.published_version_id is None:
        return "draft"
    return "published" if template.enabled else "disabled"


def template_rows(now: datetime | None = None) -> list[TemplateRow]:
    now = now or timezone.now()
    templates = DemoTemplate.objects.annotate(
        version_count=Count("versions", distinct=True),
        running=Count(
            "demos",
            filter=Q(demos__status__in=ACTIVE, demos__is_spare=False, demos__is_test_launch=False),
            distinct=True,
        ),
    ).order_by("name")
    drafts = set(TemplateDraft.objects.values_list("template_id", flat=True))
    failures = dict(
        DemoEvent.objects.filter(
            kind="failed", created_at__gte=now - FAILURE_WINDOW, demo__is_test_launch=False
        )
        .order_by()
        .values_list("demo__template_id")
        .annotate(n=Count("pk"))
    )
    speeds = typical_times_to_ready(now)
    return [
        TemplateRow(
            template=template,
            versions=template.version_count,
            has_draft=template.pk in drafts,
            running=template.running,
            failures=failures.get(template.pk, 0),
            typical_time_to_ready=speeds.get(template.pk),
        )
        for template in templates
    ]


def typical_times_to_ready(now: datetime) -> dict[int, timedelta]:
    """Median start-to-ready time of the demos salespeople started in the last 30 days."""
    samples: dict[int, list[timedelta]] = defaultdict(list)
    rows = Demo.objects.filter(
        ready_at__gte=now - SPEED_WINDOW,
        time_to_ready__isnull=False,
        is_spare=False,
        is_test_launch=False,
        restored_from__isnull=True,
    ).values_list("template_id", "time_to_ready")
    for template_id, duration in rows.iterator():
        samples[template_id].append(duration)
    return {template_id: percentile(values, 50) for template_id, values in samples.items()}


def versions_of(template: DemoTemplate) -> list[TemplateVersion]:
    """Newest first, each with how many demos started from it are active."""
    return list(
        TemplateVersion.objects.filter(template=template)
        .select_related("published_by")
        .annotate(active=Count("demos", filter=Q(demos__status__in=ACTIVE)))
        .order_by("-number")
    )
