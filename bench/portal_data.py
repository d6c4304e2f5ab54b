"""Users, sessions, templates and demos the benchmark and the drills set up in-process.

Needs Django set up against the run's own database (see `bench.__main__`).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group, User
from django.utils import timezone

from demos import roles
from demos.engine import lifecycle, progress
from demos.engine.specs import render_spec
from demos.models import Demo, DemoTemplate, SimulatedCluster, Status, TemplateChart
from demos.studio.versions import Actor, record_row_as_version

CHARTS = ("shop", "payments")


def salespeople(count: int, prefix: str) -> list[User]:
    """`count` salespeople. Their passwords are unusable: the benchmark signs them in by making
    sessions directly, because hashing a real password (PBKDF2, on purpose slow) for each of
    dozens of users would take a minute and measure nothing the portal does per request."""
    users = User.objects.bulk_create(
        [
            User(
                username=f"{prefix}{index:03d}",
                email=f"{prefix}{index:03d}@example.com",
                first_name=f"Seller {index}",
                password=f"!{secrets.token_hex(20)}",
            )
            for index in range(count)
        ]
    )
    sales = Group.objects.get(name=roles.SALES)
    sales.user_set.add(*users)
    return list(User.objects.filter(username__startswith=prefix).order_by("username"))


def session_for(user: User) -> str:
    """A signed-in session for `user`, exactly as `django.contrib.auth.login` stores one, in the
    session engine the portal is configured with."""
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return str(session.session_key)


def template(slug: str, *, pool_size: int = 0, **fields: Any) -> DemoTemplate:
    """A typical template: two charts, instructions and credentials, no prospect variables in
    its chart values (so it can have a warm pool)."""
    created = DemoTemplate.objects.create(
        slug=slug,
        name=f"Bench {slug}",
        tagline="A shop with payments",
        description="A **web shop** with a payment service.",
        entry_url="https://${DEMO_HOST}/",
        instructions=(
            "Log in as **admin** at ${DEMO_HOST}.\n\n1. Add a product\n2. Check out\n"
            "3. Open the payments dashboard"
        ),
        credentials="Username: admin\nPassword: demo",
        warm_pool_size=pool_size,
        **fields,
    )
    for position, name in enumerate(CHARTS):
        TemplateChart.objects.create(
            template=created,
            position=position,
            repository="oci://registry.example.com/charts",
            chart=name,
            version="1.0.0",
            release_name=name,
            namespace=name,
            values="ingress:\n  host: ${DEMO_HOST}\nreplicas: 1\n",
        )
    # Published, as an admin would: the catalog offers published templates only.
    record_row_as_version(template=created, actor=Actor(label="bench"), note="Bench template.")
    return created


def _demo(template: DemoTemplate, owner: User, **fields: Any) -> Demo:
    """An unsaved demo of `template` for Ada at Acme Corp, with its spec rendered."""
    demo = Demo(
        template=template,
        owner=owner,
        cluster_name="demo-" + secrets.token_hex(8),
        prospect_company="Acme Corp",
        prospect_name="Ada",
        lifetime=template.default_lifetime,
        **fields,
    )
    demo.spec = render_spec(demo)
    return demo


def running_demo(template: DemoTemplate, owner: User) -> Demo:
    """A demo that runs for the next two hours, as far as the gate is concerned."""
    now = timezone.now()
    demo = _demo(
        template,
        owner,
        status=Status.READY,
        started_at=now,
        ready_at=now,
        expires_at=now + timedelta(hours=2),
    )
    demo.save()
    return demo


def starting_demo(template: DemoTemplate, owner: User) -> Demo:
    """A demo half-way through starting, as the status fragment sees it while a salesperson
    waits: its simulated cluster takes an hour per step, and its next look is not due for an
    hour either, so no worker or sweep changes it while it is polled."""
    now = timezone.now()
    demo = _demo(template, owner, status=Status.REQUESTED, started_at=now - timedelta(seconds=4))
    steps = progress.initial(demo.spec)
    steps = progress.mark(steps, "queued", progress.DONE, now - timedelta(seconds=4))
    steps = progress.mark(steps, "cluster", progress.DONE, now - timedelta(seconds=1))
    demo.progress = progress.mark(steps, f"chart:{CHARTS[0]}", progress.ACTIVE, now)
    demo.save()
    SimulatedCluster.objects.create(
        name=demo.cluster_name, spec=demo.spec, applied_at=now, step_seconds=3600
    )
    lifecycle.record_event(
        demo, "requested", "Start requested for Acme Corp.", lifecycle.Actor.of(owner)
    )
    lifecycle.record_event(demo, "admitted", "Waiting for a worker to create the cluster.")
    # The lifecycle's own transitions (the workers' side, which enqueue nothing), so the
    # timeline reads as a real start's does.
    for name in ("begin", "install"):
        demo = lifecycle.transition(demo, name)
    Demo.objects.filter(pk=demo.pk).update(next_step_at=now + timedelta(hours=1))
    demo.refresh_from_db()
    return demo
