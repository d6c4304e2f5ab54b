"""Templates as YAML documents: export, import through the editor's validation, the manage.py
commands, and the round trip that must give the same bytes back."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from demos import seed
from demos.models import DemoTemplate, TemplateChart, TemplateDraft
from demos.studio import documents, versions
from demos.studio.import_export import export_template, import_template
from demos.studio.versions import Actor

COMMAND = Actor(label="tests")


def export(slug: str, *options: str) -> str:
    out = StringIO()
    call_command("export_template", slug, *options, stdout=out)
    return out.getvalue()


def import_file(path: Path, *options: str) -> str:
    out = StringIO()
    call_command("import_template", str(path), *options, stdout=out)
    return out.getvalue()


class TestDocuments:
    @pytest.mark.parametrize(
        ("text", "seconds"), [("2h", 7200), ("90m", 5400), ("14d", 1_209_600), (" 30 s ", 30)]
    )
    def test_it_reads_durations_as_a_number_and_a_unit(self, text: str, seconds: int) -> None:
        assert documents.parse_duration_text(text).total_seconds() == seconds

    @pytest.mark.parametrize("text", ["2:00:00", "2 hours", "-1h", "1.5h", ""])
    def test_it_refuses_other_durations(self, text: str) -> None:
        with pytest.raises(ValueError, match="is not a duration"):
            documents.parse_duration_text(text)

    def test_it_writes_durations_in_the_largest_exact_unit(self) -> None:
        from datetime import timedelta

        assert [
            documents.duration_text(timedelta(seconds=s)) for s in (7200, 5400, 86400 * 14, 0)
        ] == ["2h", "90m", "14d", "0d"]

    def test_multi_line_texts_are_written_as_blocks(self, template: DemoTemplate) -> None:
        text = export_template(template)
        assert "credentials: |-\n  Username: admin\n  Password: demo\n" in text
        assert (
            "  values: |-\n    host: ${DEMO_HOST}\n    greeting: Hello ${PROSPECT_COMPANY}\n"
            in text
        )

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("[1, 2]", "expected a YAML mapping"),
            ("name: x\n", "must be `format: demo-template/1`"),
            ("format: demo-template/1\nsize: 3\n", "unknown settings size"),
            ("format: demo-template/1\ncharts: [{name: x}]\n", "chart 1 has unknown keys name"),
            ("format: demo-template/1\nname: [unclosed\n", "invalid YAML at line"),
        ],
    )
    def test_it_refuses_what_is_not_a_template_document(self, text: str, message: str) -> None:
        result = import_template(text, actor=COMMAND)
        assert not result.ok
        assert message in result.problems[0]


class TestRoundTrip:
    def test_an_exported_template_imports_and_exports_to_the_same_bytes(
        self, db: None, tmp_path: Path
    ) -> None:
        seed.seed_templates()
        for template in DemoTemplate.objects.all():
            exported = export(template.slug)
            path = tmp_path / f"{template.slug}.yaml"
            path.write_text(exported.replace(f"slug: {template.slug}", f"slug: {template.slug}-2"))

            assert "published as version 1" in import_file(path, "--publish")

            again = export(f"{template.slug}-2")
            assert again == path.read_text(), template.slug

    def test_a_template_saved_with_surrounding_blanks_round_trips(
        self, db: None, tmp_path: Path
    ) -> None:
        template = DemoTemplate.objects.create(slug="blanks", name=" Blanks ")
        TemplateChart.objects.create(
            template=template,
            repository="oci://registry.example.com/charts",
            chart="blanks",
            version="1.0.0",
            release_name="blanks",
            values="\r\nhost: ${DEMO_HOST}\r\n\r\n",
        )
        versions.record_row_as_version(template=template, actor=COMMAND, note="")
        exported = export("blanks", "--number", "1")
        path = tmp_path / "blanks.yaml"
        path.write_text(exported)

        import_file(path)

        assert export("blanks", "--draft") == exported

    def test_import_saves_a_draft_of_an_existing_template_and_publishes_on_request(
        self, template: DemoTemplate, tmp_path: Path
    ) -> None:
        path = tmp_path / "webshop.yaml"
        path.write_text(export("webshop").replace("max_extensions: 3", "max_extensions: 5"))

        assert "saved as its draft" in import_file(path)
        template.refresh_from_db()
        assert (template.max_extensions, template.version) == (3, 1)
        assert TemplateDraft.objects.get(template=template).content["max_extensions"] == 5

        assert "published as version 2" in import_file(path, "--publish")
        template.refresh_from_db()
        assert (template.max_extensions, template.version) == (5, 2)
        assert "unchanged" in import_file(path, "--publish")
        assert template.versions.count() == 2

    def test_import_is_validated_like_the_editor(
        self, template: DemoTemplate, tmp_path: Path
    ) -> None:
        text = export("webshop").replace("release_name: app1", "release_name: app0")
        text = text.replace("default_lifetime: 2h", "default_lifetime: 10h")
        path = tmp_path / "bad.yaml"
        path.write_text(text)

        with pytest.raises(CommandError) as refused:
            import_file(path)

        message = str(refused.value)
        assert "Default lifetime (10 h) is longer than the maximum lifetime (8 h)" in message
        assert "Chart app0: Release name “app0” is used by another chart" in message
        assert not TemplateDraft.objects.filter(template=template).exists()

    def test_a_short_file_changes_only_what_it_names(self, template: DemoTemplate) -> None:
        text = "format: demo-template/1\nslug: webshop\nmax_extensions: 4\n"
        result = import_template(text, actor=COMMAND, publish=True)
        assert result.ok, result.problems
        template.refresh_from_db()
        assert (template.max_extensions, template.version) == (4, 2)
        assert template.charts.count() == 2  # charts the file leaves out are kept

    def test_a_new_template_from_a_short_file_takes_the_defaults(self, db: None) -> None:
        text = "format: demo-template/1\nslug: tiny\nname: Tiny\n"
        result = import_template(text, actor=COMMAND)
        assert result.ok, result.problems
        assert result.created
        draft = TemplateDraft.objects.get(template__slug="tiny").content
        assert draft["default_lifetime"] == documents.duration_text(
            DemoTemplate._meta.get_field("default_lifetime").default
        )

    def test_an_unreadable_duration_is_named_on_its_field(self, template: DemoTemplate) -> None:
        text = "format: demo-template/1\nslug: webshop\nretention: 2 weeks\n"
        result = import_template(text, actor=COMMAND)
        assert result.problems == [
            "Retention: “2 weeks” is not a duration. Write a whole number and a unit: d (days), "
            "h (hours), m (minutes) or s (seconds), e.g. 2h or 90m."
        ]

    def test_a_template_admin_cannot_import_unsafe_overrides(
        self, template: DemoTemplate, template_admin: User
    ) -> None:
        text = export("webshop").replace(
            "unsafe_vcluster_overrides: ''", "unsafe_vcluster_overrides: 'sync: {}'"
        )
        result = import_template(text, actor=Actor(template_admin))
        assert any("only superusers may change these" in p for p in result.problems)

    def test_export_refuses_what_does_not_exist(self, template: DemoTemplate) -> None:
        with pytest.raises(CommandError, match="No template with slug"):
            export("nothing")
        with pytest.raises(CommandError, match="has no draft"):
            export("webshop", "--draft")
        with pytest.raises(CommandError, match="has no version 7"):
            export("webshop", "--number", "7")

    def test_the_export_is_plain_yaml_with_every_setting(self, template: DemoTemplate) -> None:
        data = yaml.safe_load(export("webshop"))
        assert list(data) == ["format", *documents.SETTINGS, "charts"]
        assert data["default_lifetime"] == "2h"
        assert [chart["release_name"] for chart in data["charts"]] == ["app0", "app1"]
