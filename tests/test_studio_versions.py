"""Drafts and versions: what the catalog offers, what demos start from, publishing, roll back."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from demos.engine import lifecycle
from demos.models import Demo, DemoTemplate, Status, TemplateDraft, TemplateVersion
from demos.studio import documents, versions
from demos.studio.diff import diff_documents
from demos.studio.versions import Actor, PublishError
from tests.conftest import make_demo, make_template


def edited(template: DemoTemplate, **changes: Any) -> dict[str, Any]:
    """The template's current document with `changes` (charts by index: chart0_values=...)."""
    document = versions.working_content(template)
    document = {**document, "charts": [dict(chart) for chart in document["charts"]]}
    for key, value in changes.items():
        if key.startswith("chart") and "_" in key:
            index, field = key.removeprefix("chart").split("_", 1)
            document["charts"][int(index)][field] = value
        else:
            document[key] = value
    return document


def new_draft(user: User, slug: str = "crm", **changes: Any) -> DemoTemplate:
    document = {
        **versions.default_content(),
        "slug": slug,
        "name": slug.upper(),
        "charts": [
            {
                "release_name": "crm",
                "chart": "crm",
                "repository": "oci://registry.example.com/charts",
                "version": "2.0.0",
                "namespace": "crm",
                "values": "host: ${DEMO_HOST}",
            }
        ],
        **changes,
    }
    return versions.create_template(document=document, actor=Actor(user))


def catalog_slugs(client: Client) -> list[str]:
    response = client.get(reverse("demos:catalog"))
    return [card.template.slug for card in response.context["cards"]]


class TestDrafts:
    def test_it_keeps_a_never_published_template_out_of_the_catalog(
        self, client: Client, alice: User, template_admin: User
    ) -> None:
        draft = new_draft(template_admin)
        client.force_login(alice)

        assert catalog_slugs(client) == []
        assert client.get(reverse("demos:start", args=[draft.slug])).status_code == 404
        assert draft.warm_pool_size == 0, "the row holds no draft content, so no spares start"

    def test_it_offers_the_template_once_published(
        self, client: Client, alice: User, template_admin: User
    ) -> None:
        draft = new_draft(template_admin, tagline="Customers and deals")

        version = versions.publish_draft(template=draft, actor=Actor(template_admin))

        draft.refresh_from_db()
        assert (version.number, draft.version, draft.published_version) == (1, 1, version)
        assert draft.tagline == "Customers and deals"
        assert list(draft.charts.values_list("release_name", flat=True)) == ["crm"]
        assert not TemplateDraft.objects.filter(template=draft).exists()
        client.force_login(alice)
        assert catalog_slugs(client) == ["crm"]

    def test_an_edit_of_a_published_template_waits_for_publication(
        self, client: Client, alice: User, template_admin: User, template: DemoTemplate
    ) -> None:
        versions.save_draft(
            template=template,
            document=edited(template, name="Webshop 2", chart0_values="host: changed"),
            actor=Actor(template_admin),
        )

        template.refresh_from_db()
        assert (template.name, template.version) == ("Webshop", 1)
        client.force_login(alice)
        assert catalog_slugs(client) == ["webshop"]
        demo = make_demo(template, alice)
        assert demo.spec["template"] == {"slug": "webshop", "name": "Webshop", "version": 1}
        assert "changed" not in demo.spec["charts"][0]["values"]
        assert demo.from_version == template.published_version

    def test_publishing_an_edit_never_changes_a_running_demo(
        self, alice: User, template_admin: User, template: DemoTemplate
    ) -> None:
        demo = make_demo(template, alice)
        spec = demo.spec
        versions.save_draft(
            template=template,
            document=edited(template, chart0_values="host: ${DEMO_HOST}\nreplicas: 3"),
            actor=Actor(template_admin),
        )

        versions.publish_draft(template=template, actor=Actor(template_admin))

        demo.refresh_from_db()
        assert (demo.spec, demo.template_version, demo.from_version.number) == (spec, 1, 1)
        newer = make_demo(template, alice)
        assert "replicas: 3" in newer.spec["charts"][0]["values"]
        assert (newer.template_version, newer.from_version.number) == (2, 2)

    def test_it_refuses_to_publish_a_draft_the_same_as_the_published_version(
        self, template_admin: User, template: DemoTemplate
    ) -> None:
        versions.save_draft(
            template=template, document=edited(template), actor=Actor(template_admin)
        )
        with pytest.raises(PublishError, match="same as version 1"):
            versions.publish_draft(template=template, actor=Actor(template_admin))
        assert template.versions.count() == 1

    def test_it_validates_the_draft_again_when_publishing(
        self, settings: Any, template_admin: User, template: DemoTemplate
    ) -> None:
        versions.save_draft(
            template=template, document=edited(template, name="Shop"), actor=Actor(template_admin)
        )
        settings.DEMO_CHART_REPOSITORIES = ["oci://charts.internal.example.com/"]

        with pytest.raises(PublishError) as refused:
            versions.publish_draft(template=template, actor=Actor(template_admin))

        assert any("is not one this portal installs from" in p for p in refused.value.problems)
        template.refresh_from_db()
        assert (template.name, template.version) == ("Webshop", 1)

    def test_every_change_is_recorded_with_who(
        self, template_admin: User, template: DemoTemplate
    ) -> None:
        versions.save_draft(
            template=template, document=edited(template, name="Shop"), actor=Actor(template_admin)
        )
        versions.publish_draft(template=template, actor=Actor(template_admin))

        messages = list(
            LogEntry.objects.filter(object_id=str(template.pk), user=template_admin)
            .order_by("pk")
            .values_list("change_message", flat=True)
        )
        assert messages == ["Saved a draft in the template studio.", "Published version 2."]
        version = template.versions.get(number=2)
        assert (version.published_by, version.published_at is not None) == (template_admin, True)


class TestVersions:
    def test_a_published_version_never_changes(self, template: DemoTemplate) -> None:
        version = template.versions.get()
        version.note = "rewritten"
        with pytest.raises(ValueError, match="never changes"):
            version.save()

    def test_it_rolls_back_by_publishing_an_older_version_again(
        self, alice: User, template_admin: User, template: DemoTemplate
    ) -> None:
        actor = Actor(template_admin)
        versions.save_draft(template=template, document=edited(template, name="Shop"), actor=actor)
        versions.publish_draft(template=template, actor=actor)
        running = make_demo(template, alice)

        rolled = versions.roll_back(template=template, number=1, actor=actor)

        template.refresh_from_db()
        assert (rolled.number, template.version, template.name) == (3, 3, "Webshop")
        assert rolled.content == template.versions.get(number=1).content
        assert rolled.note == "Rolled back to version 1."
        running.refresh_from_db()
        assert running.spec["template"]["name"] == "Shop", "a running demo keeps its spec"

    def test_it_refuses_to_roll_back_to_the_published_version(
        self, template_admin: User, template: DemoTemplate
    ) -> None:
        with pytest.raises(PublishError, match="published version already"):
            versions.roll_back(template=template, number=1, actor=Actor(template_admin))

    def test_it_diffs_two_versions_as_yaml_lines(self, template: DemoTemplate) -> None:
        old = documents.content_of_template(template)
        new = {**old, "tagline": "A shop", "max_extensions": 5}

        lines = diff_documents(old, new)

        changed = [(line.kind, line.text) for line in lines if line.kind in ("added", "removed")]
        assert changed == [
            ("removed", "tagline: A shop with a database"),
            ("added", "tagline: A shop"),
            ("removed", "max_extensions: 3"),
            ("added", "max_extensions: 5"),
        ]
        assert diff_documents(old, old) == []

    def test_publishing_retires_warm_pool_spares_of_the_older_version(
        self, alice: User, template_admin: User
    ) -> None:
        pooled = make_template("pooled", charts=1, warm_pool_size=1)
        spare = make_demo(pooled, None, is_spare=True)
        versions.save_draft(
            template=pooled,
            # Without a personal variable, as the warm pool requires.
            document=edited(pooled, name="Pooled 2", chart0_values="host: ${DEMO_HOST}"),
            actor=Actor(template_admin),
        )

        versions.publish_draft(template=pooled, actor=Actor(template_admin))

        spare.refresh_from_db()
        assert spare.status == Status.DELETING
        claimed = make_demo(pooled, alice)
        assert (claimed.pk != spare.pk, claimed.template_version) == (True, 2)


class TestTestLaunches:
    def test_a_test_launch_runs_the_draft_and_only_template_admins_see_it(
        self, client: Client, alice: User, manager: User, template_admin: User, rq_redis: Any
    ) -> None:
        from demos.studio.launches import start_test_launch

        draft = new_draft(template_admin, charts=[])
        versions.save_draft(
            template=draft, document=edited(draft, name="CRM draft"), actor=Actor(template_admin)
        )

        demo = start_test_launch(template=draft, actor=Actor(template_admin))

        assert (demo.is_test_launch, demo.from_version, demo.owner) == (True, None, template_admin)
        assert demo.spec["template"]["name"] == "CRM draft"
        assert demo.spec["charts"] == []
        assert not Demo.objects.visible().filter(pk=demo.pk).exists()
        client.force_login(manager)
        assert demo.cluster_name not in client.get(reverse("demos:my_demos")).text
        assert demo.cluster_name not in client.get(reverse("demos:fleet")).text
        client.force_login(template_admin)
        assert demo.cluster_name not in client.get(reverse("demos:my_demos")).text
        assert demo.cluster_name not in client.get(reverse("demos:catalog")).text

    def test_a_test_launch_takes_no_warm_pool_spare(
        self, template_admin: User, rq_redis: Any
    ) -> None:
        from demos.studio.launches import start_test_launch

        pooled = make_template("pooled", charts=1, warm_pool_size=1)
        spare = make_demo(pooled, None, is_spare=True)

        demo = start_test_launch(template=pooled, actor=Actor(template_admin))

        assert demo.pk != spare.pk
        spare.refresh_from_db()
        assert spare.is_spare


def test_the_upgrade_recorded_each_existing_template_as_published(
    template: DemoTemplate,
) -> None:
    """make_template publishes as the migration does for templates that existed before."""
    version = TemplateVersion.objects.get(template=template)
    assert (version.number, template.published_version_id) == (1, version.pk)
    assert version.content == documents.content_of_template(template)


def test_lifecycle_refuses_nothing_new_for_published_templates(
    alice: User, template: DemoTemplate
) -> None:
    demo = lifecycle.start_demo(template=template, owner=alice)
    assert demo.from_version_id == template.published_version_id


class TestOtherWaysIn:
    def test_a_save_in_the_django_admin_is_recorded_as_a_version(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        from tests.conftest import change_url, form_data

        admin_client.post(change_url(template), form_data(template, tagline="Edited in the admin"))

        template.refresh_from_db()
        version = template.published_version
        assert (template.version, version.number) == (2, 2)
        assert version.content["tagline"] == "Edited in the admin"
        assert version.note == "Saved in the Django admin."

    def test_the_upgrade_publishes_what_each_template_holds(self, db: None) -> None:
        import importlib

        from django.apps import apps

        migration = importlib.import_module("demos.migrations.0005_template_studio")
        old = DemoTemplate.objects.create(slug="legacy", name="Legacy", version=4)
        current = Demo.objects.create(template=old, template_version=4, cluster_name="demo-a")
        older = Demo.objects.create(template=old, template_version=3, cluster_name="demo-b")

        migration.publish_existing(apps, None)

        old.refresh_from_db()
        version = old.published_version
        # The upgrade wrote the settings of its time; later ones read as their defaults.
        content = documents.with_defaults(version.content)
        assert (version.number, content) == (4, documents.content_of_template(old))
        current.refresh_from_db()
        older.refresh_from_db()
        assert (current.from_version, older.from_version) == (version, None)
