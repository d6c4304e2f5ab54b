"""The gate in front of demos' live apps: passes, its Redis state, the check and the way in.

Requests go through Django's test client with the Host and forwarding headers an ingress sends;
tests/test_gate_nginx.py puts a real nginx in front for the same rules.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from demos import roles
from demos.engine.lifecycle import Actor
from demos.gate import activity, entry, passes, state
from demos.gate.passes import LINK, MEMBER, InvalidPass, Pass
from demos.gate.state import Decision
from demos.models import Demo, DemoEvent, ShareLink
from demos.sharing import links
from portal.redis_connection import shared
from tests.conftest import finish_delete, make_demo

HOST_SUFFIX = ".demos.localhost"


@pytest.fixture
def demo(template: Any, alice: Any) -> Demo:
    return make_demo(template, alice, prospect_company="Acme")


def share(demo: Demo, **kwargs: Any) -> links.NewLink:
    kwargs.setdefault("recipient", "pat@acme.example")
    return links.create_share_link(demo=demo, actor=Actor.of(demo.owner), **kwargs)


def host_of(demo: Demo) -> str:
    return demo.cluster_name + HOST_SUFFIX


def cookie_for(grant: Pass) -> dict[str, str]:
    return {passes.cookie_name(): passes.seal_cookie(grant)}


def ask(client: Client, demo: Demo, cookies: dict[str, str] | None = None, **headers: str) -> Any:
    """The check as ingress-nginx makes it: the original URL in X-Original-URL."""
    client.cookies.clear()
    for name, value in (cookies or {}).items():
        client.cookies[name] = value
    return client.get(
        reverse("gate:check"),
        HTTP_X_ORIGINAL_URL=f"https://{host_of(demo)}/shop?x=1",
        **headers,
    )


# --- Passes -------------------------------------------------------------------------------------


def test_a_cookie_opens_only_as_signed_and_until_its_end() -> None:
    grant = Pass("c-one", 7, LINK, 3, int(time.time()) + 60)
    sealed = passes.seal_cookie(grant)
    assert passes.open_cookie(sealed) == grant
    with pytest.raises(InvalidPass):
        passes.open_cookie(sealed.replace("c-one", "c-two"))
    with pytest.raises(InvalidPass):
        passes.open_cookie(sealed, now=grant.expires + 1)
    with pytest.raises(InvalidPass):
        passes.open_cookie("")


def test_a_ticket_works_once_and_only_for_a_minute() -> None:
    grant = Pass("c-one", 7, MEMBER, 4, int(time.time()) + 60)
    ticket = passes.issue_ticket(grant)
    assert passes.redeem_ticket(ticket) == grant
    with pytest.raises(InvalidPass, match="used"):
        passes.redeem_ticket(ticket)
    late = passes.issue_ticket(grant)
    with time_machine.travel(time.time() + 61), pytest.raises(InvalidPass, match="expired"):
        passes.redeem_ticket(late)
    with pytest.raises(InvalidPass, match="forged"):
        passes.redeem_ticket(late.replace("c-one", "c-two"))


# --- The rule -----------------------------------------------------------------------------------


CASES = [
    # (demo entry, link entry or None for a member, expected)
    ("open:0", "open:0:c-one", Decision.ALLOW),
    ("open:0", None, Decision.ALLOW),
    ("open:100", "open:0:c-one", Decision.DENY),  # the demo's time is up
    ("open:0", "open:100", Decision.DENY),  # malformed: no cluster
    ("open:0", "open:100:c-one", Decision.DENY),  # the link's end passed
    ("open:0", "open:9999999999:c-two", Decision.DENY),  # another demo's link
    ("open:0", "closed", Decision.DENY),  # revoked
    ("closed", "open:0:c-one", Decision.DENY),
    ("closed", None, Decision.DENY),
    ("asleep", "open:0:c-one", Decision.ASLEEP),
    ("asleep", "closed", Decision.DENY),
    ("open:9999999999", None, Decision.ALLOW),
]


@pytest.mark.parametrize(("demo_entry", "link_entry", "expected"), CASES)
def test_the_entries_decide_and_only_allowed_requests_count(
    demo_entry: str, link_entry: str | None, expected: Decision
) -> None:
    now = 1000.0
    kind = LINK if link_entry is not None else MEMBER
    grant = Pass("c-one", 41, kind, 5, int(now) + 60)
    redis = shared()
    redis.set(state.demo_key("c-one"), demo_entry)
    if link_entry is not None:
        redis.set(state.link_key(5), link_entry)
    else:  # a team member who may still see the demo (tests/test_team_work.py: one who may not)
        redis.set(state.member_key("c-one", 5), "open")
    assert state.check(grant, counts=True, now=now) is expected
    counted = redis.hget(activity.minute_key(int(now // 60)), activity.field(41, kind, 5))
    assert (counted is not None) == (expected is Decision.ALLOW)


# --- The check ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_prospect_pass_is_allowed_without_a_database_query(
    client: Client, demo: Demo, django_assert_num_queries: Any
) -> None:
    link = share(demo).link
    grant = entry.link_pass(link)
    state.publish_demo(demo)
    state.publish_link(link)
    with django_assert_num_queries(0):
        response = ask(client, demo, cookie_for(grant))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_missing_state_is_read_from_the_database_once(
    client: Client, demo: Demo, django_assert_num_queries: Any
) -> None:
    grant = entry.link_pass(share(demo).link)
    with django_assert_num_queries(2):  # the demo and the link, then kept in Redis
        assert ask(client, demo, cookie_for(grant)).status_code == 200
    with django_assert_num_queries(0):
        assert ask(client, demo, cookie_for(grant)).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["leaves the managers", "is deactivated"])
def test_a_manager_who_loses_the_role_is_refused_at_the_next_request(
    client: Client, demo: Demo, manager: Any, change: str
) -> None:
    grant = entry.member_pass(demo, manager.pk)
    assert ask(client, demo, cookie_for(grant)).status_code == 200  # the entry is filled: open
    assert shared().get(state.member_key(demo.cluster_name, manager.pk)) == b"open"
    if change == "leaves the managers":
        manager.groups.remove(Group.objects.get(name=roles.SALES_MANAGERS))
    else:
        manager.is_active = False
        manager.save(update_fields=["is_active"])
    assert ask(client, demo, cookie_for(grant)).status_code == 401
    assert shared().get(state.member_key(demo.cluster_name, manager.pk)) == b"closed"


@pytest.mark.django_db
def test_no_cookie_a_forged_one_or_another_demos_is_refused(
    client: Client, demo: Demo, template: Any, alice: Any
) -> None:
    other = make_demo(template, alice)
    assert ask(client, demo).status_code == 401
    forged = passes.seal_cookie(entry.member_pass(demo, alice.pk))[:-2] + "xx"
    assert ask(client, demo, {passes.cookie_name(): forged}).status_code == 401
    assert ask(client, demo, cookie_for(entry.member_pass(other, alice.pk))).status_code == 401
    # Another demo's link, in a cookie claiming this demo: the link entry names its own demo.
    theirs = share(other).link
    claimed = Pass(demo.cluster_name, demo.pk, LINK, theirs.pk, int(time.time()) + 60)
    assert ask(client, demo, cookie_for(claimed)).status_code == 401


@pytest.mark.django_db
def test_revoking_a_link_blocks_its_open_session_at_the_next_request(
    client: Client, demo: Demo, django_capture_on_commit_callbacks: Any
) -> None:
    link = share(demo).link
    grant = entry.link_pass(link)
    assert ask(client, demo, cookie_for(grant)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        links.revoke_share_link(link=link, actor=Actor.of(demo.owner))
    assert ask(client, demo, cookie_for(grant)).status_code == 401


@pytest.mark.django_db
def test_the_end_of_a_demo_blocks_every_pass(
    client: Client, demo: Demo, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    member = entry.member_pass(demo, alice.pk)
    assert ask(client, demo, cookie_for(member)).status_code == 200
    from demos.engine import lifecycle

    with django_capture_on_commit_callbacks(execute=True):
        deleting = lifecycle.delete_demo(demo=demo, actor=Actor.of(alice))
    assert ask(client, demo, cookie_for(member)).status_code == 401
    finish_delete(deleting)


@pytest.mark.django_db
def test_a_demo_past_its_end_is_refused_before_the_expiry_job_runs(
    client: Client, demo: Demo, alice: Any
) -> None:
    Demo.objects.filter(pk=demo.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    demo.refresh_from_db()
    state.publish_demo(demo)
    assert ask(client, demo, cookie_for(entry.member_pass(demo, alice.pk))).status_code == 401


@pytest.mark.django_db
def test_forward_auth_controllers_get_a_redirect_to_sign_in(client: Client, demo: Demo) -> None:
    response = client.get(
        reverse("gate:check"),
        HTTP_X_FORWARDED_HOST=host_of(demo),
        HTTP_X_FORWARDED_URI="/cart",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == reverse("gate:signin")
    assert parse_qs(target.query)["rd"] == [f"https://{host_of(demo)}/cart"]


@pytest.mark.django_db
def test_health_checks_pass_with_a_pass_but_never_count(
    client: Client, demo: Demo, alice: Any
) -> None:
    grant = entry.member_pass(demo, alice.pk)
    ask(client, demo, cookie_for(grant), HTTP_USER_AGENT="kube-probe/1.35")
    assert activity.last_activity([demo.pk]) == {}
    ask(client, demo, cookie_for(grant), HTTP_USER_AGENT="Mozilla/5.0")
    assert demo.pk in activity.last_activity([demo.pk])


@pytest.mark.django_db
def test_a_prospect_is_present_only_while_using_the_demo(
    client: Client, demo: Demo, settings: Any
) -> None:
    grant = entry.link_pass(share(demo).link)
    assert activity.present([demo.pk]) == set()
    ask(client, demo, cookie_for(grant))
    assert activity.present([demo.pk]) == {demo.pk}
    assert shared().ttl(activity.present_key(demo.pk)) <= settings.DEMO_GATE_PRESENT_SECONDS


# --- The way in ---------------------------------------------------------------------------------


def follow_to_demo_host(client: Client, response: Any) -> Any:
    """Follow a redirect to the demo host's enter address, as the browser would."""
    target = urlsplit(response["Location"])
    assert target.path == entry.ENTER_PATH
    return client.get(f"{target.path}?{target.query}", HTTP_HOST=target.netloc)


@pytest.mark.django_db
def test_a_prospect_goes_in_through_their_link_and_the_owner_hears_once(
    client: Client, demo: Demo
) -> None:
    new = share(demo)
    opened = client.get(reverse("prospect:open", args=[new.token]))
    assert opened.status_code == 302
    assert urlsplit(opened["Location"]).netloc.startswith(demo.cluster_name + ".")
    entered = follow_to_demo_host(client, opened)
    assert entered.status_code == 302
    assert entered["Location"] == "/"
    cookie = entered.cookies[passes.cookie_name()]
    assert cookie["httponly"]
    assert cookie["secure"]
    assert cookie["path"] == "/"
    assert not cookie["domain"]  # host-only: never sent to another demo
    assert ask(client, demo, {cookie.key: cookie.value}).status_code == 200
    link = ShareLink.objects.get(pk=new.link.pk)
    assert link.first_entered_at is not None
    assert DemoEvent.objects.filter(demo=demo, kind="prospect-entered").count() == 1
    assert [m.subject for m in mail.outbox if "using" in m.subject]
    # A second way in neither writes nor emails again.
    sent = len(mail.outbox)
    follow_to_demo_host(client, client.get(reverse("prospect:open", args=[new.token])))
    assert DemoEvent.objects.filter(demo=demo, kind="prospect-entered").count() == 1
    assert len(mail.outbox) == sent


@pytest.mark.django_db
def test_a_ticket_is_used_once(client: Client, demo: Demo) -> None:
    new = share(demo)
    opened = client.get(reverse("prospect:open", args=[new.token]))
    assert passes.cookie_name() in follow_to_demo_host(client, opened).cookies
    again = follow_to_demo_host(Client(), opened)
    assert again.status_code == 302
    assert urlsplit(again["Location"]).path == reverse("gate:signin")
    assert passes.cookie_name() not in again.cookies


@pytest.mark.django_db
def test_a_team_member_goes_in_from_the_demo_page(client: Client, demo: Demo, alice: Any) -> None:
    client.force_login(alice)
    opened = client.get(reverse("demos:open", args=[demo.public_id]))
    entered = follow_to_demo_host(client, opened)
    assert passes.cookie_name() in entered.cookies


@pytest.mark.django_db
def test_someone_else_cannot_open_a_demo_they_cannot_see(
    client: Client, demo: Demo, bob: Any
) -> None:
    client.force_login(bob)
    assert client.get(reverse("demos:open", args=[demo.public_id])).status_code == 404


@pytest.mark.django_db
def test_a_stranger_sent_to_sign_in_is_told_the_demo_is_private(client: Client, demo: Demo) -> None:
    response = client.get(reverse("gate:signin"), {"rd": f"https://{host_of(demo)}/shop"})
    assert response.status_code == 403
    assert "This demo is private" in response.text
    # Nothing about the demo beyond the address the visitor already had.
    assert demo.template.name not in response.text
    assert demo.owner.email not in response.text


@pytest.mark.django_db
def test_a_browser_that_opened_the_link_before_is_let_in_again(client: Client, demo: Demo) -> None:
    new = share(demo)
    client.get(reverse("prospect:landing", args=[new.token]))
    response = client.get(reverse("gate:signin"), {"rd": f"https://{host_of(demo)}/cart?a=1"})
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == entry.ENTER_PATH
    assert parse_qs(target.query)["next"] == ["/cart?a=1"]


@pytest.mark.django_db
def test_a_revoked_link_does_not_let_that_browser_in_again(client: Client, demo: Demo) -> None:
    new = share(demo)
    client.get(reverse("prospect:landing", args=[new.token]))
    links.revoke_share_link(link=new.link, actor=Actor.of(demo.owner))
    response = client.get(reverse("gate:signin"), {"rd": f"https://{host_of(demo)}/"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_next_never_leaves_the_demo_host() -> None:
    assert entry.safe_next("//evil.example/") == "/"
    assert entry.safe_next("https://evil.example/") == "/"
    assert entry.safe_next("/\\evil.example") == "/"
    assert entry.safe_next("/cart?a=1") == "/cart?a=1"


# --- The simulated app on its own host (no ingress: the portal checks) -----------------------


@pytest.mark.django_db
def test_the_simulated_app_answers_only_through_the_gate(
    client: Client, demo: Demo, alice: Any
) -> None:
    assert demo.live_url.startswith(f"http://{host_of(demo)}")
    bare = client.get("/", HTTP_HOST=host_of(demo))
    assert bare.status_code == 302
    assert urlsplit(bare["Location"]).path == reverse("gate:signin")
    # Not on the portal's own host either.
    assert client.get(f"/simulated/{demo.cluster_name}/").status_code == 404
    client.cookies[passes.cookie_name()] = passes.seal_cookie(entry.member_pass(demo, alice.pk))
    page = client.get("/", HTTP_HOST=host_of(demo))
    assert page.status_code == 200
    assert "Simulated" in page.text or "simulated" in page.text


@pytest.mark.django_db
def test_unknown_demo_hosts_get_the_neutral_page(client: Client) -> None:
    response = client.get(reverse("gate:signin"), {"rd": "https://c-nothing.demos.localhost/"})
    assert response.status_code == 404
    assert "This demo is private" in response.text


@pytest.mark.django_db
def test_envoy_asks_on_the_demo_host_with_the_original_path(
    client: Client, demo: Demo, alice: Any
) -> None:
    """Envoy Gateway keeps the original Host and appends the original path to the check's."""
    path = "/.portal-gate/check/shop/cart?x=1"
    denied = client.get(path, HTTP_HOST=host_of(demo), HTTP_X_FORWARDED_PROTO="https")
    assert denied.status_code == 302
    rd = parse_qs(urlsplit(denied["Location"]).query)["rd"]
    assert rd == [f"https://{host_of(demo)}/shop/cart?x=1"]
    client.cookies[passes.cookie_name()] = passes.seal_cookie(entry.member_pass(demo, alice.pk))
    assert client.get(path, HTTP_HOST=host_of(demo)).status_code == 200


@pytest.mark.django_db
def test_a_process_holds_a_decision_for_a_second(demo: Demo, settings: Any) -> None:
    """Within the hold a revocation is not seen; right after it, it is (revocation to blocked
    stays within a second plus the next request)."""
    settings.DEMO_GATE_CACHE_SECONDS = 1.0
    link = share(demo).link
    grant = entry.link_pass(link)
    now = time.time()
    assert state.check(grant, counts=False, now=now) is Decision.ALLOW
    links.revoke_share_link(link=link, actor=Actor.of(demo.owner))
    state.publish_link(ShareLink.objects.get(pk=link.pk))
    assert state.check(grant, counts=False, now=now + 0.5) is Decision.ALLOW
    assert state.check(grant, counts=False, now=now + 1.01) is Decision.DENY


@pytest.mark.django_db
def test_counts_reach_redis_once_per_hold(demo: Demo, settings: Any) -> None:
    settings.DEMO_GATE_CACHE_SECONDS = 1.0
    grant = entry.link_pass(share(demo).link)
    redis = shared()
    now = time.time() + 5  # past the last flush of this process
    visitor = activity.field(demo.pk, LINK, grant.subject)

    def counted() -> int:
        minutes = {int(now // 60), int((now + 1.2) // 60)}
        return sum(int(redis.hget(activity.minute_key(m), visitor) or 0) for m in minutes)

    assert state.check(grant, counts=True, now=now) is Decision.ALLOW  # due: sent at once
    assert counted() == 1
    for step in range(5):
        state.check(grant, counts=True, now=now + 0.1 * (step + 1))
    assert counted() == 1  # held in the process
    state.check(grant, counts=True, now=now + 1.2)
    assert counted() == 7
    assert activity.present([demo.pk]) == {demo.pk}
