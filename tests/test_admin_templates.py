"""Template editing in the admin: validation on save, versions, actions, preview, read-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from demos.models import Demo, DemoTemplate, ShareLink, Status, TemplateChart
from tests.conftest import change_url, form_data, make_demo, make_template, snapshot

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "fixtures" / "vcluster-chart" / "values.schema.json"


BAD_INPUT = {
    "chart values YAML": (
        {"charts-0-values": "host: ${DEMO_HOST}\nimage: [unclosed\n"},
        "Values of chart app0: invalid YAML at line 2, column 17",
    ),
    "credentials YAML": (
        {"credentials": "Username: admin\n  Password: demo\n"},
        "Credentials: invalid YAML at line 2, column 11",
    ),
    "overrides YAML": (
        {"vcluster_overrides": "controlPlane:\n\tdistro: {}\n"},
        "vCluster overrides: invalid YAML at line 2, column 1",
    ),
    "unknown variable in instructions": (
        {"instructions": "Open ${DEMO_HSOT} in a browser."},
        "Instructions: unknown variable ${DEMO_HSOT}",
    ),
    "unknown variable in chart values": (
        {"charts-1-values": "greeting: Hello ${CUSTOMER}\n"},
        "Values of chart app1: unknown variable ${CUSTOMER}",
    ),
    "unknown variable in entry URL": (
        {"entry_url": "https://${HOST}/"},
        "Entry URL: unknown variable ${HOST}",
    ),
    "variable in a YAML key": (
        {"charts-0-values": "${DEMO_NAME}: true\n"},
        "variables are replaced in values, not in keys",
    ),
    "plain http chart repository": (
        {"charts-0-repository": "http://charts.example.com"},
        "Plain http:// is not accepted",
    ),
    "chart repository without scheme": (
        {"charts-0-repository": "charts.example.com/stable"},
        "must start with https:// (a Helm repository) or oci:// (an OCI registry)",
    ),
    "chart version range": (
        {"charts-0-version": "^1.2"},
        "Chart version “^1.2” must be an exact version",
    ),
    "release name not a DNS label": (
        {"charts-0-release_name": "My_App"},
        "Release name “My_App” must be at most 53 lowercase letters",
    ),
    "memory not a quantity": (
        {"control_plane_memory": "256MB"},
        "Control-plane memory: “256MB” is not a Kubernetes quantity",
    ),
    "memory in thousandths": (
        {"control_plane_memory": "256m"},
        "A lowercase m means thousandths, not mega",
    ),
    "CPU in cores instead of millicores": (
        {"control_plane_cpu": "200"},
        "Did you mean 200m",
    ),
    "storage too small": (
        {"storage_size": "10Mi"},
        "Storage size: 10Mi is outside the sensible range 256Mi to 1Ti",
    ),
    "quota below the control plane": (
        {"quota_cpu": "100m", "control_plane_cpu": "200m"},
        "Quota CPU (100m) must be larger than the control plane",
    ),
    "default lifetime above maximum": (
        {"default_lifetime": "10:00:00", "max_lifetime": "08:00:00"},
        "Default lifetime (10 h) is longer than the maximum lifetime (8 h)",
    ),
    "lifetime too short": (
        {"default_lifetime": "00:01:00"},
        "Default lifetime must be at least 5 min",
    ),
    "warm pool with personal variables": (
        {"warm_pool_size": "2"},
        "prevent pre-provisioning: ${PROSPECT_COMPANY} in Values of chart app0, Values of "
        "chart app1",
    ),
    "cron schedule": (
        {"warm_pool_schedule": "weekdays at eight"},
        "Warm-pool schedule “weekdays at eight” is not a cron expression",
    ),
    "paid vCluster feature in overrides": (
        {"vcluster_overrides": "sleep:\n  auto:\n    afterInactivity: 1h\n"},
        "vCluster overrides: sleep is not allowed",
    ),
    "variable in overrides": (
        {"vcluster_overrides": "controlPlane:\n  ingress:\n    host: ${DEMO_HOST}\n"},
        "variables such as ${DEMO_HOST} are not replaced here",
    ),
    "colour": ({"colour": "blue"}, "Colour “blue” must be written as #rrggbb"),
}


class TestValidation:
    @pytest.mark.parametrize("case", sorted(BAD_INPUT))
    def test_it_rejects_bad_input_with_a_clear_message(
        self, case: str, admin_client: Client, template: DemoTemplate
    ) -> None:
        changes, message = BAD_INPUT[case]
        before = snapshot(template)
        response = admin_client.post(change_url(template), form_data(template, **changes))
        assert response.status_code == 200, "the form is shown again, not saved"
        assert message in response.content.decode()
        assert snapshot(template) == before
        assert not LogEntry.objects.exists()

    def test_template_admins_overrides_stay_on_the_allow_list(
        self, admin_client: Client, template: DemoTemplate, settings: Any
    ) -> None:
        settings.VCLUSTER_VALUES_SCHEMA = str(SCHEMA)
        before = snapshot(template)
        overrides = "policies:\n  podSecurityStandard: privileged\n"
        response = admin_client.post(
            change_url(template), form_data(template, vcluster_overrides=overrides)
        )
        assert response.status_code == 200
        assert (
            "policies.podSecurityStandard cannot be set by template admins"
            in response.content.decode()
        )
        assert snapshot(template) == before

    def test_it_accepts_overrides_on_the_list(
        self, admin_client: Client, template: DemoTemplate, settings: Any
    ) -> None:
        settings.VCLUSTER_VALUES_SCHEMA = str(SCHEMA)
        overrides = "sync:\n  toHost:\n    services:\n      enabled: true\n"
        response = admin_client.post(
            change_url(template), form_data(template, vcluster_overrides=overrides)
        )
        assert response.status_code == 302
        template.refresh_from_db()
        assert template.vcluster_overrides == overrides.strip()

    def test_template_admins_cannot_change_the_unsafe_overrides(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        overrides = "rbac:\n  clusterRole:\n    enabled: true\n"
        response = admin_client.post(
            change_url(template), form_data(template, unsafe_vcluster_overrides=overrides)
        )
        assert response.status_code == 302
        template.refresh_from_db()
        assert template.unsafe_vcluster_overrides == ""

    def test_a_superuser_sets_unsafe_overrides_checked_by_the_schema_and_recorded(
        self, client: Client, template: DemoTemplate, settings: Any
    ) -> None:
        settings.VCLUSTER_VALUES_SCHEMA = str(SCHEMA)
        root = User.objects.create_superuser("root", "root@example.com", "pw")
        client.force_login(root)
        typo = "controlPlane:\n  distro:\n    k8s:\n      enabld: true\n"
        response = client.post(
            change_url(template), form_data(template, unsafe_vcluster_overrides=typo)
        )
        assert response.status_code == 200
        assert "controlPlane.distro.k8s.enabld is not allowed" in response.content.decode()

        overrides = "sync:\n  fromHost:\n    nodes:\n      enabled: true\n"
        response = client.post(
            change_url(template), form_data(template, unsafe_vcluster_overrides=overrides)
        )
        assert response.status_code == 302
        template.refresh_from_db()
        assert template.unsafe_vcluster_overrides == overrides.strip()
        messages = LogEntry.objects.filter(user=root, object_id=str(template.pk)).values_list(
            "change_message", flat=True
        )
        assert f"Unsafe vCluster overrides set to:\n{overrides.strip()}" in messages

    def test_it_allows_a_warm_pool_without_personal_variables(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        values = "host: ${DEMO_HOST}\n"
        data = form_data(
            template, warm_pool_size="2", **{"charts-0-values": values, "charts-1-values": values}
        )
        response = admin_client.post(change_url(template), data)
        assert response.status_code == 302
        template.refresh_from_db()
        assert template.warm_pool_size == 2

    def test_it_rejects_a_new_chart_with_a_bad_repository_and_saves_no_template(
        self, admin_client: Client
    ) -> None:
        data = form_data(make_template("probe", charts=0), slug="fresh", name="Fresh")
        data |= {
            "charts-TOTAL_FORMS": 1,
            "charts-INITIAL_FORMS": 0,
            "charts-0-position": 0,
            "charts-0-repository": "ftp://example.com/charts",
            "charts-0-chart": "shop",
            "charts-0-version": "1.0.0",
            "charts-0-release_name": "shop",
            "charts-0-namespace": "shop",
            "charts-0-values": "",
        }
        response = admin_client.post(reverse("admin:demos_demotemplate_add"), data)
        assert response.status_code == 200
        assert "Chart repository “ftp://example.com/charts” must start with https://" in (
            response.content.decode()
        )
        assert not DemoTemplate.objects.filter(slug="fresh").exists()
        assert not TemplateChart.objects.filter(release_name="shop").exists()

    def test_it_rejects_two_charts_with_one_release_name(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        before = snapshot(template)
        response = admin_client.post(
            change_url(template), form_data(template, **{"charts-1-release_name": "app0"})
        )
        assert response.status_code == 200
        assert "Template chart with this Template and Release name already exists" in (
            response.content.decode()
        )
        assert snapshot(template) == before


class TestVersions:
    def test_it_increments_the_version_when_a_field_changed(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        response = admin_client.post(
            change_url(template), form_data(template, tagline="Now with payments")
        )
        assert response.status_code == 302
        template.refresh_from_db()
        assert (template.version, template.tagline) == (2, "Now with payments")
        entry = LogEntry.objects.get()
        assert entry.action_flag == CHANGE
        assert {"version": {"to": 2}} in json.loads(entry.change_message)
        assert entry.get_change_message() == "Changed Tagline.", "unedited charts are unchanged"

    def test_it_increments_the_version_when_only_a_chart_changed(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        response = admin_client.post(
            change_url(template), form_data(template, **{"charts-1-version": "1.1.0"})
        )
        assert response.status_code == 302
        template.refresh_from_db()
        assert template.version == 2
        assert template.charts.get(release_name="app1").version == "1.1.0"

    def test_it_increments_the_version_when_a_chart_is_removed(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        response = admin_client.post(
            change_url(template), form_data(template, **{"charts-1-DELETE": "on"})
        )
        assert response.status_code == 302
        template.refresh_from_db()
        assert (template.version, template.charts.count()) == (2, 1)

    def test_it_keeps_the_version_when_nothing_changed(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        # Browsers send textarea line breaks as CRLF: that alone is not a change.
        crlf = template.credentials.replace("\n", "\r\n")
        response = admin_client.post(change_url(template), form_data(template, credentials=crlf))
        assert response.status_code == 302
        template.refresh_from_db()
        assert template.version == 1
        assert template.credentials == "Username: admin\nPassword: demo"

    def test_it_never_touches_running_demos(
        self, admin_client: Client, template: DemoTemplate, alice: Any
    ) -> None:
        demo = make_demo(template, alice)
        spec = demo.spec
        admin_client.post(
            change_url(template),
            form_data(template, **{"charts-0-values": "host: ${DEMO_HOST}\nreplicas: 3\n"}),
        )
        demo.refresh_from_db()
        assert (demo.spec, demo.template_version) == (spec, 1)

    def test_it_shows_active_demos_per_version(
        self, admin_client: Client, template: DemoTemplate, alice: Any, bob: Any
    ) -> None:
        make_demo(template, alice)
        make_demo(template, bob)
        DemoTemplate.objects.filter(pk=template.pk).update(version=2)
        template.refresh_from_db()
        make_demo(template, alice)
        make_demo(template, bob, Status.DELETED)

        page = admin_client.get(change_url(template)).content.decode()
        assert "version 2 (current): 1 active demo; version 1: 2 active demos" in page
        listing = admin_client.get(reverse("admin:demos_demotemplate_changelist"))
        assert "3 (2 on older versions)" in listing.content.decode()


def run_action(client: Client, action: str, *templates: DemoTemplate) -> Any:
    return client.post(
        reverse("admin:demos_demotemplate_changelist"),
        {"action": action, "_selected_action": [t.pk for t in templates]},
    )


class TestActions:
    def test_it_duplicates_a_template_with_its_charts(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        DemoTemplate.objects.filter(pk=template.pk).update(version=4, warm_pool_size=2)
        response = run_action(admin_client, "duplicate", template)
        copy = DemoTemplate.objects.get(slug="webshop-copy")
        assert response.status_code == 302
        assert response["Location"] == change_url(copy)
        assert (copy.name, copy.enabled, copy.version, copy.warm_pool_size) == (
            "Webshop (copy)",
            False,
            1,
            0,
        )
        fields = ["position", "repository", "chart", "version", "release_name", "values"]
        assert list(copy.charts.values_list(*fields)) == list(template.charts.values_list(*fields))
        assert template.charts.count() == 2, "the original keeps its charts"
        entry = LogEntry.objects.get(object_id=str(copy.pk))
        assert "Duplicated from “Webshop” (version 4)" in entry.change_message

    def test_it_picks_a_free_slug_for_a_second_copy(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        run_action(admin_client, "duplicate", template)
        run_action(admin_client, "duplicate", template)
        assert set(DemoTemplate.objects.values_list("slug", flat=True)) == {
            "webshop",
            "webshop-copy",
            "webshop-copy-2",
        }

    def test_it_disables_and_enables_without_a_new_version(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        other = make_template("crm")
        run_action(admin_client, "disable", template, other)
        assert not DemoTemplate.objects.filter(enabled=True).exists()
        assert LogEntry.objects.count() == 2
        run_action(admin_client, "enable", template)
        template.refresh_from_db()
        assert (template.enabled, template.version) == (True, 1)
        assert LogEntry.objects.count() == 3

    def test_it_offers_the_actions_on_the_change_form(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        page = admin_client.get(change_url(template)).content.decode()
        assert "Duplicate (as a disabled copy)" in page
        assert "Disable (hide from the catalog)" in page
        assert reverse("admin:demos_demotemplate_preview", args=[template.pk]) in page


class TestPreview:
    def test_it_renders_the_full_vcluster_yaml_for_a_sample_demo(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        response = admin_client.get(reverse("admin:demos_demotemplate_preview", args=[template.pk]))
        assert response.status_code == 200
        page = response.content.decode()
        assert "vcluster.yaml" in page
        for expected in (
            "version: v1.35.0",
            "experimental:",
            "name: app0",
            "repo: oci://registry.example.com/charts",
            "greeting: Hello Example Corp",
            "demo-0sample00",
        ):
            assert expected in page, expected
        assert "cannot come from a warm pool" in page, "personal variables are pointed out"

    def test_it_says_whether_the_result_fits_the_schema(
        self, admin_client: Client, template: DemoTemplate, settings: Any
    ) -> None:
        settings.VCLUSTER_VALUES_SCHEMA = str(SCHEMA)
        url = reverse("admin:demos_demotemplate_preview", args=[template.pk])
        assert "Valid against the vCluster values schema" in admin_client.get(url).content.decode()
        # Saved before validation existed, or by a script: the preview still catches it.
        DemoTemplate.objects.filter(pk=template.pk).update(
            vcluster_overrides="controlPlane:\n  replicas: 3\n"
        )
        page = admin_client.get(url).content.decode()
        assert "controlPlane.replicas cannot be set by template admins" in page
        DemoTemplate.objects.filter(pk=template.pk).update(
            vcluster_overrides="", unsafe_vcluster_overrides="controlPlane:\n  replicas: 3\n"
        )
        page = admin_client.get(url).content.decode()
        assert "controlPlane.replicas is not allowed" in page

    def test_it_shows_a_template_error_instead_of_failing(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        DemoTemplate.objects.filter(pk=template.pk).update(instructions="Hi ${NOPE}")
        response = admin_client.get(reverse("admin:demos_demotemplate_preview", args=[template.pk]))
        assert response.status_code == 200
        assert "unknown variable ${NOPE}" in response.content.decode()

    def test_it_is_not_found_for_a_missing_template(self, admin_client: Client) -> None:
        url = reverse("admin:demos_demotemplate_preview", args=[999])
        assert admin_client.get(url).status_code == 404


class TestReadOnlyAdmins:
    def test_it_shows_a_demo_with_its_timeline_and_no_save_button(
        self, admin_client: Client, template: DemoTemplate, alice: Any
    ) -> None:
        demo = make_demo(template, alice)
        demo.events.create(kind="ready", message="Ready after 42 s.")
        response = admin_client.get(reverse("admin:demos_demo_change", args=[demo.pk]))
        page = response.content.decode()
        assert response.status_code == 200
        assert "Ready after 42 s." in page
        assert 'name="_save"' not in page
        assert (
            admin_client.post(reverse("admin:demos_demo_change", args=[demo.pk])).status_code == 403
        )

    def test_it_never_shows_a_full_token_hash(
        self, client: Client, template: DemoTemplate, alice: Any, django_user_model: Any
    ) -> None:
        root = django_user_model.objects.create_superuser("root", "root@example.com", "x")
        client.force_login(root)
        token_hash = "ab12cd34" + "f" * 56
        link = ShareLink.objects.create(
            demo=make_demo(template, alice), token_hash=token_hash, recipient="Pat"
        )
        for url in (
            reverse("admin:demos_sharelink_changelist"),
            reverse("admin:demos_sharelink_change", args=[link.pk]),
        ):
            page = client.get(url).content.decode()
            assert "ab12cd34…" in page
            assert token_hash not in page
            assert token_hash[:12] not in page

    def test_it_registers_nothing_for_simulated_clusters(self, admin_client: Client) -> None:
        from django.contrib import admin

        from demos.models import SimulatedCluster

        assert not admin.site.is_registered(SimulatedCluster)
        assert Demo in admin.site._registry
