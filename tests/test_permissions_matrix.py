"""Every URL of the portal, for every role, against the status code it must answer.

`ROUTES` is the one table of expectations, keyed by the route as Django's resolver spells it.
`test_every_route_has_an_expectation` walks the resolver, so a new route without a row (or a row
for a route that is gone) fails until someone decides who may open it.

Requests are GETs (or harmless POSTs that change nothing), so probes never disturb each other.
Columns: anonymous, sales A (alice, owns the demo), sales B (bob), sales manager, template admin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from demos.engine.lifecycle import Actor
from demos.models import (
    Branding,
    Demo,
    DemoTemplate,
    ShareLink,
    ShareLinkVisit,
    Snapshot,
    SnapshotKind,
)
from demos.sharing.links import create_share_link
from tests.conftest import make_demo

# What a response may be: a status code, a set of acceptable codes, or one of these redirects.
LOGIN = "login"  # 302 to the portal's login page
ADMIN_LOGIN = "admin-login"  # 302 to the admin's login page
REDIRECT = "redirect"  # 302 anywhere else
HX_LOGIN = "hx-login"  # htmx: a client-side redirect (HX-Redirect) to the login page
HEALTH = frozenset({200, 503})  # public; 503 while no worker or cron runs (as in tests)

Expected = int | str | frozenset[int]
ROLES = ("anonymous", "sales A", "sales B", "manager", "template admin")


@dataclass
class World:
    """The objects the probes point at: alice's demo and what hangs off it."""

    users: dict[str, User | None]
    template: DemoTemplate
    demo: Demo
    snapshot: Snapshot
    link: ShareLink
    token: str
    group: Group
    login_records: dict[str, Any]


@dataclass(frozen=True)
class Probe:
    url: Callable[[World], str]
    expect: tuple[Expected, Expected, Expected, Expected, Expected]
    method: str = "get"
    htmx: bool = False
    data: dict[str, Any] = field(default_factory=dict)


def probe(
    url: str | Callable[[World], str],
    anonymous: Expected,
    sales_a: Expected,
    sales_b: Expected,
    manager: Expected,
    template_admin: Expected,
    **options: Any,
) -> Probe:
    to_url = url if callable(url) else (lambda world, url=url: url)
    return Probe(to_url, (anonymous, sales_a, sales_b, manager, template_admin), **options)


def staff_only(url: str | Callable[[World], str], staff: Expected, **options: Any) -> Probe:
    """Admin pages: everyone but staff is sent to the admin's login."""
    return probe(url, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, staff, **options)


def signed_in(url: str | Callable[[World], str], status: Expected, **options: Any) -> Probe:
    """Any logged-in person; anonymous visitors log in first."""
    return probe(url, LOGIN, status, status, status, status, **options)


def fleet_only(url: str, status: Expected = 200, **options: Any) -> Probe:
    return probe(url, LOGIN, 403, 403, status, status, **options)


def studio_only(url: str | Callable[[World], str], status: Expected, **options: Any) -> Probe:
    """The template studio: template admins (and superusers) only."""
    return probe(url, LOGIN, 403, 403, 403, status, **options)


def studio_url(suffix: str = "") -> Callable[[World], str]:
    return lambda world: f"/studio/templates/{world.template.slug}/{suffix}"


def demo_url(suffix: str = "") -> Callable[[World], str]:
    return lambda world: f"/demos/{world.demo.public_id}/{suffix}"


def admin_model(
    prefix: str,
    obj: Callable[[World], Any],
    *,
    changelist: Expected,
    add: Expected,
    change: Expected,
    delete: Expected,
    history: Expected,
) -> dict[str, list[Probe]]:
    """The six routes Django's admin makes for a registered model; statuses for staff."""

    def at(suffix: str) -> Callable[[World], str]:
        return lambda world: f"/admin/{prefix}/{obj(world).pk}/{suffix}"

    return {
        f"admin/{prefix}/": [staff_only(f"/admin/{prefix}/", changelist)],
        f"admin/{prefix}/add/": [staff_only(f"/admin/{prefix}/add/", add)],
        f"admin/{prefix}/<path:object_id>/change/": [staff_only(at("change/"), change)],
        f"admin/{prefix}/<path:object_id>/delete/": [staff_only(at("delete/"), delete)],
        f"admin/{prefix}/<path:object_id>/history/": [staff_only(at("history/"), history)],
        # The bare object URL redirects to its change page before any permission check.
        f"admin/{prefix}/<path:object_id>/": [staff_only(at(""), REDIRECT)],
    }


def superusers_only(url: str, **options: Any) -> Probe:
    """Superuser tools: anonymous visitors log in to the admin; everyone else is refused.

    Template admins are staff, and django-rq alone would let any staff member empty queues
    and delete jobs; the portal lets only superusers in (tests/test_security_web.py shows a
    superuser getting through).
    """
    return probe(url, ADMIN_LOGIN, 403, 403, 403, 403, **options)


def rq_routes(prefix: str) -> dict[str, list[Probe]]:
    """django-rq's dashboard, mounted once: superusers only, whatever the page."""
    job = "queues/0/no-such-job"
    pages = {
        "": "",
        "queues/<int:queue_index>/": "queues/0/",
        "queues/<int:queue_index>/details/": "queues/0/details/",
        "queues/<int:queue_index>/finished/": "queues/0/finished/",
        "queues/<int:queue_index>/failed/": "queues/0/failed/",
        "queues/<int:queue_index>/failed/clear/": "queues/0/failed/clear/",
        "queues/<int:queue_index>/scheduled/": "queues/0/scheduled/",
        "queues/<int:queue_index>/started/": "queues/0/started/",
        "queues/<int:queue_index>/deferred/": "queues/0/deferred/",
        "queues/<int:queue_index>/empty/": "queues/0/empty/",
        "queues/<int:queue_index>/requeue-all/": "queues/0/requeue-all/",
        "queues/<int:queue_index>/<str:job_id>/": f"{job}/",
        "queues/<int:queue_index>/<str:job_id>/results/<str:result_id>/": f"{job}/results/none/",
        "queues/<int:queue_index>/<str:job_id>/delete/": f"{job}/delete/",
        "queues/<int:queue_index>/<str:job_id>/requeue/": f"{job}/requeue/",
        "queues/<int:queue_index>/<str:job_id>/enqueue/": f"{job}/enqueue/",
        "queues/<int:queue_index>/<str:job_id>/stop/": f"{job}/stop/",
        "queues/confirm-action/<int:queue_index>/": "queues/confirm-action/0/",
        "queues/actions/<int:queue_index>/": "queues/actions/0/",
        "workers/<int:queue_index>/": "workers/0/",
        "workers/<int:queue_index>/<str:key>/": "workers/0/no-such-worker/",
        "schedulers/<int:scheduler_index>/": "schedulers/0/",
        "cron-schedulers/<int:connection_index>/<str:scheduler_name>/": (
            "cron-schedulers/0/no-such-scheduler/"
        ),
        "cron-schedulers/<int:connection_index>/<str:scheduler_name>/jobs/<path:cron_job_name>/": (
            "cron-schedulers/0/no-such-scheduler/jobs/none/"
        ),
    }
    routes: dict[str, list[Probe]] = {
        f"{prefix}{route}": [superusers_only(f"/{prefix}{path}")] for route, path in pages.items()
    }
    # The pages that change something are refused to a POST just the same.
    for route in ("queues/<int:queue_index>/empty/", "queues/actions/<int:queue_index>/"):
        path = pages[route]
        routes[f"{prefix}{route}"].append(superusers_only(f"/{prefix}{path}", method="post"))
    # Statistics as JSON: a superuser or a bearer token; anonymous visitors get a JSON refusal.
    routes[rf"{prefix}^stats.json/?$"] = [probe(f"/{prefix}stats.json", 401, 403, 403, 403, 403)]
    routes[rf"{prefix}^stats.json/(?P<token>[\w]+)?/?$"] = [
        probe(f"/{prefix}stats.json/wrong/", 401, 403, 403, 403, 403)
    ]
    return routes


ROUTES: dict[str, list[Probe]] = {
    # --- Health: public, cheap, no session needed --------------------------------------------
    "healthz": [probe("/healthz", 200, 200, 200, 200, 200)],
    "readyz": [probe("/readyz", HEALTH, HEALTH, HEALTH, HEALTH, HEALTH)],
    # --- Accounts ------------------------------------------------------------------------------
    "login/": [probe("/login/", 200, REDIRECT, REDIRECT, REDIRECT, REDIRECT)],
    "logout/": [
        probe("/logout/", 405, 405, 405, 405, 405),
        probe("/logout/", LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, method="post"),
    ],
    # Passwords: resetting one is for anyone (the answer never says whether an address has an
    # account); changing one is for people signed in. A made-up reset link shows "does not work".
    "password/reset/": [probe("/password/reset/", 200, 200, 200, 200, 200)],
    "password/reset/sent/": [probe("/password/reset/sent/", 200, 200, 200, 200, 200)],
    "password/reset/<uidb64>/<token>/": [
        probe("/password/reset/MQ/not-a-token/", 200, 200, 200, 200, 200)
    ],
    "password/reset/done/": [probe("/password/reset/done/", 200, 200, 200, 200, 200)],
    "password/change/": [signed_in("/password/change/", 200)],
    "password/change/done/": [signed_in("/password/change/done/", 200)],
    # --- Salespeople: catalog, starting, their demos and the htmx fragments ----------------------
    "": [signed_in("/", 200)],
    "templates/<slug:slug>/start/": [
        signed_in("/templates/webshop/start/", 200),
        signed_in("/templates/no-such-template/start/", 404),
    ],
    "templates/accents.css": [signed_in("/templates/accents.css", 200)],
    # A person's own settings: anyone signed in; a bad zone is refused on the page itself.
    "account/": [
        signed_in("/account/", 200),
        signed_in("/account/", 200, method="post", data={"time_zone": "Nowhere/Else"}),
    ],
    "demos/": [signed_in("/demos/", 200)],
    "demos/<uuid:public_id>/": [
        probe(demo_url(), LOGIN, 200, 404, 200, 200),
        signed_in("/demos/00000000-0000-4000-8000-000000000000/", 404),
    ],
    # The status poll answers 286 (htmx: stop polling) once the demo has settled, as here.
    "demos/<uuid:public_id>/status/": [
        probe(demo_url("status/"), LOGIN, 286, 404, 286, 286),
        probe(demo_url("status/"), HX_LOGIN, 286, 404, 286, 286, htmx=True),
    ],
    # Acting on a demo: its owner and managers; template admins only watch (403); others 404.
    "demos/<uuid:public_id>/actions/<slug:action>/": [
        probe(demo_url("actions/delete/"), LOGIN, 200, 404, 200, 403),
        probe(demo_url("actions/delete/"), HX_LOGIN, 200, 404, 200, 403, htmx=True),
        probe(demo_url("actions/no-such-action/"), LOGIN, 404, 404, 404, 404),
    ],
    "demos/<uuid:public_id>/snapshots/<int:snapshot_id>/restore/": [
        probe(
            lambda w: f"/demos/{w.demo.public_id}/snapshots/{w.snapshot.pk}/restore/",
            LOGIN,
            REDIRECT,
            404,
            REDIRECT,
            403,
            method="post",
        ),
        probe(
            lambda w: f"/demos/{w.demo.public_id}/snapshots/{w.snapshot.pk}/restore/",
            LOGIN,
            405,
            405,
            405,
            405,
        ),
    ],
    # Team work: anyone who sees the demo sees who works on it; its owner and sales managers
    # change that (an empty form is refused on the page itself, 400). Colleagues: see
    # `test_a_colleague_is_answered_as_the_owner_but_for_the_team`.
    "demos/<uuid:public_id>/team/": [probe(demo_url("team/"), LOGIN, 200, 404, 200, 200)],
    "demos/<uuid:public_id>/team/add/": [
        probe(demo_url("team/add/"), LOGIN, 405, 405, 405, 405),
        probe(demo_url("team/add/"), LOGIN, 400, 404, 400, 403, method="post"),
    ],
    # Bob is not on the demo: removing him changes nothing.
    "demos/<uuid:public_id>/team/<int:user_id>/remove/": [
        probe(
            lambda w: f"/demos/{w.demo.public_id}/team/{w.users['sales B'].pk}/remove/",
            LOGIN,
            405,
            405,
            405,
            405,
        ),
        probe(
            lambda w: f"/demos/{w.demo.public_id}/team/{w.users['sales B'].pk}/remove/",
            LOGIN,
            REDIRECT,
            404,
            REDIRECT,
            403,
            method="post",
        ),
    ],
    "demos/<uuid:public_id>/hand-over/": [
        probe(demo_url("hand-over/"), LOGIN, 405, 405, 405, 405),
        probe(demo_url("hand-over/"), LOGIN, 400, 404, 400, 403, method="post"),
    ],
    # No request for more time is waiting: dismissing changes nothing.
    "demos/<uuid:public_id>/more-time/dismiss/": [
        probe(demo_url("more-time/dismiss/"), LOGIN, 405, 405, 405, 405),
        probe(demo_url("more-time/dismiss/"), LOGIN, REDIRECT, 404, REDIRECT, 403, method="post"),
    ],
    # Share links: anyone who sees the demo sees its links; only who may act makes or revokes.
    "demos/<uuid:public_id>/share/": [
        probe(demo_url("share/"), LOGIN, 200, 404, 200, 200),
        probe(demo_url("share/"), HX_LOGIN, 200, 404, 200, 200, htmx=True),
    ],
    "demos/<uuid:public_id>/share/new/": [
        probe(demo_url("share/new/"), LOGIN, 405, 405, 405, 405),
        # An empty form: refused (or sent back with an error) before anything is made.
        probe(demo_url("share/new/"), LOGIN, REDIRECT, 404, REDIRECT, 403, method="post"),
    ],
    # A link in full, to copy it again, and emailing it: only who may act (it shows the token).
    "demos/<uuid:public_id>/share/<int:link_id>/": [
        probe(lambda w: f"/demos/{w.demo.public_id}/share/{w.link.pk}/", LOGIN, 200, 404, 200, 403),
        probe(
            lambda w: f"/demos/{w.demo.public_id}/share/{w.link.pk}/",
            HX_LOGIN,
            200,
            404,
            200,
            403,
            htmx=True,
        ),
    ],
    # The world's link is for "Pat", no address: the portal refuses to send, and sends nothing.
    "demos/<uuid:public_id>/share/<int:link_id>/email/": [
        probe(
            lambda w: f"/demos/{w.demo.public_id}/share/{w.link.pk}/email/",
            LOGIN,
            405,
            405,
            405,
            405,
        ),
        probe(
            lambda w: f"/demos/{w.demo.public_id}/share/{w.link.pk}/email/",
            LOGIN,
            REDIRECT,
            404,
            REDIRECT,
            403,
            method="post",
        ),
    ],
    "demos/<uuid:public_id>/share/<int:link_id>/revoke/": [
        probe(
            lambda w: f"/demos/{w.demo.public_id}/share/{w.link.pk}/revoke/",
            LOGIN,
            405,
            405,
            405,
            405,
        ),
        probe(
            lambda w: f"/demos/{w.demo.public_id}/share/{w.link.pk}/revoke/",
            LOGIN,
            REDIRECT,
            404,
            REDIRECT,
            403,
            method="post",
        ),
    ],
    # Prospect pages: the token is the only key, so every role gets the same answer.
    "p/<str:token>/": [
        probe(lambda w: f"/p/{w.token}/", 200, 200, 200, 200, 200),
        probe("/p/not-a-token/", 404, 404, 404, 404, 404),
    ],
    "p/<str:token>/status/": [
        probe(lambda w: f"/p/{w.token}/status/", 200, 200, 200, 200, 200, htmx=True),
        probe("/p/not-a-token/status/", 286, 286, 286, 286, 286, htmx=True),
    ],
    "p/<str:token>/more-time/": [
        probe(lambda w: f"/p/{w.token}/more-time/", 405, 405, 405, 405, 405),
        probe(
            lambda w: f"/p/{w.token}/more-time/",
            REDIRECT,
            REDIRECT,
            REDIRECT,
            REDIRECT,
            REDIRECT,
            method="post",
        ),
        probe("/p/not-a-token/more-time/", 404, 404, 404, 404, 404, method="post"),
    ],
    # This template does not allow kubeconfig downloads.
    # What prospect pages show: public, like the pages (a logo only once an admin uploads one;
    # a photo only at its signed address).
    "brand/<str:version>.css": [probe("/brand/default.css", 200, 200, 200, 200, 200)],
    "brand/logo/<str:version>.png": [probe("/brand/logo/default.png", 404, 404, 404, 404, 404)],
    "people/photo/<str:signed>.png": [
        probe("/people/photo/1.1:forged.png", 404, 404, 404, 404, 404)
    ],
    "p/<str:token>/kubeconfig/": [
        probe(lambda w: f"/p/{w.token}/kubeconfig/", 404, 404, 404, 404, 404),
    ],
    # Behind the gate the simulated app answers only on its demo's own host (tests/test_gate.py),
    # never on the portal's.
    "simulated/<slug:cluster_name>/": [
        probe(lambda w: f"/simulated/{w.demo.cluster_name}/", 404, 404, 404, 404, 404),
        probe("/simulated/demo-nosuchthing/", 404, 404, 404, 404, 404),
    ],
    # --- The gate (demos/gate): into a demo's live app -------------------------------------
    # "Open demo": a ticket to the demo's host for those who may see it.
    "demos/<uuid:public_id>/open/": [
        probe(demo_url("open/"), LOGIN, REDIRECT, 404, REDIRECT, REDIRECT),
    ],
    "p/<str:token>/open/": [
        probe(lambda w: f"/p/{w.token}/open/", REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT),
        probe("/p/not-a-token/open/", 404, 404, 404, 404, 404),
    ],
    # The check without a pass: sent to sign in (as Traefik and Envoy hand it to the browser).
    "gate/check/": [probe("/gate/check/", REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT)],
    # Where a denied browser lands: in again for the team, "private" for anyone else.
    "gate/signin/": [
        probe(
            lambda w: f"/gate/signin/?rd=https://{w.demo.cluster_name}.demos.localhost/",
            403,
            REDIRECT,
            403,
            REDIRECT,
            REDIRECT,
        ),
        probe("/gate/signin/?rd=https://nothing.example/", 404, 404, 404, 404, 404),
    ],
    "gate/waking/<uuid:public_id>/": [
        probe(
            lambda w: f"/gate/waking/{w.demo.public_id}/", 403, REDIRECT, 403, REDIRECT, REDIRECT
        ),
        probe("/gate/waking/00000000-0000-4000-8000-000000000000/", 404, 404, 404, 404, 404),
    ],
    # --- Fleet: sales managers and template admins ---------------------------------------------
    "fleet/": [fleet_only("/fleet/")],
    "fleet/activity/": [fleet_only("/fleet/activity/")],
    "fleet/export/demos.csv": [fleet_only("/fleet/export/demos.csv")],
    "fleet/export/visits.csv": [fleet_only("/fleet/export/visits.csv")],
    "fleet/bulk/": [
        fleet_only("/fleet/bulk/", 405),
        fleet_only("/fleet/bulk/", REDIRECT, method="post"),
    ],
    # --- Template studio: template admins only; POSTs here are refused or change nothing --------
    "studio/": [studio_only("/studio/", 200)],
    "studio/new/": [
        studio_only("/studio/new/", 200),
        studio_only("/studio/new/", 200, method="post"),
    ],
    "studio/new/preview/": [
        studio_only("/studio/new/preview/", 405),
        studio_only("/studio/new/preview/", 200, method="post"),
    ],
    "studio/import/": [
        studio_only("/studio/import/", 200),
        studio_only("/studio/import/", 200, method="post"),
    ],
    "studio/templates/<slug:slug>/": [
        studio_only(studio_url(), 200),
        studio_only("/studio/templates/no-such-template/", 404),
    ],
    "studio/templates/<slug:slug>/edit/": [
        studio_only(studio_url("edit/"), 200),
        studio_only(studio_url("edit/"), 200, method="post"),
    ],
    "studio/templates/<slug:slug>/preview/": [
        studio_only(studio_url("preview/"), 405),
        studio_only(studio_url("preview/"), 200, method="post"),
    ],
    # No draft to publish or discard: refused with a message.
    "studio/templates/<slug:slug>/publish/": [
        studio_only(studio_url("publish/"), 405),
        studio_only(studio_url("publish/"), REDIRECT, method="post"),
    ],
    "studio/templates/<slug:slug>/discard/": [
        studio_only(studio_url("discard/"), 405),
        studio_only(studio_url("discard/"), REDIRECT, method="post"),
    ],
    "studio/templates/<slug:slug>/availability/": [
        studio_only(studio_url("availability/"), 405),
        studio_only(studio_url("availability/"), REDIRECT, method="post", data={"enabled": "on"}),
    ],
    # Putting a template back in the catalog: a POST; this one was not taken out (no change).
    "studio/templates/<slug:slug>/put-back/": [
        studio_only(studio_url("put-back/"), 405),
        studio_only(studio_url("put-back/"), REDIRECT, method="post"),
    ],
    "studio/templates/<slug:slug>/compare/": [
        studio_only(studio_url("compare/?old=1&new=1"), 200),
        studio_only(studio_url("compare/?old=1&new=draft"), 404),
    ],
    "studio/templates/<slug:slug>/export.yaml": [studio_only(studio_url("export.yaml"), 200)],
    # Version 1 is the published one already: refused with a message.
    "studio/templates/<slug:slug>/versions/<int:number>/roll-back/": [
        studio_only(studio_url("versions/1/roll-back/"), 405),
        studio_only(studio_url("versions/1/roll-back/"), REDIRECT, method="post"),
    ],
    # A POST would start a demo: only the refusals are probed here (tests/test_studio_views.py).
    "studio/templates/<slug:slug>/test-launch/": [studio_only(studio_url("test-launch/"), 405)],
    # Alice's demo is not a test launch, so the studio does not show it.
    "studio/templates/<slug:slug>/test-launches/<uuid:public_id>/": [
        studio_only(lambda w: studio_url(f"test-launches/{w.demo.public_id}/")(w), 404),
    ],
    "studio/templates/<slug:slug>/test-launches/<uuid:public_id>/delete/": [
        studio_only(lambda w: studio_url(f"test-launches/{w.demo.public_id}/delete/")(w), 405),
        studio_only(
            lambda w: studio_url(f"test-launches/{w.demo.public_id}/delete/")(w),
            404,
            method="post",
        ),
    ],
    # --- Admin site: staff only; template admins by their group's permissions --------------------
    "admin/": [staff_only("/admin/", 200)],
    "admin/login/": [probe("/admin/login/", 200, 200, 200, 200, REDIRECT)],
    # Logging out is a POST; a GET sends a visitor who is not staff to the admin's index.
    "admin/logout/": [probe("/admin/logout/", REDIRECT, REDIRECT, REDIRECT, REDIRECT, 405)],
    "admin/password_change/": [staff_only("/admin/password_change/", 200)],
    "admin/password_change/done/": [staff_only("/admin/password_change/done/", 200)],
    "admin/autocomplete/": [staff_only("/admin/autocomplete/", 403)],
    "admin/jsi18n/": [staff_only("/admin/jsi18n/", 200)],
    "admin/r/<path:content_type_id>/<path:object_id>/": [
        staff_only("/admin/r/1/1/", 404),
    ],
    "admin/^(?P<app_label>auth|axes|demos)/$": [
        staff_only("/admin/demos/", 200),
        staff_only("/admin/auth/", 404),
        staff_only("/admin/axes/", 404),
        # django-rq's admin entry is not registered: its dashboard lives at /admin/rq/ only.
        staff_only("/admin/django_rq/", 404),
    ],
    "admin/(?P<url>.*)$": [staff_only("/admin/no-such-page/", 404)],
    **admin_model(
        "demos/demotemplate",
        lambda w: w.template,
        changelist=200,
        add=200,
        change=200,
        delete=200,
        history=200,
    ),
    "admin/demos/demotemplate/<path:object_id>/preview/": [
        staff_only(lambda w: f"/admin/demos/demotemplate/{w.template.pk}/preview/", 200)
    ],
    **admin_model(
        "demos/demo",
        lambda w: w.demo,
        changelist=200,
        add=403,
        change=200,
        delete=403,
        history=200,
    ),
    **admin_model(
        "demos/snapshot",
        lambda w: w.snapshot,
        changelist=200,
        add=403,
        change=200,
        delete=403,
        history=200,
    ),
    # The portal's branding: superusers only.
    **admin_model(
        "demos/branding",
        lambda w: Branding.objects.get_or_create()[0],
        changelist=403,
        add=403,
        change=403,
        delete=403,
        history=403,
    ),
    # Share links carry prospect data: superusers only.
    **admin_model(
        "demos/sharelink",
        lambda w: w.link,
        changelist=403,
        add=403,
        change=403,
        delete=403,
        history=403,
    ),
    **admin_model(
        "auth/user",
        lambda w: w.users["sales A"],
        changelist=403,
        add=403,
        change=403,
        delete=403,
        history=403,
    ),
    "admin/auth/user/<id>/password/": [
        staff_only(lambda w: f"/admin/auth/user/{w.users['sales A'].pk}/password/", 403)
    ],
    **admin_model(
        "auth/group",
        lambda w: w.group,
        changelist=403,
        add=403,
        change=403,
        delete=403,
        history=403,
    ),
    # Login throttling records: superusers only (they unlock people there).
    **{
        route: probes
        for model in ("accessattempt", "accesslog", "accessfailurelog")
        for route, probes in admin_model(
            f"axes/{model}",
            lambda w, model=model: w.login_records[model],
            changelist=403,
            add=403,
            change=403,
            delete=403,
            history=403,
        ).items()
    },
    **rq_routes("admin/rq/"),
}


def walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def _codes(expected: Expected) -> set[int]:
    if isinstance(expected, int):
        return {expected}
    return set(expected) if isinstance(expected, frozenset) else set()


def test_no_expectation_is_a_server_error() -> None:
    """A 500 is a bug to fix, never an answer to expect: no row may accept one."""
    accepting = sorted(
        route
        for route, probes in ROUTES.items()
        for probe_ in probes
        if any(code >= 500 and code != 503 for e in probe_.expect for code in _codes(e))
    )
    assert not accepting, f"Rows that accept a server error: {accepting}"


def test_every_route_has_an_expectation() -> None:
    routes = set(walk(get_resolver().url_patterns))
    unclassified = sorted(routes - ROUTES.keys())
    stale = sorted(ROUTES.keys() - routes)
    assert not unclassified, f"Routes without an expectation in ROUTES: {unclassified}"
    assert not stale, f"Expectations for routes that no longer exist: {stale}"


@pytest.fixture
def world(
    alice: User,
    bob: User,
    manager: User,
    template_admin: User,
    template: DemoTemplate,
    rq_redis: Any,
) -> World:
    demo = make_demo(template, alice, prospect_company="Acme")
    snapshot = Snapshot.objects.create(
        demo=demo, template=template, kind=SnapshotKind.ARCHIVED, location="oci://example/x"
    )
    shared = create_share_link(demo=demo, actor=Actor.of(alice), recipient="Pat")
    ShareLinkVisit.objects.create(link=shared.link, user_agent="Firefox")
    record = {"username": "alice", "ip_address": "203.0.113.5", "user_agent": "Firefox"}
    login_records = {
        "accessattempt": AccessAttempt.objects.create(
            **record, get_data="", post_data="", failures_since_start=1
        ),
        "accesslog": AccessLog.objects.create(**record),
        "accessfailurelog": AccessFailureLog.objects.create(**record),
    }
    return World(
        users={
            "anonymous": None,
            "sales A": alice,
            "sales B": bob,
            "manager": manager,
            "template admin": template_admin,
        },
        template=template,
        demo=demo,
        snapshot=snapshot,
        link=shared.link,
        token=shared.token,
        group=Group.objects.get(name="Sales"),
        login_records=login_records,
    )


def _matches(response: Any, expected: Expected) -> bool:
    location = response.get("Location", "")
    if expected == LOGIN:
        return response.status_code == 302 and location.startswith("/login/")
    if expected == ADMIN_LOGIN:
        return response.status_code == 302 and location.startswith("/admin/login/")
    if expected == REDIRECT:
        return response.status_code == 302 and not location.startswith(("/login/", "/admin/login/"))
    if expected == HX_LOGIN:
        return response.headers.get("HX-Redirect", "").startswith("/login/")
    if isinstance(expected, frozenset):
        return response.status_code in expected
    return response.status_code == expected


def _describe(response: Any) -> str:
    where = response.get("Location") or response.headers.get("HX-Redirect") or ""
    return f"{response.status_code}{' -> ' + where if where else ''}"


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda route: route or "(root)")
def test_route_answers_each_role_as_expected(route: str, world: World) -> None:
    wrong = []
    for probe_ in ROUTES[route]:
        url = probe_.url(world)
        for role, expected in zip(ROLES, probe_.expect, strict=True):
            client = Client(raise_request_exception=False)
            user = world.users[role]
            if user is not None:
                client.force_login(user)
            headers = {"HX-Request": "true"} if probe_.htmx else {}
            response = getattr(client, probe_.method)(url, probe_.data, headers=headers)
            if not _matches(response, expected):
                how = f"{probe_.method.upper()}{' (htmx)' if probe_.htmx else ''} {url}"
                wrong.append(f"{how} as {role}: expected {expected}, got {_describe(response)}")
    assert not wrong, "\n".join(wrong)


# Routes about who works on a demo: a colleague acts on the demo but does not change its team.
TEAM_ROUTES = frozenset(
    {
        "demos/<uuid:public_id>/team/add/",
        "demos/<uuid:public_id>/team/<int:user_id>/remove/",
        "demos/<uuid:public_id>/hand-over/",
    }
)


def test_a_colleague_is_answered_as_the_owner_but_for_the_team(world: World) -> None:
    """Carol, added to alice's demo, gets alice's answer on every route of the demo (she sees,
    opens, extends, shares and deletes it), except that she cannot change who works on it."""
    carol = User.objects.create_user("carol", "carol@example.com", "x", first_name="Carol")
    carol.groups.add(Group.objects.get(name="Sales"))
    world.demo.colleagues.add(carol)
    wrong = []
    for route, probes in ROUTES.items():
        if not route.startswith("demos/<uuid:public_id>/"):
            continue
        for probe_ in probes:
            url = probe_.url(world)
            owner_answer = probe_.expect[ROLES.index("sales A")]
            expected = 403 if route in TEAM_ROUTES and probe_.method == "post" else owner_answer
            client = Client(raise_request_exception=False)
            client.force_login(carol)
            headers = {"HX-Request": "true"} if probe_.htmx else {}
            response = getattr(client, probe_.method)(url, probe_.data, headers=headers)
            if not _matches(response, expected):
                how = f"{probe_.method.upper()}{' (htmx)' if probe_.htmx else ''} {url}"
                got = _describe(response)
                wrong.append(f"{how} as a colleague: expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)
