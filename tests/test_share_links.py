"""Share links a salesperson can use: copied again later, emailed to the prospect, clear times."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from demos.engine.lifecycle import Actor
from demos.errors import LifecycleError
from demos.models import Demo, DemoEvent, ShareLink
from demos.sharing import links
from demos.sharing.forms import ShareLinkForm
from tests.conftest import make_demo


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def demo(template: Any, alice: Any) -> Demo:
    return make_demo(template, alice, prospect_company="Acme")


def share(demo: Demo, **kwargs: Any) -> links.NewLink:
    kwargs.setdefault("recipient", "Pat Lee <pat@acme.example>")
    return links.create_share_link(demo=demo, actor=Actor.of(demo.owner), **kwargs)


def legacy_link(demo: Demo) -> ShareLink:
    """A link as made before tokens were derived: a random token, no salt."""
    token = secrets.token_urlsafe(32)
    return ShareLink.objects.create(demo=demo, token_hash=links.hash_token(token), recipient="Kim")


def link_page(demo: Demo, link: ShareLink) -> str:
    return reverse("demos:share_link", args=[demo.public_id, link.pk])


def email_url(demo: Demo, link: ShareLink) -> str:
    return reverse("demos:email_link", args=[demo.public_id, link.pk])


class TestDerivedTokens:
    def test_it_rebuilds_the_token_it_made(self, demo: Demo) -> None:
        new = share(demo)
        stored = ShareLink.objects.get()
        assert links.token_of(stored) == new.token
        assert links.url_of(stored) == new.url
        assert len(new.token) == 43  # 256 bits, URL-safe base64 without padding
        assert links.resolve(new.token) == stored

    def test_each_link_gets_its_own_salt_and_token(self, demo: Demo) -> None:
        first, second = share(demo), share(demo)
        assert first.link.token_salt != second.link.token_salt
        assert first.token != second.token
        assert first.link.token_hash != second.link.token_hash

    def test_only_the_hash_reaches_the_database(self, demo: Demo, caplog: Any) -> None:
        caplog.set_level(logging.DEBUG)
        new = share(demo)
        stored = ShareLink.objects.values().get()
        assert stored["token_hash"] == links.hash_token(new.token)
        assert new.token not in str(stored)
        assert new.token not in str(list(DemoEvent.objects.values()))
        assert new.token not in caplog.text

    def test_the_database_alone_cannot_rebuild_it(self, demo: Demo) -> None:
        new = share(demo)
        with override_settings(SECRET_KEY="a-different-portal-key-" + "x" * 40):
            assert links.token_of(ShareLink.objects.get()) is None
        assert links.token_of(ShareLink.objects.get()) == new.token

    def test_after_the_key_changes_the_link_still_works_but_cannot_be_copied(
        self, client: Client, demo: Demo
    ) -> None:
        new = share(demo)
        with override_settings(SECRET_KEY="a-rotated-portal-key-" + "y" * 40):
            assert links.resolve(new.token) is not None  # the prospect keeps their way in
            client.force_login(demo.owner)
            panel = client.get(reverse("demos:share_panel", args=[demo.public_id])).text
            assert "Shown only when it was made" in panel
            assert f'hx-get="{link_page(demo, new.link)}"' not in panel
            shown = client.get(link_page(demo, new.link), headers={"HX-Request": "true"}).text
            assert new.token not in shown
            assert "Shown only when it was made" in shown

    def test_links_from_before_cannot_be_rebuilt(self, client: Client, demo: Demo) -> None:
        link = legacy_link(demo)
        assert links.token_of(link) is None
        client.force_login(demo.owner)
        panel = client.get(reverse("demos:share_panel", args=[demo.public_id])).text
        assert "Shown only when it was made: make a new link to share again." in panel
        assert "Copy link" not in panel


class TestCopyAgain:
    def test_the_owner_copies_an_active_link_from_its_row(self, client: Client, demo: Demo) -> None:
        new = share(demo)
        client.force_login(demo.owner)
        panel = client.get(reverse("demos:share_panel", args=[demo.public_id])).text
        # The row offers the link; the token itself is sent only when asked for.
        assert "Copy link" in panel
        assert new.token not in panel
        shown = client.get(link_page(demo, new.link), headers={"HX-Request": "true"})
        assert shown.status_code == 200
        assert shown.headers["Cache-Control"].startswith("max-age=0")
        assert new.url in shown.text
        assert 'data-copy="link-dialog-url"' in shown.text
        assert "<dialog" in shown.text

    def test_a_manager_copies_it_too(self, client: Client, demo: Demo, manager: Any) -> None:
        new = share(demo)
        client.force_login(manager)
        response = client.get(link_page(demo, new.link), headers={"HX-Request": "true"})
        assert response.status_code == 200
        assert new.url in response.text

    def test_others_cannot_see_it(
        self, client: Client, demo: Demo, bob: Any, template_admin: Any
    ) -> None:
        new = share(demo)
        client.force_login(bob)
        assert client.get(link_page(demo, new.link)).status_code == 404
        client.force_login(template_admin)
        response = client.get(link_page(demo, new.link))
        assert response.status_code == 403
        assert new.token not in response.text
        panel = client.get(reverse("demos:share_panel", args=[demo.public_id])).text
        assert "Copy link" not in panel
        assert new.token not in panel

    def test_a_link_of_another_demo_is_not_found(
        self, client: Client, demo: Demo, template: Any, alice: Any
    ) -> None:
        other = share(make_demo(template, alice))
        client.force_login(demo.owner)
        assert client.get(link_page(demo, other.link)).status_code == 404

    def test_a_revoked_link_is_not_offered_or_shown(self, client: Client, demo: Demo) -> None:
        new = share(demo)
        links.revoke_share_link(link=new.link, actor=Actor.of(demo.owner))
        client.force_login(demo.owner)
        panel = client.get(reverse("demos:share_panel", args=[demo.public_id])).text
        assert "Copy link" not in panel
        shown = client.get(link_page(demo, new.link)).text
        assert new.token not in shown
        assert "This link no longer works" in shown

    def test_without_javascript_a_new_link_is_shown_on_the_demo_page(
        self, client: Client, demo: Demo
    ) -> None:
        client.force_login(demo.owner)
        response = client.post(
            reverse("demos:create_link", args=[demo.public_id]),
            {"recipient": "pat@acme.example", "ends": "follow"},
        )
        link = ShareLink.objects.get()
        # No token in the address bar or in a stored message: only the link's id.
        assert response["Location"] == f"{link_page(demo, link)}?new=1#link-dialog"
        page = client.get(response["Location"])
        assert "demos/detail.html" in [template.name for template in page.templates]
        assert "The link for pat@acme.example is ready" in page.text
        assert links.url_of(link) in page.text
        assert "Email to prospect" in page.text


class TestEmailToProspect:
    def test_it_sends_the_link_in_the_owners_name(self, client: Client, demo: Demo) -> None:
        demo.owner.first_name, demo.owner.last_name = "Sam", "Seller"
        demo.owner.save()
        new = share(demo, note="See you Tuesday!")
        client.force_login(demo.owner)
        response = client.post(email_url(demo, new.link), headers={"HX-Request": "true"})
        assert response.status_code == 200
        assert "Sent to pat@acme.example" in response.text
        [message] = mail.outbox
        portal_name, portal_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
        assert parseaddr(message.from_email) == (f"Sam Seller via {portal_name}", portal_address)
        assert message.to == ["pat@acme.example"]
        assert message.reply_to == [demo.owner.email]
        assert new.url in message.body
        assert "See you Tuesday!" in message.body
        assert f"now until {links.utc_text(demo.expires_at)}" in message.body
        event = demo.events.get(kind="share-link-emailed")
        assert event.actor == demo.owner
        assert event.data == {"link": new.link.pk}

    def test_a_fixed_end_is_in_the_email(self, client: Client, demo: Demo) -> None:
        end = timezone.now() + timedelta(minutes=30)
        new = share(demo, expires_at=end)
        client.force_login(demo.owner)
        client.post(email_url(demo, new.link))
        assert f"works until {links.utc_text(end)}." in mail.outbox[0].body

    def test_a_manager_sends_it_from_the_owner(
        self, client: Client, demo: Demo, manager: Any
    ) -> None:
        new = share(demo)
        client.force_login(manager)
        response = client.post(email_url(demo, new.link))
        assert response["Location"] == f"{link_page(demo, new.link)}#link-dialog"
        assert mail.outbox[0].reply_to == [demo.owner.email]

    def test_at_most_three_emails_per_link_an_hour(self, client: Client, demo: Demo) -> None:
        new, other = share(demo), share(demo)
        client.force_login(demo.owner)
        for _ in range(links.EMAILS_PER_LINK):
            client.post(email_url(demo, new.link), headers={"HX-Request": "true"})
        refused = client.post(email_url(demo, new.link), headers={"HX-Request": "true"})
        assert "emailed 3 times in the last hour" in refused.text
        assert len(mail.outbox) == 3
        assert demo.events.filter(kind="share-link-emailed").count() == 3
        # The allowance is per link.
        client.post(email_url(demo, other.link), headers={"HX-Request": "true"})
        assert len(mail.outbox) == 4

    def test_a_recipient_without_an_address_gets_no_email(self, client: Client, demo: Demo) -> None:
        new = share(demo, recipient="Pat from Acme")
        client.force_login(demo.owner)
        shown = client.get(link_page(demo, new.link), headers={"HX-Request": "true"}).text
        assert "Email to prospect</button>" not in shown
        response = client.post(email_url(demo, new.link), headers={"HX-Request": "true"})
        assert "holds no email address" in response.text
        assert mail.outbox == []

    def test_a_revoked_link_is_not_sent(self, client: Client, demo: Demo) -> None:
        new = share(demo)
        links.revoke_share_link(link=new.link, actor=Actor.of(demo.owner))
        with pytest.raises(LifecycleError, match="no longer works"):
            links.email_share_link(link=new.link, actor=Actor.of(demo.owner))
        assert mail.outbox == []

    def test_only_who_may_act_can_send(
        self, client: Client, demo: Demo, bob: Any, template_admin: Any
    ) -> None:
        new = share(demo)
        client.force_login(bob)
        assert client.post(email_url(demo, new.link)).status_code == 404
        client.force_login(template_admin)
        assert client.post(email_url(demo, new.link)).status_code == 403
        assert mail.outbox == []

    def test_it_needs_the_csrf_token(self, demo: Demo) -> None:
        new = share(demo)
        client = Client(enforce_csrf_checks=True)
        client.force_login(demo.owner)
        assert client.post(email_url(demo, new.link)).status_code == 403
        assert mail.outbox == []

    @pytest.mark.parametrize(
        ("recipient", "address"),
        [
            ("pat@acme.example", "pat@acme.example"),
            ("Pat Lee <pat@acme.example>", "pat@acme.example"),
            ("Pat Lee, pat.lee@acme.example (CTO)", "pat.lee@acme.example"),
            ("Pat at Acme", None),
            ("pat@", None),
        ],
    )
    def test_it_finds_the_address_in_for(
        self, demo: Demo, recipient: str, address: str | None
    ) -> None:
        assert links.prospect_email(ShareLink(demo=demo, recipient=recipient)) == address


class TestTimeFields:
    def form(self, **data: str) -> ShareLinkForm:
        return ShareLinkForm({"recipient": "Pat", **data})

    def test_a_link_that_follows_the_demo_needs_no_time(self) -> None:
        form = self.form(ends="follow")
        assert form.is_valid(), form.errors
        assert form.chosen_expiry() is None

    def test_a_time_sent_with_follow_is_ignored(self) -> None:
        form = self.form(ends="follow", expires_at="2030-01-01T10:00")
        assert form.is_valid(), form.errors
        assert form.chosen_expiry() is None

    def test_a_set_time_needs_the_time(self) -> None:
        form = self.form(ends="fixed")
        assert not form.is_valid()
        assert "Choose when the link stops working" in str(form.errors["expires_at"])

    def test_the_form_names_both_choices_and_when_the_time_is_needed(
        self, client: Client, demo: Demo
    ) -> None:
        client.force_login(demo.owner)
        panel = client.get(reverse("demos:share_panel", args=[demo.public_id])).text
        assert "<legend>Ends</legend>" in panel
        assert "When the demo ends" in panel
        assert "At a set time" in panel
        assert "Needed for “At a set time”" in panel
        time_label = panel.split('for="id_expires_at"', 1)[1].split("</label>", 1)[0]
        assert "optional" not in time_label

    def test_the_refusal_says_when_the_demo_ends(self, client: Client, demo: Demo) -> None:
        with pytest.raises(LifecycleError) as refused:
            share(demo, expires_at=demo.expires_at + timedelta(minutes=1))
        assert "cannot outlive its demo" in str(refused.value)
        assert links.utc_text(demo.expires_at) in str(refused.value)
        client.force_login(demo.owner)
        late = (demo.expires_at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        response = client.post(
            reverse("demos:create_link", args=[demo.public_id]),
            {"recipient": "Pat", "ends": "fixed", "expires_at": late},
            headers={"HX-Request": "true"},
        )
        assert "cannot outlive its demo" in response.text
        assert links.utc_text(demo.expires_at) in response.text
        assert not ShareLink.objects.exists()

    def test_utc_text_reads_plainly(self) -> None:
        moment = datetime(2030, 3, 4, 9, 5, tzinfo=UTC)
        assert links.utc_text(moment) == "4 Mar, 09:05 UTC"
