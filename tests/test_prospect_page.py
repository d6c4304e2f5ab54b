"""A prospect page people trust: the portal's branding, the salesperson's card, the text meant
for prospects (never the sales notes), the ended page on every device, and the pictures behind
them (checked, re-encoded, served at addresses that change when they change)."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from demos import branding, images, profiles
from demos.engine import lifecycle
from demos.engine.lifecycle import Actor
from demos.models import Branding, Demo, DemoTemplate, Profile, Status
from demos.sharing import links
from demos.studio import documents, versions
from demos.studio.import_export import export_template, import_template
from tests.conftest import make_demo
from tests.test_prospect import end

pytestmark = pytest.mark.django_db

SALES_NOTES = "Good for showing checkout to retail prospects."
FOR_PROSPECTS = "Run your **whole shop** from one page.\n\n<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    cache.clear()
    yield
    cache.clear()


def picture(
    size: tuple[int, int] = (64, 64), kind: str = "PNG", colour: str = "#4f46e5", **save: Any
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=kind, **save)
    return out.getvalue()


def upload(data: bytes, name: str = "picture.png", content_type: str = "image/png") -> Any:
    return SimpleUploadedFile(name, data, content_type=content_type)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture
def superuser_client(admin_user: User) -> Client:
    """A superuser (tests/conftest.py's `admin_client` is a template admin, not one)."""
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def described(template: DemoTemplate) -> DemoTemplate:
    """The test template with sales notes and a text for prospects, published."""
    template.description, template.prospect_description = SALES_NOTES, FOR_PROSPECTS
    template.version += 1
    template.save()
    versions.record_row_as_version(
        template=template, actor=versions.Actor(label="tests"), note="Texts."
    )
    template.refresh_from_db()
    return template


@pytest.fixture
def owner(alice: User) -> User:
    alice.first_name, alice.last_name = "Alice", "Archer"
    alice.save()
    profiles.save_profile(
        user=alice,
        first_name="Alice",
        last_name="Archer",
        job_title="Account executive",
        phone="+44 20 7946 0958",
        booking_url="https://book.example.com/alice",
    )
    return alice


@pytest.fixture
def demo(described: DemoTemplate, owner: User) -> Demo:
    return make_demo(described, owner, prospect_company="Acme")


def share(demo: Demo, **kwargs: Any) -> links.NewLink:
    kwargs.setdefault("recipient", "pat@acme.example")
    return links.create_share_link(demo=demo, actor=Actor.of(demo.owner), **kwargs)


def landing(client: Client, token: str) -> Any:
    return client.get(reverse("prospect:landing", args=[token]))


def brand(**fields: Any) -> Branding:
    row = Branding.objects.create(**fields)
    branding.forget_branding()
    return row


class TestImages:
    def test_it_refuses_a_text_file_named_png_with_a_clear_message(self) -> None:
        with pytest.raises(ValidationError, match="not a picture the portal can use"):
            images.checked_logo(upload(b"just some text, honest\n" * 20, "logo.png"))

    def test_it_refuses_a_picture_cut_short(self) -> None:
        with pytest.raises(ValidationError, match="not a picture"):
            images.checked_photo(upload(picture((300, 300))[:200]))

    def test_it_refuses_formats_it_does_not_take(self) -> None:
        with pytest.raises(ValidationError, match="PNG, JPEG or WebP"):
            images.checked_logo(upload(picture(kind="GIF"), "logo.gif", "image/gif"))

    def test_it_refuses_a_file_over_the_limit(self) -> None:
        big = b"\x89PNG" + b"\0" * images.MAX_UPLOAD_BYTES
        with pytest.raises(ValidationError, match="the most the portal takes"):
            images.checked_logo(upload(big))

    def test_a_large_logo_is_scaled_to_256_pixels_high(self) -> None:
        logo = images.checked_logo(upload(picture((1200, 600), "JPEG"), "logo.jpg", "image/jpeg"))
        image = decoded(logo.data)
        assert (image.format, image.size) == ("PNG", (512, 256))
        assert logo.content_type == "image/png"

    def test_a_photo_is_cropped_square_and_scaled(self) -> None:
        photo = images.checked_photo(upload(picture((900, 600), "WEBP"), "me.webp", "image/webp"))
        assert decoded(photo.data).size == (256, 256)

    def test_metadata_such_as_a_location_is_dropped(self) -> None:
        exif = Image.Exif()
        exif[0x010E] = "Taken at 51.5007 N, 0.1246 W"  # ImageDescription
        original = picture((400, 300), "JPEG", exif=exif.tobytes())
        assert b"51.5007" in original
        photo = images.checked_photo(upload(original, "me.jpg", "image/jpeg"))
        assert b"51.5007" not in photo.data
        assert not decoded(photo.data).getexif()


class TestBranding:
    def test_without_a_row_the_defaults_apply(self) -> None:
        current = branding.current_branding()
        assert (current.name, current.accent_colour, current.logo_url) == (
            "Demo portal",
            "#4f46e5",
            None,
        )

    def test_a_warm_cache_costs_no_query(self, django_assert_num_queries: Any) -> None:
        brand(name="Acme Cloud")
        branding.current_branding()
        with django_assert_num_queries(0):
            assert branding.current_branding().name == "Acme Cloud"

    def test_the_admin_saves_it_and_pages_see_it_at_once(
        self, superuser_client: Client, client: Client, demo: Demo
    ) -> None:
        token = share(demo).token
        assert "Demo portal" in landing(client, token).text  # cached now
        response = superuser_client.post(
            reverse("admin:demos_branding_add"),
            {
                "name": "Acme Cloud",
                "accent_colour": "#0E7C3A",
                "website": "https://acme.example",
                "logo_upload": upload(picture((1000, 500))),
            },
        )
        assert response.status_code == 302, response.content
        row = Branding.objects.get()
        assert (row.accent_colour, row.logo_type) == ("#0e7c3a", "image/png")
        assert decoded(bytes(row.logo)).size == (512, 256)
        page = landing(Client(), token).text
        current = branding.current_branding()
        assert "Acme Cloud" in page
        assert f'src="{current.logo_url}"' in page
        assert f'href="{current.stylesheet_url}"' in page
        assert '<body class="branded"' in page

    def test_the_admin_refuses_a_fake_picture_and_a_bad_colour(
        self, superuser_client: Client
    ) -> None:
        response = superuser_client.post(
            reverse("admin:demos_branding_add"),
            {
                "name": "Acme",
                "accent_colour": "green",
                "logo_upload": upload(b"<svg onload=alert(1)>", "logo.png"),
            },
        )
        assert response.status_code == 200
        text = response.content.decode()
        assert "not a picture the portal can use" in text
        assert "is not a colour" in text
        assert not Branding.objects.exists()

    def test_only_superusers_edit_it(self, client: Client, template_admin: User) -> None:
        client.force_login(template_admin)
        assert client.get(reverse("admin:demos_branding_add")).status_code == 403

    def test_the_logo_is_served_for_a_year_at_an_address_that_changes(self, client: Client) -> None:
        row = brand(name="Acme", logo=picture(), logo_type="image/png")
        first = branding.current_branding().logo_url
        assert first is not None
        response = client.get(first)
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Cache-Control"] == branding.IMMUTABLE
        assert response.content == picture()

        with time_machine.travel(timezone.now() + timedelta(minutes=1)):
            row.save()
        branding.forget_branding()
        second = branding.current_branding().logo_url
        assert second != first
        stale = client.get(first)
        assert "immutable" not in stale["Cache-Control"]

    def test_the_colour_comes_as_a_stylesheet_with_readable_text_on_it(
        self, client: Client
    ) -> None:
        brand(accent_colour="#fde047")  # a light yellow: dark text on buttons
        response = client.get(branding.current_branding().stylesheet_url)
        assert response["Content-Type"].startswith("text/css")
        assert response["Cache-Control"] == branding.IMMUTABLE
        css = response.content.decode()
        assert "--primary: #fde047;" in css
        assert "--on-primary: #111111;" in css
        assert "--on-primary: #ffffff;" in branding.accent_rules("#1e3a8a")


class TestProfilePage:
    def test_it_saves_what_prospects_see_and_previews_the_card(
        self, client: Client, alice: User
    ) -> None:
        client.force_login(alice)
        response = client.post(
            reverse("demos:account"),
            {
                "section": "profile",
                "first_name": "Alice",
                "last_name": "Archer",
                "job_title": "Solutions engineer",
                "phone": "+1 (555) 010-9999",
                "booking_url": "https://book.example.com/alice",
            },
            follow=True,
        )
        alice.refresh_from_db()
        assert alice.get_full_name() == "Alice Archer"
        profile = Profile.objects.get(user=alice)
        assert (profile.job_title, profile.phone) == ("Solutions engineer", "+1 (555) 010-9999")
        page = response.content.decode()
        assert "What your prospects see" in page
        assert "Solutions engineer" in page
        assert 'href="tel:+15550109999"' in page
        assert 'href="https://book.example.com/alice"' in page
        assert ">AA<" in page  # initials while there is no photo

    def test_it_refuses_a_booking_link_that_is_not_a_web_address(
        self, client: Client, alice: User
    ) -> None:
        client.force_login(alice)
        response = client.post(
            reverse("demos:account"),
            {"section": "profile", "booking_url": "javascript:alert(1)", "phone": "call me"},
        )
        page = response.content.decode()
        assert "Enter a valid URL" in page or "web address" in page
        assert "Write a phone number" in page
        assert not Profile.objects.filter(user=alice).exclude(booking_url="").exists()

    def test_a_photo_is_served_at_a_signed_address_that_changes(
        self, client: Client, alice: User
    ) -> None:
        client.force_login(alice)
        client.post(
            reverse("demos:account"),
            {"section": "photo", "photo": upload(picture((600, 400)), "me.png")},
        )
        first = profiles.contact_card(User.objects.get(pk=alice.pk)).photo_url
        assert first is not None
        assert f"/{alice.pk}." in first  # the id, with its photo's version…
        assert ":" in first  # …and a signature for both
        anonymous = Client()
        served = anonymous.get(first)
        assert served.status_code == 200
        assert decoded(served.content).size == (256, 256)
        assert served["Cache-Control"] == branding.IMMUTABLE
        assert served["X-Content-Type-Options"] == "nosniff"
        # Another person's photo cannot be reached by changing the id.
        forged = first.replace(f"/{alice.pk}.", f"/{alice.pk + 1}.")
        assert anonymous.get(forged).status_code == 404

        with time_machine.travel(timezone.now() + timedelta(seconds=2)):
            client.post(
                reverse("demos:account"),
                {"section": "photo", "photo": upload(picture(colour="#ff0000"), "me.png")},
            )
        second = profiles.contact_card(User.objects.get(pk=alice.pk)).photo_url
        assert second != first
        assert anonymous.get(first).status_code == 404
        assert anonymous.get(second).status_code == 200

        client.post(reverse("demos:account"), {"section": "photo", "remove": "on"})
        assert profiles.contact_card(User.objects.get(pk=alice.pk)).photo_url is None
        assert anonymous.get(second).status_code == 404

    def test_a_text_file_as_a_photo_is_refused_on_the_page(
        self, client: Client, alice: User
    ) -> None:
        client.force_login(alice)
        response = client.post(
            reverse("demos:account"),
            {"section": "photo", "photo": upload(b"not an image at all", "me.png")},
        )
        assert response.status_code == 200
        assert "not a picture the portal can use" in response.content.decode()
        assert not Profile.objects.filter(user=alice).exclude(photo_type="").exists()

    def test_the_time_zone_is_still_saved_from_the_same_page(
        self, client: Client, alice: User
    ) -> None:
        client.force_login(alice)
        client.post(reverse("demos:account"), {"time_zone": "Europe/Paris"})
        assert Profile.objects.get(user=alice).time_zone == "Europe/Paris"


class TestLandingPage:
    def test_it_shows_the_owner_and_the_text_for_prospects_not_the_sales_notes(
        self, client: Client, demo: Demo
    ) -> None:
        page = landing(client, share(demo).token).text
        for expected in (
            "Alice Archer",
            "Account executive",
            'href="mailto:alice@example.com"',
            'href="tel:+442079460958"',
            'href="https://book.example.com/alice"',
            "Book a meeting",
            "<strong>whole shop</strong>",
        ):
            assert expected in page, expected
        assert SALES_NOTES not in page
        assert "<script>alert" not in page
        assert "A note from Sales" not in page

    def test_a_photo_or_else_initials(self, client: Client, demo: Demo, owner: User) -> None:
        token = share(demo).token
        assert 'class="contact-photo contact-photo--initials" aria-hidden="true">AA<' in (
            landing(client, token).text
        )
        profiles.set_photo(user=owner, image=images.checked_photo(upload(picture())))
        page = landing(client, token).text
        url = profiles.photo_url(Profile.objects.get(user=owner))
        assert f'<img class="contact-photo" src="{url}"' in page

    def test_more_time_is_offered_only_while_the_demo_runs(
        self, client: Client, demo: Demo
    ) -> None:
        assert "Need more time?" in landing(client, share(demo).token).text

    @pytest.mark.parametrize(
        ("status", "says"),
        [
            (Status.PAUSED, "This demo is kept for later"),
            (Status.ASLEEP, "Your demo is asleep"),
            (Status.PROVISIONING, "being prepared"),
        ],
    )
    def test_other_states_say_plainly_what_is_happening_and_whom_to_ask(
        self, client: Client, described: DemoTemplate, owner: User, status: Status, says: str
    ) -> None:
        token = share(make_demo(described, owner, status)).token
        page = landing(client, token).text
        assert says in page
        assert "Need more time?" not in page
        assert 'href="mailto:alice@example.com"' in page

    def test_the_status_poll_does_not_change_its_query_count(
        self, client: Client, demo: Demo, django_assert_num_queries: Any
    ) -> None:
        token = share(demo).token
        url = reverse("prospect:status", args=[token])
        client.get(url, HTTP_HX_REQUEST="true")
        with django_assert_num_queries(1):  # the link with its demo, owner and profile
            assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200


class TestEndedPage:
    """A link that existed says what happened, with the owner's card, in any browser."""

    def assert_friendly(self, response: Any, heading: str) -> str:
        assert response.status_code == 200
        page = response.text
        assert re.search(rf"<h1 id=\"panel-title\">{heading}</h1>", page), page
        assert "Alice Archer" in page
        assert 'href="mailto:alice@example.com"' in page
        assert "Book a meeting" in page
        assert "Acme" not in page  # nothing about the prospect
        return page

    def test_a_revoked_link_in_a_fresh_browser(self, client: Client, demo: Demo) -> None:
        new = share(demo)
        links.revoke_share_link(link=new.link, actor=Actor.of(demo.owner))
        page = self.assert_friendly(landing(Client(), new.token), "This demo was turned off")
        assert "turned off this link" in page

    def test_a_demo_that_ended(self, demo: Demo) -> None:
        token = share(demo).token
        end(demo)
        self.assert_friendly(landing(Client(), token), "This demo has ended")

    def test_a_demo_that_failed(self, described: DemoTemplate, owner: User) -> None:
        demo = make_demo(described, owner, Status.INSTALLING)
        token = share(demo).token
        lifecycle.fail_demo(demo, "Chart “app0” failed: image pull error.")
        self.assert_friendly(landing(Client(), token), "This demo was turned off")

    def test_a_link_past_its_own_end(self, demo: Demo) -> None:
        until = timezone.now() + timedelta(minutes=30)
        token = share(demo, expires_at=until).token
        with time_machine.travel(until + timedelta(minutes=1)):
            self.assert_friendly(landing(Client(), token), "This link has expired")

    def test_the_poll_stops_with_the_ended_panel(self, client: Client, demo: Demo) -> None:
        new = share(demo)
        links.revoke_share_link(link=new.link, actor=Actor.of(demo.owner))
        poll = client.get(reverse("prospect:status", args=[new.token]), HTTP_HX_REQUEST="true")
        assert poll.status_code == 286
        assert '<h2 id="panel-title">This demo was turned off</h2>' in poll.text

    def test_an_unknown_token_gets_the_neutral_page_and_counts_as_a_failure(
        self, client: Client, demo: Demo, settings: Any
    ) -> None:
        settings.PROSPECT_FAILURE_LIMIT = 2
        share(demo)
        for _ in range(2):
            response = landing(client, "x" * 43)
            assert response.status_code == 404
            assert "This link is not available" in response.text
            for leak in ("Alice", "alice@example.com", "Webshop", "Book a meeting"):
                assert leak not in response.text
        assert landing(client, "y" * 43).status_code == 429

    def test_ended_links_do_not_count_as_guesses(
        self, client: Client, demo: Demo, settings: Any
    ) -> None:
        settings.PROSPECT_FAILURE_LIMIT = 1
        new = share(demo)
        links.revoke_share_link(link=new.link, actor=Actor.of(demo.owner))
        for _ in range(3):
            assert landing(client, new.token).status_code == 200


class TestTextForProspectsInTheStudio:
    def test_it_round_trips_through_export_and_import(self, described: DemoTemplate) -> None:
        text = export_template(described)
        assert "prospect_description: |-\n  Run your **whole shop** from one page." in text
        changed = text.replace("Run your **whole shop**", "Run **every shop**")
        result = import_template(changed, actor=versions.Actor(label="tests"), publish=True)
        assert not result.problems, result.problems
        described.refresh_from_db()
        assert described.prospect_description.startswith("Run **every shop**")
        assert described.description == SALES_NOTES
        assert export_template(described) == changed

    def test_a_published_version_freezes_it(
        self, described: DemoTemplate, template_admin: User
    ) -> None:
        actor = versions.Actor(template_admin)
        published = versions.published_content(described)
        assert published is not None
        document = {**versions.working_content(described), "prospect_description": "Newer words."}
        versions.save_draft(template=described, document=document, actor=actor)
        described.refresh_from_db()
        assert described.prospect_description == FOR_PROSPECTS.strip()  # a draft, not yet live
        versions.publish_draft(template=described, actor=actor)
        described.refresh_from_db()
        assert described.prospect_description == "Newer words."
        old = described.versions.get(number=published_version_number(described) - 1)
        assert documents.with_defaults(old.content)["prospect_description"] != "Newer words."

    def test_documents_written_before_it_existed_read_as_empty(self) -> None:
        document = {"format": documents.FORMAT, "slug": "old"}
        assert documents.with_defaults(document)["prospect_description"] == ""

    def test_the_studio_editor_offers_it_next_to_the_prospect_facing_text(
        self, client: Client, template_admin: User, described: DemoTemplate
    ) -> None:
        client.force_login(template_admin)
        page = client.get(reverse("demos:studio_edit", args=[described.slug])).content.decode()
        assert 'name="prospect_description"' in page
        assert "Description for prospects" in page
        assert "Sales notes" in page


def published_version_number(template: DemoTemplate) -> int:
    template.refresh_from_db()
    assert template.published_version is not None
    return template.published_version.number
