"""Changes to demo templates that go beyond saving a form: versions, copies, availability.

Running demos keep the frozen spec they started from, so none of this touches them. The audit
trail of these changes is Django admin's LogEntry, written by the admin that calls these.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from demos.models import DemoTemplate, TemplateChart

SLUG_MAX_LENGTH = DemoTemplate._meta.get_field("slug").max_length
NAME_MAX_LENGTH = DemoTemplate._meta.get_field("name").max_length
FLAG_REASON_MAX_LENGTH = DemoTemplate._meta.get_field("flag_reason").max_length


def bump_template_version(*, template: DemoTemplate) -> int:
    """Give `template` its next version number and return it.

    An atomic increment in the database, so two admins saving at the same moment get two
    different versions instead of both writing the same number.
    """
    DemoTemplate.objects.filter(pk=template.pk).update(
        version=F("version") + 1, updated_at=timezone.now()
    )
    template.version = DemoTemplate.objects.values_list("version", flat=True).get(pk=template.pk)
    return template.version


def _free_slug(base: str) -> str:
    for number in range(1, 1000):
        suffix = "-copy" if number == 1 else f"-copy-{number}"
        slug = base[: SLUG_MAX_LENGTH - len(suffix)] + suffix
        if not DemoTemplate.objects.filter(slug=slug).exists():
            return slug
    raise ValueError(f"No free slug for a copy of {base}.")


def duplicate_template(*, template: DemoTemplate) -> DemoTemplate:
    """A disabled copy of `template` with its charts, at version 1 and without a warm pool.

    Disabled and pool-less so the copy neither shows up in the catalog nor starts spares before
    an admin has reviewed and renamed it.
    """
    with transaction.atomic():
        charts = list(template.charts.all())
        copy = DemoTemplate.objects.get(pk=template.pk)
        copy.pk = None
        copy.id = None
        copy._state.adding = True
        copy.slug = _free_slug(template.slug)
        copy.name = f"{template.name} (copy)"[:NAME_MAX_LENGTH]
        copy.enabled = False
        copy.warm_pool_size = 0
        copy.version = 1
        # A copy starts with a clean record: its failures are not the original's.
        copy.consecutive_failures, copy.flagged_at, copy.flag_reason = 0, None, ""
        copy.save()
        TemplateChart.objects.bulk_create(
            TemplateChart(
                template=copy,
                position=chart.position,
                repository=chart.repository,
                chart=chart.chart,
                version=chart.version,
                release_name=chart.release_name,
                namespace=chart.namespace,
                values=chart.values,
            )
            for chart in charts
        )
    return copy


def set_template_enabled(*, template: DemoTemplate, enabled: bool) -> bool:
    """Show or hide a template in the catalog. True when this call changed it.

    Not a new version: availability is not part of what a demo runs. Demos already running
    are not affected either way.
    """
    changed = DemoTemplate.objects.filter(pk=template.pk, enabled=not enabled).update(
        enabled=enabled, updated_at=timezone.now()
    )
    template.enabled = enabled
    return changed == 1


def record_template_failure(*, template_id: int, cause: str) -> bool:
    """Count one more failed start in a row of a template; flag it, which takes it out of the
    catalog, once `DEMO_TEMPLATE_FLAG_AFTER` starts in a row failed. True when this call flagged
    it.

    Increments in the database and flags with a compare-and-swap, so two workers failing at the
    same moment count twice and flag once.
    """
    DemoTemplate.objects.filter(pk=template_id).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    flagged = DemoTemplate.objects.filter(
        pk=template_id,
        flagged_at__isnull=True,
        consecutive_failures__gte=settings.DEMO_TEMPLATE_FLAG_AFTER,
    ).update(flagged_at=timezone.now(), flag_reason=cause[:FLAG_REASON_MAX_LENGTH])
    return flagged == 1


def record_template_ready(*, template_id: int) -> None:
    """A demo of the template started: its failures are no longer in a row. A flag stays until
    an admin puts the template back."""
    DemoTemplate.objects.filter(pk=template_id, consecutive_failures__gt=0).update(
        consecutive_failures=0
    )


def put_template_back(*, template: DemoTemplate) -> bool:
    """Offer a flagged template in the catalog again, counting its failures from zero. True
    when this call changed it."""
    changed = DemoTemplate.objects.filter(pk=template.pk, flagged_at__isnull=False).update(
        flagged_at=None, flag_reason="", consecutive_failures=0, updated_at=timezone.now()
    )
    template.flagged_at, template.flag_reason, template.consecutive_failures = None, "", 0
    return changed == 1
