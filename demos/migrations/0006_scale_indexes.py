"""Indexes for a year of history, and each template's typical time to ready kept in a row.

The plans these indexes change are recorded in docs/performance.md ("Queries at scale").
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _median(samples):
    # Frozen here rather than imported, so later changes to the app cannot change a migration.
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def keep_typical_times(apps, schema_editor):
    """Fill the kept figure of every template from its latest demos, as demos.engine.speeds does
    whenever a demo becomes ready."""
    Demo = apps.get_model("demos", "Demo")
    DemoTemplate = apps.get_model("demos", "DemoTemplate")
    TemplateSpeed = apps.get_model("demos", "TemplateSpeed")
    for template_id in DemoTemplate.objects.values_list("pk", flat=True):
        samples = list(
            Demo.objects.filter(
                template_id=template_id,
                time_to_ready__isnull=False,
                is_spare=False,
                is_test_launch=False,
                restored_from__isnull=True,
            )
            .order_by("-ready_at")
            .values_list("time_to_ready", flat=True)[:20]
        )
        TemplateSpeed.objects.create(
            template_id=template_id,
            typical_time_to_ready=_median(samples) if samples else None,
            samples=len(samples),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("demos", "0005_template_studio"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TemplateSpeed",
            fields=[
                (
                    "template",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="speed",
                        serialize=False,
                        to="demos.demotemplate",
                    ),
                ),
                ("typical_time_to_ready", models.DurationField(blank=True, null=True)),
                ("samples", models.PositiveIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.AlterField(
            model_name="demo",
            name="template",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="demos",
                to="demos.demotemplate",
            ),
        ),
        migrations.AlterField(
            model_name="demo",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="demos",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="demoevent",
            name="demo",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="demos.demo",
            ),
        ),
        migrations.AddIndex(
            model_name="demo",
            index=models.Index(
                fields=["status", "requested_at"],
                name="demo_status_requested_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="demo",
            index=models.Index(
                fields=["requested_at", "id"],
                name="demo_requested_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="demo",
            index=models.Index(
                condition=models.Q(
                    ("status", "deleted"),
                    models.Q(("keep_until__isnull", True), ("status", "archived")),
                    _connector="OR",
                ),
                fields=["-ended_at", "-id"],
                name="demo_ended_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="demo",
            index=models.Index(
                condition=models.Q(
                    ("status", "deleted"),
                    models.Q(("keep_until__isnull", True), ("status", "archived")),
                    _connector="OR",
                ),
                fields=["owner", "-ended_at", "-id"],
                name="demo_owner_ended_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="demo",
            index=models.Index(
                condition=models.Q(("status__in", ["archived", "paused"])),
                fields=["keep_until", "id"],
                name="demo_kept_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="demo",
            index=models.Index(
                condition=models.Q(("is_spare", True)),
                fields=["template", "status"],
                name="demo_spare_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="demo",
            index=models.Index(
                condition=models.Q(("time_to_ready__isnull", False)),
                fields=["template", "-ready_at"],
                name="demo_template_ready_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="demoevent",
            index=models.Index(
                fields=["demo", "id"],
                name="demoevent_demo_id_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="demoevent",
            index=models.Index(
                condition=models.Q(("kind", "failed")),
                fields=["created_at"],
                name="demoevent_failed_idx",
            ),
        ),
        migrations.RunPython(keep_typical_times, migrations.RunPython.noop),
    ]
