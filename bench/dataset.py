"""A realistic data set for measuring pages at scale: a year of history of a large sales team.

Built straight into PostgreSQL with `COPY` (psycopg's `cursor.copy`), not through the ORM: a
hundred thousand demos and a million events take tens of seconds this way instead of many
minutes. Every row is still one the portal could have written itself: specs rendered from the
templates by `render_spec` (once per template, then given each demo's own names), progress as
`demos.engine.progress` keeps it, events of the kinds and wording the lifecycle writes, in the
order it writes them, and states the sweep leaves alone (no demo is due, stuck or past its
retention while the benchmark measures), so the cron and the workers stay as idle as on a quiet
afternoon.

"Teams" are only a naming of users (`emea-017`, `amer-042`...): the portal has no team model,
and managers see everyone's demos.

Needs Django set up against the benchmark's own database (PostgreSQL; SQLite has no `COPY`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import connection, models
from django.utils import timezone

from demos import roles
from demos.durations import format_duration
from demos.engine import progress
from demos.engine.specs import render_spec
from demos.models import (
    Demo,
    DemoEvent,
    DemoTemplate,
    ExpiryAction,
    ShareLink,
    ShareLinkVisit,
    SimulatedCluster,
    Snapshot,
    SnapshotKind,
    Status,
    TemplateChart,
)
from demos.studio.versions import Actor, record_row_as_version

TEAMS = ("emea", "amer", "apac", "dach", "nordics", "latam", "anz", "public")
PRODUCTS = (
    "Web shop", "Payments", "Analytics", "Search", "Messaging", "Identity", "Billing",
    "Inventory", "Support desk", "Data lake", "Observability", "Feature flags", "CMS",
    "Scheduling", "Notifications", "Recommendations", "Fraud check", "Video", "Maps", "Forms",
)  # fmt: skip
CHARTS = ("frontend", "api", "worker", "postgres", "redis")
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")
PROSPECTS = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
# A template rendered once, with these stand-ins where each demo's own values go.
_CLUSTER = "demo-ffffffffffffffff"
_PUBLIC_ID = "00000000-0000-4000-8000-00000000ffff"
_OWNER_NAME, _OWNER_EMAIL = "zz-owner-name-zz", "zz-owner-zz@example.com"
_PROSPECT, _COMPANY = "zz-prospect-zz", "zz-company-zz"
RETENTION = timedelta(days=14)
STEP = timedelta(hours=1)  # extension step


@dataclass(frozen=True)
class Size:
    """How much to build. Events follow from the demos (about ten per demo, as the lifecycle
    writes them), so their number is reported rather than asked for."""

    historical: int = 100_000
    live: int = 5_000
    salespeople: int = 200
    managers: int = 10
    templates: int = 20
    days: int = 365
    measured: int = 20  # salespeople of typical size the benchmark signs in as


@dataclass
class DataSet:
    """What the benchmark needs to know about what was built."""

    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    typical: list[int] = field(default_factory=list)  # user ids, one per measured client
    managers: list[int] = field(default_factory=list)
    ready_demo: dict[int, str] = field(default_factory=dict)  # owner id: public id
    starting_demo: dict[int, str] = field(default_factory=dict)
    prospect_tokens: list[str] = field(default_factory=list)  # links to running demos
    historical_per_typical: list[int] = field(default_factory=list)
    live_per_typical: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Rendered:
    """A template's spec and progress as JSON text with stand-ins, and what pages need."""

    template: DemoTemplate
    spec_text: str
    charts: tuple[str, ...]
    action: str


@dataclass
class Event:
    at: datetime
    kind: str
    message: str
    actor_id: int | None = None
    label: str = ""
    data: dict[str, Any] = field(default_factory=dict)


# --- Copying rows in ---------------------------------------------------------------------------


class Table:
    """Rows of one model, written with COPY in the column order of its concrete fields.

    Fields a row leaves out take the model's default, so a column added to the model later
    still gets a valid value."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.defaults = {
            f.attname: self._default(f) for f in self.fields if f.attname != model._meta.pk.attname
        }

    @staticmethod
    def _default(f: models.Field[Any, Any]) -> Any:
        if not f.has_default():
            return None if f.null else ""
        value = f.get_default()
        return json.dumps(value) if isinstance(f, models.JSONField) else value

    def copy(self, rows: Iterable[dict[str, Any]]) -> int:
        names = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        table = connection.ops.quote_name(self.model._meta.db_table)
        attnames = [f.attname for f in self.fields]
        json_fields = {f.attname for f in self.fields if isinstance(f, models.JSONField)}
        count = 0
        with (
            connection.cursor() as wrapper,
            wrapper.cursor.copy(
                f"COPY {table} ({names}) FROM STDIN"  # only the model's own quoted names
            ) as copy,
        ):
            for row in rows:
                values = []
                for name in attnames:
                    if name in row:
                        value = row[name]
                        if name in json_fields and not isinstance(value, str):
                            value = json.dumps(value)
                    else:
                        value = self.defaults[name]
                    values.append(value)
                copy.write_row(values)
                count += 1
        return count


def reset_sequences(*tables: type[models.Model]) -> None:
    """After rows with ids of our choosing, new rows (from the portal) continue after them."""
    with connection.cursor() as cursor:
        for model in tables:
            table = model._meta.db_table
            column = model._meta.pk.column
            quote = connection.ops.quote_name
            highest = f"SELECT COALESCE(MAX({quote(column)}), 0) + 1 FROM {quote(table)}"  # noqa: S608
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), ({highest}), false)",
                [table, column],
            )


def next_id(model: type[models.Model]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(MAX({connection.ops.quote_name(model._meta.pk.column)}), 0) + 1 "  # noqa: S608
            f"FROM {connection.ops.quote_name(model._meta.db_table)}"
        )
        return int(cursor.fetchone()[0])


# --- People and templates ----------------------------------------------------------------------


def make_people(size: Size) -> tuple[list[User], list[User]]:
    """Salespeople in named teams and a few managers. Passwords are unusable: the benchmark
    signs them in by making sessions (see `bench.portal_data.session_for`)."""
    people = [
        User(
            username=f"{TEAMS[i % len(TEAMS)]}-{i:03d}",
            email=f"{TEAMS[i % len(TEAMS)]}-{i:03d}@example.com",
            first_name=f"Seller {i}",
            last_name=TEAMS[i % len(TEAMS)].upper(),
            password=make_password(None),
        )
        for i in range(size.salespeople)
    ]
    bosses = [
        User(
            username=f"manager-{i:02d}",
            email=f"manager-{i:02d}@example.com",
            first_name=f"Manager {i}",
            password=make_password(None),
        )
        for i in range(size.managers)
    ]
    User.objects.bulk_create(people + bosses)
    people = list(User.objects.filter(username__in=[u.username for u in people]).order_by("pk"))
    bosses = list(User.objects.filter(username__in=[u.username for u in bosses]).order_by("pk"))
    Group.objects.get(name=roles.SALES).user_set.add(*people)
    Group.objects.get(name=roles.SALES_MANAGERS).user_set.add(*bosses)
    return people, bosses


def make_templates(size: Size, rng: random.Random) -> list[Rendered]:
    actions = [ExpiryAction.DELETE] * 3 + [ExpiryAction.PAUSE, ExpiryAction.ARCHIVE]
    rendered = []
    for index in range(size.templates):
        name = PRODUCTS[index % len(PRODUCTS)]
        if index >= len(PRODUCTS):
            name = f"{name} {index // len(PRODUCTS) + 1}"
        slug = name.lower().replace(" ", "-")
        template = DemoTemplate.objects.create(
            slug=slug,
            name=name,
            tagline=f"{name} with sample data",
            description=f"A **{name.lower()}** demo with a sample data set.",
            entry_url="https://${DEMO_HOST}/",
            instructions="Log in as **admin** at ${DEMO_HOST}.\n\n1. Open the dashboard\n"
            "2. Create a record\n3. Show it to ${PROSPECT_NAME}",
            credentials="Username: admin\nPassword: demo",
            expiry_action=actions[index % len(actions)],
            max_lifetime=timedelta(hours=8),
            # Starting demos in the data set began up to a minute before it was built; a long
            # timeout keeps the sweep from failing them while a run measures (a repeat included).
            provisioning_timeout=timedelta(hours=1),
        )
        charts = CHARTS[: 1 + index % 3]
        for position, chart in enumerate(charts):
            TemplateChart.objects.create(
                template=template,
                position=position,
                repository="oci://registry.example.com/charts",
                chart=chart,
                version=f"1.{index % 4}.0",
                release_name=chart,
                namespace=chart,
                values="ingress:\n  host: ${DEMO_HOST}\nreplicas: 1\n",
            )
        # Published, as an admin would: the catalog offers published templates only.
        record_row_as_version(template=template, actor=Actor(label="bench"), note="Bench data.")
        owner = User(username="stand-in", first_name=_OWNER_NAME, email=_OWNER_EMAIL)
        sample = Demo(
            template=template,
            owner=owner,
            cluster_name=_CLUSTER,
            public_id=uuid.UUID(_PUBLIC_ID),
            prospect_name=_PROSPECT,
            prospect_company=_COMPANY,
        )
        spec_text = json.dumps(render_spec(sample))
        rendered.append(Rendered(template, spec_text, charts, str(template.expiry_action)))
    return rendered


# --- One demo's story --------------------------------------------------------------------------


@dataclass
class Story:
    """One demo's row and its timeline."""

    row: dict[str, Any]
    events: list[Event]
    snapshot: dict[str, Any] | None = None
    link_created: datetime | None = None  # a share link was made then (if any)
    cluster: dict[str, Any] | None = None  # a SimulatedCluster row, for demos owning one


class Storyteller:
    """Writes demos the way the lifecycle would have left them."""

    def __init__(self, rng: random.Random, now: datetime, templates: Sequence[Rendered]) -> None:
        self.rng = rng
        self.now = now
        self.templates = templates
        self.seen_names: set[str] = set()

    def cluster_name(self) -> str:
        while True:
            name = f"demo-{self.rng.getrandbits(64):016x}"
            if name not in self.seen_names:
                self.seen_names.add(name)
                return name

    def base_row(
        self, demo_id: int, owner: User, rendered: Rendered, requested: datetime
    ) -> dict[str, Any]:
        rng = self.rng
        name = self.cluster_name()
        public_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        company = rng.choice(COMPANIES)
        prospect = rng.choice(PROSPECTS)
        owner_name = owner.get_full_name() or owner.get_username()
        spec = (
            rendered.spec_text.replace(_CLUSTER, name)
            .replace(_PUBLIC_ID, public_id)
            .replace(_OWNER_NAME, owner_name)
            .replace(_OWNER_EMAIL, owner.email)
            .replace(_PROSPECT, prospect)
            .replace(_COMPANY, company)
        )
        return {
            "id": demo_id,
            "public_id": public_id,
            "template_id": rendered.template.pk,
            "template_version": rendered.template.version,
            "from_version_id": rendered.template.published_version_id,
            "spec": spec,
            "owner_id": owner.pk,
            "prospect_name": prospect,
            "prospect_company": company,
            "requested_at": requested,
            "status_changed_at": requested,
            "cluster_name": name,
            "lifetime": timedelta(hours=rng.choice((1, 2, 2, 2, 4, 8))),
            "steps": 0,
            "live_url": "",
            "urls": [],
        }

    def _spec(self, row: dict[str, Any]) -> dict[str, Any]:
        return json.loads(row["spec"])

    def start(self, row: dict[str, Any], rendered: Rendered, owner: User) -> list[Event]:
        """From the request to ready: what a start writes, with its timings."""
        rng = self.rng
        requested = row["requested_at"]
        queued = rng.random() < 0.1
        wait = timedelta(seconds=rng.uniform(20, 900)) if queued else timedelta(0)
        started = requested + wait
        up = started + timedelta(seconds=rng.uniform(0.2, 1.5))
        cluster_done = up + timedelta(seconds=rng.lognormvariate(math.log(25), 0.3))
        events = [
            Event(
                requested,
                "requested",
                f"Start requested for {row['prospect_company']}.",
                owner.pk,
                data={
                    "template_version": row["template_version"],
                    "lifetime_seconds": int(row["lifetime"].total_seconds()),
                },
            )
        ]
        if queued:
            events.append(
                Event(requested, "queued", "Capacity is full: queued until room frees up.")
            )
        events += [
            Event(
                started, "admitted", "Waiting for a worker to create the cluster.", None, "worker"
            ),
            Event(up, "provisioning", "Creating the cluster.", None, "worker"),
            Event(
                cluster_done,
                "progress",
                f"Creating the cluster: done ({format_duration(cluster_done - up)}).",
                None,
                "worker",
            ),
            Event(
                cluster_done,
                "installing",
                "Cluster is up; installing the charts.",
                None,
                "worker",
            ),
        ]
        at = cluster_done
        for chart in rendered.charts[:-1]:
            took = timedelta(seconds=rng.lognormvariate(math.log(12), 0.4))
            at += took
            events.append(
                Event(
                    at, "progress", f"Installing {chart}: done ({format_duration(took)}).",
                    None, "worker",
                )
            )  # fmt: skip
        ready = at + timedelta(seconds=rng.lognormvariate(math.log(15), 0.4))
        took = ready - started
        events.append(
            Event(
                ready,
                "ready",
                f"Ready after {format_duration(took)}.",
                None,
                "worker",
                {"seconds_to_ready": round(took.total_seconds(), 3)},
            )
        )
        steps = progress.initial(self._spec(row))
        steps = progress.mark(steps, "queued", progress.DONE, started)
        steps = progress.mark(steps, "cluster", progress.ACTIVE, up)
        row.update(
            started_at=started,
            ready_at=ready,
            time_to_ready=took,
            status=Status.READY,
            status_changed_at=ready,
            expires_at=ready + row["lifetime"],
            live_url=f"https://{row['cluster_name']}.demos.example.com/",
            urls=[f"https://{row['cluster_name']}.demos.example.com/"],
            progress=progress.all_done(steps, ready),
            steps=4 + len(rendered.charts),
        )
        return events

    def extend_and_warn(self, row: dict[str, Any], owner: User, events: list[Event]) -> None:
        rng = self.rng
        if rng.random() < 0.25:
            count = rng.choice((1, 1, 2))
            for n in range(count):
                at = row["expires_at"] - timedelta(minutes=rng.uniform(5, 50))
                row["expires_at"] += STEP
                events.append(
                    Event(
                        at,
                        "extended",
                        f"Extended until {timezone.localtime(row['expires_at']):%H:%M %Z} "
                        "(one more hour).",
                        owner.pk,
                    )
                )
                row["extension_count"] = n + 1
        if rng.random() < 0.4 and row["expires_at"] - row["ready_at"] > timedelta(hours=1):
            events.append(
                Event(
                    row["expires_at"] - timedelta(hours=1),
                    "warned",
                    "Reminded the owner that the demo ends in 60 minutes.",
                    None,
                    "scheduler",
                )
            )
            row["warnings_sent"] = [60]

    def fail(self, row: dict[str, Any], rendered: Rendered, owner: User) -> list[Event]:
        """A start that failed installing a chart, with the clean-up after it."""
        events = self.start(row, rendered, owner)
        failing = rendered.charts[-1]
        keep = [e for e in events if e.kind != "ready"]
        at = keep[-1].at + timedelta(seconds=self.rng.uniform(20, 300))
        message = (
            f"Chart `{failing}` failed: image pull error for "
            f"registry.example.com/{failing}:1.0.0 (simulated)."
        )
        keep.append(Event(at, "progress", f"Installing {failing}: failed.", None, "worker"))
        keep.append(
            Event(at, "failed", message, None, "worker", {"detail": "Back-off pulling image."})
        )
        keep.append(
            Event(
                at + timedelta(seconds=5), "cleaned-up", "Removed the half-created cluster.",
                None, "worker",
            )
        )  # fmt: skip
        steps = progress.initial(self._spec(row))
        steps = progress.mark(steps, "queued", progress.DONE, row["started_at"])
        steps = progress.mark(steps, "cluster", progress.DONE, row["started_at"])
        steps = progress.mark(steps, f"chart:{failing}", progress.ACTIVE, at)
        row.update(
            status=Status.FAILED,
            status_changed_at=at,
            failed_from=Status.INSTALLING,
            error_message=message,
            error_detail="Back-off pulling image.",
            ready_at=None,
            time_to_ready=None,
            expires_at=None,
            live_url="",
            urls=[],
            progress=progress.mark_failed(steps),
            steps=row["steps"] + 1,
        )
        return keep

    def delete(self, row: dict[str, Any], at: datetime, events: list[Event], kind: str) -> None:
        """Deleted by its owner (`deleting`) or by the scheduler at expiry (`expired`)."""
        text = {
            "deleting": "Deleting the demo and its cluster.",
            "expired": "Time is up: deleting the demo.",
            "retention": "Kept for the whole retention time: deleting it now.",
        }[kind]
        actor = (row["owner_id"], "") if kind == "deleting" else (None, "scheduler")
        events.append(Event(at, kind, text, *actor))
        done = at + timedelta(seconds=self.rng.uniform(3, 40))
        events.append(
            Event(done, "deleted", "Deleted; nothing is left of its cluster.", None, "worker")
        )
        row.update(
            status=Status.DELETED, status_changed_at=done, ended_at=done, expires_at=None,
            steps=row["steps"] + 2,
        )  # fmt: skip

    def historical(self, demo_id: int, owner: User, requested: datetime) -> Story:
        rng = self.rng
        rendered = rng.choice(self.templates)
        row = self.base_row(demo_id, owner, rendered, requested)
        if rng.random() < 0.08:
            events = self.fail(row, rendered, owner)
            if rng.random() < 0.75:  # most failures are deleted by their owner later
                self.delete(row, row["status_changed_at"] + timedelta(hours=1), events, "deleting")
            return Story(row, events)
        events = self.start(row, rendered, owner)
        link = None
        if rng.random() < 0.3:
            link = row["ready_at"] + timedelta(minutes=rng.uniform(1, 10))
            events.append(
                Event(link, "share-link-created", "Made a link for a prospect.", owner.pk)
            )
        self.extend_and_warn(row, owner, events)
        by_owner = rng.random() < 0.2
        end = (
            row["ready_at"] + (row["expires_at"] - row["ready_at"]) * rng.uniform(0.3, 0.9)
            if by_owner
            else row["expires_at"]
        )
        story = Story(row, events, link_created=link)
        if by_owner or rendered.action == ExpiryAction.DELETE:
            self.delete(row, end, events, "deleting" if by_owner else "expired")
        elif rendered.action == ExpiryAction.PAUSE:
            self.pause(row, end, events, story)
        else:
            self.archive(row, end, events, story)
        return story

    def pause(self, row: dict[str, Any], at: datetime, events: list[Event], story: Story) -> None:
        events.append(Event(at, "expired", "Time is up: pausing it for later.", None, "scheduler"))
        done = at + timedelta(seconds=self.rng.uniform(3, 20))
        keep_until = done + RETENTION
        events.append(
            Event(done, "paused", f"Kept for later until {keep_until:%Y-%m-%d}.", None, "worker")
        )
        row.update(
            status=Status.PAUSED, status_changed_at=done, keep_until=keep_until,
            expires_at=None, steps=row["steps"] + 1,
        )  # fmt: skip
        story.snapshot = {
            "kind": SnapshotKind.PAUSED,
            "created_at": done,
            "location": f"paused in place ({row['cluster_name']})",
            "restorable": True,
            "expires_at": keep_until,
        }
        if keep_until <= self.now:  # retention ran out: deleted by the scheduler
            self.delete(row, keep_until + timedelta(seconds=20), events, "retention")
            story.snapshot.update(discarded_at=row["ended_at"], restorable=False)
        else:
            story.cluster = self.cluster(row, paused=True)

    def archive(self, row: dict[str, Any], at: datetime, events: list[Event], story: Story) -> None:
        rng = self.rng
        events.append(Event(at, "expired", "Time is up: archiving it.", None, "scheduler"))
        location = f"s3://demo-archives/{row['cluster_name']}-{at:%Y%m%d}.tar.gz?region=eu-west-1"
        saved = at + timedelta(seconds=rng.uniform(20, 90))
        events.append(
            Event(
                saved, "snapshot", f"Snapshot saved to {location}.", None, "worker",
                {"location": location},
            )
        )  # fmt: skip
        done = saved + timedelta(seconds=rng.uniform(3, 30))
        keep_until = done + RETENTION
        events.append(
            Event(
                done, "archived", f"Archived to {location}; the cluster is deleted.", None,
                "worker", {"location": location},
            )
        )  # fmt: skip
        row.update(
            status=Status.ARCHIVED, status_changed_at=done, ended_at=done, keep_until=keep_until,
            expires_at=None, archive_location=location, steps=row["steps"] + 3,
        )  # fmt: skip
        story.snapshot = {
            "kind": SnapshotKind.ARCHIVED,
            "created_at": saved,
            "location": location,
            "restorable": True,
            "expires_at": keep_until,
        }
        if keep_until <= self.now:
            events.append(
                Event(
                    keep_until, "retention", "The archive passed its retention time.", None,
                    "scheduler",
                )
            )  # fmt: skip
            row["keep_until"] = None
            story.snapshot.update(
                discarded_at=keep_until, restorable=False, note="Retention time ended."
            )

    def cluster(self, row: dict[str, Any], *, paused: bool = False) -> dict[str, Any]:
        # An hour per simulated step: a starting demo stays where it is while it is measured.
        return {
            "name": row["cluster_name"],
            "spec": row["spec"],
            "applied_at": row.get("started_at") or row["requested_at"],
            "step_seconds": 3600.0,
            "fail_step": "",
            "paused": paused,
            "snapshots": [],
        }

    def live(self, demo_id: int, owner: User, status: Status) -> Story:
        """A demo of today: running, starting, queued, or kept for later."""
        rng = self.rng
        now = self.now
        rendered = rng.choice(self.templates)
        if status == Status.READY:
            # Ends two to eight hours from now: nothing expires or is warned while measured.
            expires = now + timedelta(hours=rng.uniform(2, 8))
            requested = expires - timedelta(hours=8) - timedelta(minutes=rng.uniform(2, 30))
            row = self.base_row(demo_id, owner, rendered, requested)
            row["lifetime"] = timedelta(hours=8)
            events = self.start(row, rendered, owner)
            row["expires_at"] = expires
            story = Story(row, events, cluster=self.cluster(row))
            if rng.random() < 0.5:
                story.link_created = row["ready_at"] + timedelta(minutes=rng.uniform(1, 10))
                events.append(
                    Event(
                        story.link_created, "share-link-created", "Made a link for a prospect.",
                        owner.pk,
                    )
                )  # fmt: skip
            return story
        if status == Status.PAUSED:
            requested = now - timedelta(days=rng.uniform(0.5, 13))
            row = self.base_row(demo_id, owner, rendered, requested)
            events = self.start(row, rendered, owner)
            story = Story(row, events)
            self.pause(row, row["expires_at"], events, story)
            return story
        if status == Status.QUEUED:
            requested = now - timedelta(minutes=rng.uniform(0.5, 30))
            row = self.base_row(demo_id, owner, rendered, requested)
            row.update(status=Status.QUEUED, progress=progress.initial(self._spec(row)))
            events = [
                Event(
                    requested, "requested", f"Start requested for {row['prospect_company']}.",
                    owner.pk,
                    data={"template_version": 1, "lifetime_seconds": 7200},
                ),
                Event(requested, "queued", "Capacity is full: queued until room frees up."),
            ]  # fmt: skip
            return Story(row, events)
        # Starting: requested within the last minute, half-way through, its next look an hour
        # away (its simulated cluster takes an hour per step), as `portal_data.starting_demo`.
        requested = now - timedelta(seconds=rng.uniform(5, 60))
        row = self.base_row(demo_id, owner, rendered, requested)
        events = self.start(row, rendered, owner)
        up = next(e.at for e in events if e.kind == "provisioning")
        events = [e for e in events if e.at <= up]
        steps = progress.initial(self._spec(row))
        steps = progress.mark(steps, "queued", progress.DONE, row["started_at"])
        steps = progress.mark(steps, "cluster", progress.ACTIVE, up)
        row.update(
            status=Status.PROVISIONING, status_changed_at=up, ready_at=None, time_to_ready=None,
            expires_at=None, live_url="", urls=[], progress=steps, steps=2,
            next_step_at=now + timedelta(hours=1),
        )  # fmt: skip
        return Story(row, events, cluster=self.cluster(row))


# --- The whole set -----------------------------------------------------------------------------


def spread_requests(rng: random.Random, now: datetime, count: int, days: int) -> list[datetime]:
    """Request times over the last `days` days (the last half day left to the live demos),
    mostly on working days and hours, oldest first."""
    times = []
    while len(times) < count:
        day = rng.uniform(0.5, days)
        at = now - timedelta(days=day)
        if at.weekday() >= 5 and rng.random() < 0.85:
            continue
        hour = rng.triangular(7, 19, 11)
        at = at.replace(hour=int(hour), minute=rng.randrange(60), second=rng.randrange(60))
        if at < now - timedelta(hours=12):
            times.append(at)
    return sorted(times)


def weighted_owners(rng: random.Random, people: Sequence[User]) -> list[float]:
    """Some sell more than others: a few people do three times the median's demos."""
    return [rng.lognormvariate(0, 0.45) for _ in people]


def choose_typical(counts: Counter[int], people: Sequence[User], how_many: int) -> list[int]:
    """The `how_many` salespeople whose number of demos is nearest the median."""
    ordered = sorted(counts[p.pk] for p in people)
    median = ordered[len(ordered) // 2]
    ranked = sorted(people, key=lambda p: (abs(counts[p.pk] - median), p.pk))
    return [p.pk for p in ranked[:how_many]]


LIVE_MIX = (
    (Status.READY, 0.40),
    (Status.PROVISIONING, 0.10),
    (Status.QUEUED, 0.10),
    (Status.PAUSED, 0.40),
)


def build(size: Size, *, seed: int = 2026, now: datetime | None = None) -> DataSet:
    """Build the data set into the (migrated, otherwise empty) database Django points at."""
    started = time.perf_counter()
    now = now or timezone.now()
    rng = random.Random(seed)
    people, bosses = make_people(size)
    templates = make_templates(size, rng)
    teller = Storyteller(rng, now, templates)
    weights = weighted_owners(rng, people)
    result = DataSet(managers=[b.pk for b in bosses])

    demo_id = next_id(Demo)
    requests = spread_requests(rng, now, size.historical, size.days)
    owners = rng.choices(people, weights=weights, k=size.historical)
    history_counts: Counter[int] = Counter(o.pk for o in owners)
    result.typical = choose_typical(history_counts, people, size.measured)
    stories: list[Story] = []
    for owner, requested in zip(owners, requests, strict=True):
        stories.append(teller.historical(demo_id, owner, requested))
        demo_id += 1

    # Live demos: every measured salesperson gets one running and one starting demo first (the
    # pages measured open those), the rest go by the same weights as the history.
    by_pk = {p.pk: p for p in people}
    plan: list[tuple[User, Status]] = []
    for pk in result.typical:
        plan += [(by_pk[pk], Status.READY), (by_pk[pk], Status.PROVISIONING)]
    statuses = [s for s, _w in LIVE_MIX]
    shares = [w for _s, w in LIVE_MIX]
    rest = max(size.live - len(plan), 0)
    plan += list(
        zip(
            rng.choices(people, weights=weights, k=rest),
            rng.choices(statuses, weights=shares, k=rest),
            strict=True,
        )
    )
    live_counts: Counter[int] = Counter()
    for owner, status in plan:
        story = teller.live(demo_id, owner, status)
        stories.append(story)
        live_counts[owner.pk] += 1
        if status == Status.READY:
            result.ready_demo.setdefault(owner.pk, story.row["public_id"])
        elif status == Status.PROVISIONING:
            result.starting_demo.setdefault(owner.pk, story.row["public_id"])
        demo_id += 1

    counts = write(stories, rng, result)
    reset_sequences(Demo, DemoEvent, Snapshot, ShareLink, ShareLinkVisit, SimulatedCluster)
    # Vacuumed and analysed, as autovacuum leaves a database with a year behind it (it may be off
    # on a benchmark machine): without the visibility map, every index-only scan of the hot
    # queries reads the table too. A transaction (the tests') cannot vacuum: analysed only.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)")
    result.counts = counts
    result.by_status = dict(Counter(str(s.row["status"]) for s in stories))
    result.historical_per_typical = [history_counts[pk] for pk in result.typical]
    result.live_per_typical = [live_counts[pk] for pk in result.typical]
    result.seconds = time.perf_counter() - started
    return result


def write(stories: list[Story], rng: random.Random, result: DataSet) -> dict[str, int]:
    """COPY every row in, children after their parents."""
    counts = {
        "demos": Table(Demo).copy(story.row for story in stories),
        "clusters": Table(SimulatedCluster).copy(
            {"id": number, **cluster}
            for number, cluster in enumerate(
                (s.cluster for s in stories if s.cluster), start=next_id(SimulatedCluster)
            )
        ),
    }
    snapshot_id = next_id(Snapshot)
    snapshots = []
    for story in stories:
        if story.snapshot:
            snapshots.append(
                {
                    "id": snapshot_id,
                    "demo_id": story.row["id"],
                    "template_id": story.row["template_id"],
                    **story.snapshot,
                }
            )
            snapshot_id += 1
    counts["snapshots"] = Table(Snapshot).copy(snapshots)
    links, visits = share_links(stories, rng, result)
    counts["share links"] = Table(ShareLink).copy(links)
    counts["share link visits"] = Table(ShareLinkVisit).copy(visits)
    # The first id is read before the COPY starts: the connection is busy until it ends.
    counts["events"] = Table(DemoEvent).copy(event_rows(stories, next_id(DemoEvent)))
    return counts


def share_links(
    stories: list[Story], rng: random.Random, result: DataSet
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One link for each story that made one, opened a few times. Links to running demos keep
    their token (the benchmark opens them as a prospect would); the rest are stored hashed
    only, as every link is."""
    link_id = next_id(ShareLink)
    visit_id = next_id(ShareLinkVisit)
    links, visits = [], []
    for story in stories:
        made = story.link_created
        if made is None:
            continue
        row = story.row
        token = f"{rng.getrandbits(256):064x}"
        running = row["status"] == Status.READY
        if running:
            result.prospect_tokens.append(token)
        opened = [
            made + timedelta(minutes=rng.uniform(2, 90)) for _ in range(rng.choice((0, 1, 2, 4)))
        ]
        # A running demo's link has been opened before: the first open (an email to the
        # owner) is not what the measured page view does.
        if running and not opened:
            opened = [made + timedelta(minutes=3)]
        opened.sort()
        links.append(
            {
                "id": link_id,
                "demo_id": row["id"],
                "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                "recipient": f"{row['prospect_name']} at {row['prospect_company']}",
                "note": "",
                "created_by_id": row["owner_id"],
                "created_at": made,
                "open_count": len(opened),
                "first_opened_at": opened[0] if opened else None,
                "last_opened_at": opened[-1] if opened else None,
            }
        )
        for at in opened:
            visits.append(
                {
                    "id": visit_id,
                    "link_id": link_id,
                    "visited_at": at,
                    "user_agent": rng.choice(AGENTS),
                    "client_address": f"203.0.{rng.randrange(256)}.0/24",
                }
            )
            visit_id += 1
        if opened:
            story.events.append(
                Event(
                    opened[0], "share-link-opened",
                    f"{links[-1]['recipient']} opened the demo link for the first time.",
                    None, "prospect", {"link": link_id},
                )
            )  # fmt: skip
        link_id += 1
    return links, visits


def event_rows(stories: list[Story], event_id: int) -> Iterator[dict[str, Any]]:
    for story in stories:
        for event in sorted(story.events, key=lambda e: e.at):
            yield {
                "id": event_id,
                "demo_id": story.row["id"],
                "created_at": event.at,
                "kind": event.kind,
                "actor_id": event.actor_id,
                "actor_label": event.label,
                "message": event.message,
                "data": event.data,
            }
            event_id += 1


def active_count() -> int:
    """Demos holding capacity now: the limit the benchmark's portal runs with, so the queued
    demos of the data set stay queued (a full portal, as on a busy afternoon)."""
    from demos.models import ACTIVE

    return Demo.objects.filter(status__in=ACTIVE).count()


def busiest_owner_active() -> int:
    from demos.models import ACTIVE

    counts = Counter(
        Demo.objects.filter(status__in=ACTIVE).values_list("owner_id", flat=True).iterator()
    )
    return max(counts.values(), default=0)
