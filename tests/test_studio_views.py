"""The studio's pages: who may open them, the editor's validation and error summary, preview,
test launches, publishing, comparing and rolling back through the views."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from demos.models import Demo, DemoTemplate, Status, TemplateDraft
from demos.studio import versions
from demos.studio.forms import form_data
from demos.studio.versions import Actor
from tests.conftest import make_demo, run_jobs
from tests.test_admin_templates import BAD_INPUT

# The admin's durations are HH:MM:SS; the studio's pickers take a number and a unit.
DURATION_INPUT = {
    "default lifetime above maximum": (
        {"default_lifetime_0": "10", "default_lifetime_1": "h", "max_lifetime_0": "8"},
        "Default lifetime (10 h) is longer than the maximum lifetime (8 h)",
    ),
    "lifetime too short": (
        {"default_lifetime_0": "1", "default_lifetime_1": "m"},
        "Default lifetime must be at least 5 min",
    ),
}
STUDIO_BAD_INPUT = {
    **{name: case for name, case in BAD_INPUT.items() if name not in DURATION_INPUT},
    **DURATION_INPUT,
}


def post_data(template: DemoTemplate, **changes: str) -> dict[str, str]:
    """What the editor posts for the template's current content, with `changes` applied."""
    return {**form_data(versions.working_content(template)), **changes}


def edit_url(template: DemoTemplate) -> str:
    return reverse("demos:studio_edit", args=[template.slug])


def summary_links(html: str) -> list[tuple[str, str]]:
    """The error summary's links: (href, text)."""
    summary = html.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
    return [
        (href, re.sub(r"\s+", " ", text).strip())
        for href, text in re.findall(r'<a href="(#[^"]+)">(.*?)</a>', summary, re.S)
    ]


class TestAccess:
    @pytest.mark.parametrize("who", ["alice", "manager"])
    def test_salespeople_and_managers_are_refused(
        self, client: Client, who: str, request: Any, template: DemoTemplate
    ) -> None:
        client.force_login(request.getfixturevalue(who))
        for url in (
            reverse("demos:studio"),
            reverse("demos:studio_new"),
            edit_url(template),
            reverse("demos:studio_template", args=[template.slug]),
        ):
            assert client.get(url).status_code == 403, url
        response = client.post(reverse("demos:studio_publish", args=[template.slug]))
        assert response.status_code == 403

    def test_anonymous_visitors_log_in_first(self, client: Client) -> None:
        response = client.get(reverse("demos:studio"))
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")

    def test_template_admins_see_the_list_and_the_nav_link(
        self, admin_client: Client, template: DemoTemplate, template_admin: User
    ) -> None:
        draft = versions.create_template(
            document={**versions.default_content(), "slug": "crm", "name": "CRM"},
            actor=Actor(template_admin),
        )
        response = admin_client.get(reverse("demos:studio"))

        assert response.status_code == 200
        rows = {row.template.slug: row for row in response.context["rows"]}
        assert (rows["crm"].status, rows["webshop"].status) == ("draft", "published")
        assert (rows["crm"].versions, rows["webshop"].versions) == (0, 1)
        assert draft.name in response.text
        assert f'href="{reverse("demos:studio")}"' in response.text

    def test_the_list_shows_running_demos_failures_and_time_to_ready(
        self, admin_client: Client, alice: User, template: DemoTemplate
    ) -> None:
        from datetime import timedelta

        make_demo(template, alice, ready_after=timedelta(seconds=40))
        make_demo(template, alice, ready_after=timedelta(seconds=60))
        make_demo(template, alice, Status.FAILED)

        row = admin_client.get(reverse("demos:studio")).context["rows"][0]

        assert (row.running, row.failures) == (2, 1)
        assert row.typical_time_to_ready == timedelta(seconds=50)


class TestEditor:
    def test_every_setting_is_in_exactly_one_section(self) -> None:
        from demos.studio.documents import SETTINGS
        from demos.studio.forms import SECTIONS

        placed = [name for _key, _title, names in SECTIONS for name in names]
        assert sorted(placed) == sorted(SETTINGS)

    def test_it_shows_duration_pickers_with_the_template_values(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        html = admin_client.get(edit_url(template)).text

        number = re.search(r'<input[^>]*name="max_lifetime_0"[^>]*>', html)[0]
        assert 'value="8"' in number
        assert 'type="number"' in number
        unit = re.search(r'<select[^>]*name="max_lifetime_1".*?</select>', html, re.S)[0]
        assert '<option value="h" selected>hours</option>' in unit
        assert '<label for="id_max_lifetime_0">' in html

    @pytest.mark.parametrize(
        ("changes", "message"), STUDIO_BAD_INPUT.values(), ids=list(STUDIO_BAD_INPUT)
    )
    def test_each_error_is_in_the_summary_linked_to_its_field_and_on_the_field(
        self, admin_client: Client, template: DemoTemplate, changes: dict[str, str], message: str
    ) -> None:
        response = admin_client.post(edit_url(template), post_data(template, **changes))

        assert response.status_code == 200
        links = summary_links(response.text)
        linked = [href for href, text in links if message in text.replace("&quot;", '"')]
        assert linked, f"{message!r} not in the summary: {links}"
        anchor = linked[0][1:]
        assert f'id="{anchor}"' in response.text, "the link points at an element of the page"
        field = response.text.split(f'id="{anchor}"', 1)[1].split('class="field', 1)[0]
        assert "errorlist" in field, "the error is shown at the field too"
        assert not TemplateDraft.objects.filter(template=template).exists()

    def test_a_yaml_error_marks_its_line_for_the_code_editor(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        response = admin_client.post(
            edit_url(template),
            post_data(template, **{"charts-0-values": "host: ${DEMO_HOST}\nimage: [unclosed\n"}),
        )
        textarea = re.search(r'<textarea[^>]*name="charts-0-values"[^>]*>', response.text)[0]
        assert "data-yaml-editor" in textarea
        assert 'data-yaml-error-line="2"' in textarea
        assert 'data-yaml-error-column="17"' in textarea

    def test_saving_makes_a_draft_and_leaves_the_published_content(
        self, admin_client: Client, template: DemoTemplate, template_admin: User
    ) -> None:
        response = admin_client.post(
            edit_url(template),
            post_data(template, name="Web shop", max_lifetime_0="2", max_lifetime_1="d"),
        )

        assert response.status_code == 302
        draft = TemplateDraft.objects.get(template=template)
        assert (draft.content["name"], draft.content["max_lifetime"]) == ("Web shop", "2d")
        assert (draft.saved_by, draft.based_on) == (template_admin, 1)
        template.refresh_from_db()
        assert template.name == "Webshop"

    def test_it_adds_a_chart_from_the_empty_form_and_removes_one(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        data = post_data(template)
        data |= {
            "charts-TOTAL_FORMS": "3",
            "charts-2-release_name": "cache",
            "charts-2-chart": "redis",
            "charts-2-repository": "oci://registry.example.com/charts",
            "charts-2-version": "7.0.1",
            "charts-2-namespace": "cache",
            "charts-2-values": "",
            "charts-0-DELETE": "on",
        }

        assert admin_client.post(edit_url(template), data).status_code == 302

        charts = TemplateDraft.objects.get(template=template).content["charts"]
        assert [chart["release_name"] for chart in charts] == ["app1", "cache"]

    def test_an_untouched_empty_chart_form_adds_nothing(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        html = admin_client.get(edit_url(template)).text
        assert 'name="charts-TOTAL_FORMS" value="3"' in html
        data = post_data(template) | {
            "charts-TOTAL_FORMS": "3",
            "charts-2-namespace": "default",
        }
        assert admin_client.post(edit_url(template), data).status_code == 302
        charts = TemplateDraft.objects.get(template=template).content["charts"]
        assert len(charts) == 2

    def test_a_new_template_is_a_draft_until_published(
        self, admin_client: Client, alice: User
    ) -> None:
        document = {**versions.default_content(), "slug": "crm", "name": "CRM"}
        data = form_data(document)

        response = admin_client.post(reverse("demos:studio_new"), data)

        assert response.status_code == 302
        template = DemoTemplate.objects.get(slug="crm")
        assert template.published_version is None
        client = Client()
        client.force_login(alice)
        assert "CRM" not in client.get(reverse("demos:catalog")).text

    def test_template_admins_cannot_change_the_unsafe_overrides(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        data = post_data(template, unsafe_vcluster_overrides="sync:\n  toHost: {}\n")
        assert admin_client.post(edit_url(template), data).status_code == 302
        draft = TemplateDraft.objects.get(template=template)
        assert draft.content["unsafe_vcluster_overrides"] == ""


class TestPreview:
    def test_it_previews_unsaved_edits_for_the_sample_values(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        data = post_data(
            template, **{"charts-0-values": "greeting: Hi ${PROSPECT_COMPANY} from ${OWNER_NAME}"}
        )
        data |= {"sample_prospect_company": "Initech", "sample_owner_name": "Ada Lovelace"}

        response = admin_client.post(
            reverse("demos:studio_preview", args=[template.slug]),
            data,
            headers={"HX-Request": "true"},
        )

        assert response.status_code == 200
        assert response.text.lstrip().startswith('<div id="preview"')
        assert "greeting: Hi Initech from Ada Lovelace" in response.text
        assert not TemplateDraft.objects.filter(template=template).exists(), "nothing saved"

    def test_it_lists_the_problems_instead_of_a_preview(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        data = post_data(template, entry_url="https://${HOST}/")
        response = admin_client.post(
            reverse("demos:studio_preview", args=[template.slug]),
            data,
            headers={"HX-Request": "true"},
        )
        assert 'href="#id_entry_url"' in response.text
        assert "unknown variable ${HOST}" in response.text

    def test_without_javascript_it_renders_the_whole_page(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        response = admin_client.post(
            reverse("demos:studio_preview", args=[template.slug]), post_data(template)
        )
        assert "<html" in response.text
        assert "vcluster.yaml" in response.text


class TestPublishing:
    def test_publish_compare_and_roll_back(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        admin_client.post(edit_url(template), post_data(template, tagline="Now with payments"))
        page = admin_client.get(reverse("demos:studio_template", args=[template.slug]))
        assert "Publish draft" in page.text

        response = admin_client.post(reverse("demos:studio_publish", args=[template.slug]))

        assert response.status_code == 302
        template.refresh_from_db()
        assert (template.version, template.tagline) == (2, "Now with payments")
        compare = admin_client.get(
            reverse("demos:studio_compare", args=[template.slug]), {"old": "1", "new": "2"}
        )
        added = [line.text for line in compare.context["lines"] if line.kind == "added"]
        assert added == ["tagline: Now with payments"]

        admin_client.post(reverse("demos:studio_roll_back", args=[template.slug, 1]))

        template.refresh_from_db()
        assert (template.version, template.tagline) == (3, "A shop with a database")
        page = admin_client.get(reverse("demos:studio_template", args=[template.slug]))
        assert "Rolled back to version 1." in page.text

    def test_compare_is_not_found_for_a_missing_version(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        url = reverse("demos:studio_compare", args=[template.slug])
        assert admin_client.get(url, {"old": "1", "new": "9"}).status_code == 404
        assert admin_client.get(url, {"old": "1", "new": "draft"}).status_code == 404

    def test_it_hides_and_offers_a_template_without_a_new_version(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        url = reverse("demos:studio_availability", args=[template.slug])
        admin_client.post(url)
        template.refresh_from_db()
        assert (template.enabled, template.version) == (False, 1)
        admin_client.post(url, {"enabled": "on"})
        template.refresh_from_db()
        assert template.enabled


class TestTestLaunchPage:
    def test_it_starts_the_draft_and_reports_each_chart(
        self,
        admin_client: Client,
        template: DemoTemplate,
        rq_redis: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        admin_client.post(
            edit_url(template), post_data(template, **{"charts-1-release_name": "api"})
        )

        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("demos:studio_test_launch", args=[template.slug]))

        demo = Demo.objects.get(is_test_launch=True)
        assert response["Location"] == reverse(
            "demos:studio_launch", args=[template.slug, demo.public_id]
        )
        assert [chart["name"] for chart in demo.spec["charts"]] == ["app0", "api"]
        run_jobs()
        demo.refresh_from_db()
        assert demo.status == Status.READY

        poll = admin_client.get(
            response["Location"], {"fragment": "report"}, headers={"HX-Request": "true"}
        )

        assert poll.status_code == 286, "settled: htmx stops polling"
        report = poll.context["report"]
        assert [(chart.label, chart.state) for chart in report.charts] == [
            ("app0", "done"),
            ("api", "done"),
        ]
        assert report.time_to_ready == demo.time_to_ready
        assert 'id="time-to-ready"' in poll.text

    def test_another_templates_launch_is_not_found(
        self, admin_client: Client, template: DemoTemplate, alice: User
    ) -> None:
        demo = make_demo(template, alice)
        url = reverse("demos:studio_launch", args=[template.slug, demo.public_id])
        assert admin_client.get(url).status_code == 404


class TestExportButtons:
    def test_it_downloads_the_published_version_and_the_draft(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        url = reverse("demos:studio_export", args=[template.slug])
        response = admin_client.get(url)
        assert response["Content-Disposition"] == 'attachment; filename="webshop-v1.yaml"'
        assert response.content.decode().startswith("format: demo-template/1\nname: Webshop\n")
        assert admin_client.get(url, {"version": "draft"}).status_code == 404

    def test_the_import_page_makes_a_draft_or_lists_the_problems(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        exported = admin_client.get(reverse("demos:studio_export", args=[template.slug]))
        text = exported.content.decode().replace("name: Webshop", "name: Web shop")
        url = reverse("demos:studio_import")

        response = admin_client.post(url, {"document": text})

        assert response.status_code == 302
        assert TemplateDraft.objects.get(template=template).content["name"] == "Web shop"
        bad = admin_client.post(url, {"document": text.replace("colour: '#", "colour: '")})
        assert bad.status_code == 200
        assert "Colour “4f46e5” must be written as #rrggbb" in bad.text
