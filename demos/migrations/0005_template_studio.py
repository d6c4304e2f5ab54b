# The template studio: drafts, immutable published versions, and demos that record the version
# they started from. Every existing template's current content becomes its first recorded
# version, so the catalog keeps offering it.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# The template document as the studio wrote it when this migration was made (format
# demo-template/1); frozen here so later changes to the studio cannot change this migration.
FORMAT = "demo-template/1"
SETTINGS = [
    "name", "slug", "tagline", "description", "icon", "colour",
    "kubernetes_version", "control_plane_cpu", "control_plane_memory", "storage_size",
    "quota_cpu", "quota_memory", "quota_pods", "vcluster_overrides",
    "unsafe_vcluster_overrides",
    "entry_url", "instructions", "credentials", "allow_kubeconfig_download",
    "default_lifetime", "max_lifetime", "extension_step", "max_extensions", "expiry_action",
    "retention", "provisioning_timeout", "max_concurrent",
    "warm_pool_size", "warm_pool_schedule", "warm_pool_max_age",
]
CHART_KEYS = ["repository", "chart", "version", "release_name", "namespace", "values"]
UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def _value(value):
    if hasattr(value, "total_seconds"):
        seconds = int(value.total_seconds())
        suffix, size = next((s, n) for s, n in UNITS if seconds % n == 0)
        return f"{seconds // size}{suffix}"
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return value


def publish_existing(apps, schema_editor):
    DemoTemplate = apps.get_model("demos", "DemoTemplate")
    TemplateVersion = apps.get_model("demos", "TemplateVersion")
    Demo = apps.get_model("demos", "Demo")
    for template in DemoTemplate.objects.all():
        content = {"format": FORMAT, **{name: _value(getattr(template, name)) for name in SETTINGS}}
        content["charts"] = [
            {key: _value(getattr(chart, key)) for key in CHART_KEYS}
            for chart in template.charts.order_by("position", "pk")
        ]
        # Numbered as the template's current version, which its demos already recorded; the
        # content of earlier versions was never kept.
        version = TemplateVersion.objects.create(
            template=template,
            number=template.version,
            content=content,
            published_by_label="upgrade",
            note="The content when versions started to be kept.",
        )
        DemoTemplate.objects.filter(pk=template.pk).update(published_version=version)
        Demo.objects.filter(template=template, template_version=template.version).update(
            from_version=version
        )


class Migration(migrations.Migration):

    dependencies = [
        ("demos", "0004_engine_v2"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TemplateVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveIntegerField()),
                ("content", models.JSONField()),
                ("published_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("published_by_label", models.CharField(blank=True, help_text="Who published it when not a person, e.g. seed.", max_length=100)),
                ("note", models.CharField(blank=True, max_length=300)),
                ("published_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("template", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="versions", to="demos.demotemplate")),
            ],
            options={
                "ordering": ["template", "-number"],
                "constraints": [
                    models.UniqueConstraint(fields=("template", "number"), name="unique_version_number_per_template")
                ],
            },
        ),
        migrations.CreateModel(
            name="TemplateDraft",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("content", models.JSONField()),
                ("based_on", models.PositiveIntegerField(blank=True, help_text="The version number it started from; empty for new.", null=True)),
                ("saved_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("saved_by_label", models.CharField(blank=True, max_length=100)),
                ("saved_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("template", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="draft", to="demos.demotemplate")),
            ],
        ),
        migrations.AddField(
            model_name="demotemplate",
            name="published_version",
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="demos.templateversion"),
        ),
        migrations.AddField(
            model_name="demo",
            name="from_version",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="demos", to="demos.templateversion"),
        ),
        migrations.AddField(
            model_name="demo",
            name="is_test_launch",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(publish_existing, migrations.RunPython.noop),
    ]
