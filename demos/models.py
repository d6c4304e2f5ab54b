"""The portal's state. The database is the source of truth; Redis only triggers work.

Every change of `Demo.status` goes through `demos.engine.lifecycle`; nothing else writes it.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

KUBERNETES_VERSIONS = ["v1.30.2", "v1.31.1", "v1.32.1", "v1.33.4", "v1.34.0", "v1.35.0", "v1.36.0"]


class ExpiryAction(models.TextChoices):
    DELETE = "delete", "Delete it"
    PAUSE = "pause", "Pause it (keep for later)"
    ARCHIVE = "archive", "Archive a snapshot, then delete it"


class DemoTemplate(models.Model):
    """A product demo admins offer in the catalog: what to install and how long it may live."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    tagline = models.CharField(max_length=200, blank=True)
    description = models.TextField(
        blank=True, help_text="Markdown. Shown in the catalog: notes for the sales team."
    )
    # What a prospect reads on their landing page; the catalog's description is for the sales
    # team ("Good for retail prospects") and never shown to them.
    prospect_description = models.TextField(
        blank=True, help_text="Markdown. Shown to prospects on their landing page."
    )
    icon = models.CharField(
        max_length=16, default="cube", help_text="One of the portal's product icons."
    )
    colour = models.CharField(
        max_length=7, default="#4f46e5", help_text="Accent colour as #rrggbb."
    )
    enabled = models.BooleanField(default=True)

    kubernetes_version = models.CharField(
        max_length=16, choices=[(v, v) for v in KUBERNETES_VERSIONS], default="v1.35.0"
    )
    control_plane_cpu = models.CharField(max_length=16, default="200m")
    control_plane_memory = models.CharField(max_length=16, default="256Mi")
    storage_size = models.CharField(max_length=16, default="5Gi")
    quota_cpu = models.CharField(max_length=16, default="4", help_text="Resource quota: CPU.")
    quota_memory = models.CharField(max_length=16, default="8Gi")
    quota_pods = models.PositiveIntegerField(default=50)
    vcluster_overrides = models.TextField(
        "vCluster overrides",
        blank=True,
        help_text="Extra vcluster.yaml as YAML, merged over the rendered values. Only the "
        "settings listed in docs/vcluster.md (sync of kinds, quota and limits within bounds, "
        "control-plane resources) are accepted.",
    )
    unsafe_vcluster_overrides = models.TextField(
        "unsafe vCluster overrides",
        blank=True,
        help_text="Superusers only: vcluster.yaml that may weaken a demo's isolation from the "
        "host (privileges, host objects, RBAC). Merged last; every change is recorded in the "
        "template's history.",
    )

    entry_url = models.CharField(
        max_length=300,
        default="https://${DEMO_HOST}/",
        help_text="The live link. May use variables such as ${DEMO_HOST}.",
    )
    instructions = models.TextField(
        blank=True, help_text="Markdown shown with the live link. May use variables."
    )
    credentials = models.TextField(
        blank=True, help_text="YAML mapping of label to value, e.g. `Username: admin`."
    )
    allow_kubeconfig_download = models.BooleanField(default=False)

    default_lifetime = models.DurationField(default=timedelta(hours=2))
    max_lifetime = models.DurationField(default=timedelta(hours=8))
    extension_step = models.DurationField(default=timedelta(hours=1))
    max_extensions = models.PositiveIntegerField(default=3)
    expiry_action = models.CharField(
        max_length=16, choices=ExpiryAction.choices, default=ExpiryAction.DELETE
    )
    retention = models.DurationField(
        default=timedelta(days=14), help_text="How long paused or archived demos are kept."
    )
    provisioning_timeout = models.DurationField(default=timedelta(minutes=15))
    max_concurrent = models.PositiveIntegerField(
        default=0, help_text="Active demos of this template at once (0 = no limit)."
    )

    warm_pool_size = models.PositiveIntegerField(default=0, help_text="Ready spares (0 = off).")
    warm_pool_schedule = models.CharField(
        max_length=100,
        blank=True,
        help_text="Cron expression of when the pool is kept full, e.g. `* 8-18 * * 1-5`.",
    )
    warm_pool_max_age = models.DurationField(default=timedelta(hours=12))

    # Live links (demos.gate): a demo nobody uses goes to sleep and wakes when opened again.
    sleep_after = models.DurationField(
        null=True,
        blank=True,
        help_text="Put a running demo to sleep after this long without anyone using its live "
        "link; it wakes when opened again and keeps the time it had left. Empty: never.",
    )
    entry_service = models.CharField(
        max_length=200,
        blank=True,
        help_text="The Service inside the vCluster that serves the live link, as "
        "namespace/name:port (e.g. default/shop:80). The portal routes the demo's host to it "
        "through its gate.",
    )

    # Repeated failures take a template out of the catalog until an admin puts it back.
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    flagged_at = models.DateTimeField(null=True, blank=True, editable=False)
    flag_reason = models.CharField(max_length=300, blank=True, editable=False)

    version = models.PositiveIntegerField(default=1, editable=False)
    # What the catalog offers and demos start from: this row holds the published content, and
    # edits wait in a `TemplateDraft` until published. Empty until the first publication, and
    # a template that was never published is not offered anywhere.
    published_version = models.ForeignKey(
        "TemplateVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TemplateChart(models.Model):
    """One Helm chart of a template, installed in `position` order."""

    template = models.ForeignKey(DemoTemplate, on_delete=models.CASCADE, related_name="charts")
    position = models.PositiveIntegerField(default=0)
    repository = models.CharField(max_length=300, help_text="https:// or oci:// repository.")
    chart = models.CharField(max_length=100)
    version = models.CharField(max_length=50)
    release_name = models.CharField(max_length=53)
    namespace = models.CharField(max_length=63, default="default")
    values = models.TextField(blank=True, help_text="YAML values. May use variables.")

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "release_name"], name="unique_release_per_template"
            )
        ]

    def __str__(self) -> str:
        return f"{self.release_name} ({self.chart} {self.version})"


class TemplateSpeed(models.Model):
    """How long a template's demos typically take to be ready: the median of its latest demos,
    kept up to date as each becomes ready (demos.engine.speeds), so the catalog reads one row per
    template instead of scanning its history on every view."""

    template = models.OneToOneField(
        DemoTemplate, on_delete=models.CASCADE, primary_key=True, related_name="speed"
    )
    typical_time_to_ready = models.DurationField(null=True, blank=True)
    samples = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.template_id}: {self.typical_time_to_ready}"


class TemplateVersion(models.Model):
    """One published state of a template, never changed afterwards.

    `content` is the template document (settings, charts and their values) in the shape the
    studio exports as YAML, so any two versions can be compared and any one published again.
    """

    template = models.ForeignKey(DemoTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content = models.JSONField()
    published_at = models.DateTimeField(default=timezone.now)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    published_by_label = models.CharField(
        max_length=100, blank=True, help_text="Who published it when not a person, e.g. seed."
    )
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "number"], name="unique_version_number_per_template"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template.name} version {self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Demos record the version they started from: rewriting one would rewrite history.
        if not self._state.adding:
            raise ValueError("A published template version never changes; publish a new one.")
        super().save(*args, **kwargs)

    @property
    def published_by_name(self) -> str:
        if self.published_by is not None:
            return self.published_by.get_full_name() or self.published_by.get_username()
        return self.published_by_label or "system"


class TemplateDraft(models.Model):
    """Unpublished edits of a template, as a template document (see `TemplateVersion`)."""

    template = models.OneToOneField(DemoTemplate, on_delete=models.CASCADE, related_name="draft")
    content = models.JSONField()
    based_on = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version number it started from; empty for new."
    )
    saved_at = models.DateTimeField(default=timezone.now)
    saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    saved_by_label = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return f"Draft of {self.template.name}"

    @property
    def saved_by_name(self) -> str:
        if self.saved_by is not None:
            return self.saved_by.get_full_name() or self.saved_by.get_username()
        return self.saved_by_label or "system"


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    REQUESTED = "requested", "Requested"
    PROVISIONING = "provisioning", "Creating cluster"
    INSTALLING = "installing", "Installing"
    READY = "ready", "Ready"
    PAUSING = "pausing", "Pausing"
    PAUSED = "paused", "Kept for later"
    RESUMING = "resuming", "Resuming"
    ARCHIVING = "archiving", "Archiving"
    ARCHIVED = "archived", "Archived"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"
    # Idle demos sleep (paused in place, their time left kept) and wake when their link is opened.
    SLEEPING = "sleeping", "Going to sleep"
    ASLEEP = "asleep", "Asleep"
    WAKING = "waking", "Waking up"


# Named groups of states. Code asks these, never lists states of its own.
STARTING = frozenset({Status.REQUESTED, Status.PROVISIONING, Status.INSTALLING})
WORKING = STARTING | {
    Status.PAUSING,
    Status.RESUMING,
    Status.ARCHIVING,
    Status.DELETING,
    Status.SLEEPING,
    Status.WAKING,
}
# Asleep, or on the way there or back: the demo keeps its time left and its slot.
RESTING = frozenset({Status.SLEEPING, Status.ASLEEP, Status.WAKING})
KEPT = frozenset({Status.PAUSED, Status.ARCHIVED})
# Starting or running: a warm-pool spare that is there, or will be.
LIVE = STARTING | {Status.READY}
ENDED = frozenset({Status.DELETED, Status.ARCHIVED})
# Occupying capacity: anything with a cluster that runs (or is about to run).
# A sleeping demo keeps its slot: it wakes, without asking for room, when its link is opened.
ACTIVE = STARTING | RESTING | {Status.READY, Status.PAUSING, Status.RESUMING, Status.ARCHIVING}
# The status panel stops polling in these.
SETTLED = frozenset(
    {Status.READY, Status.ASLEEP, Status.PAUSED, Status.ARCHIVED, Status.DELETED, Status.FAILED}
)
# A cluster exists on the backend for these, and belongs to the demo.
OWNS_CLUSTER = WORKING | {Status.READY, Status.PAUSED, Status.ASLEEP}
# What the fleet overview lists (besides kept archives and recent failures): queued, or owning
# a cluster.
ON_THE_FLEET = OWNS_CLUSTER | {Status.QUEUED}
# Still in play for its owner: not kept for later and not ended.
OPEN = frozenset(Status) - KEPT - {Status.DELETED}
# A demo that failed in one of these still owns a cluster worth keeping (its data): nothing
# deletes it until a person decides.
FAILED_KEEPING = RESTING | {Status.PAUSING, Status.RESUMING, Status.ARCHIVING, Status.PAUSED}

# The sections of a person's demos besides the open ones. An archive is kept while its snapshot
# is (keep_until), then it counts as ended. Also the conditions of the indexes that page them.
IS_KEPT = Q(status=Status.PAUSED) | Q(status=Status.ARCHIVED, keep_until__isnull=False)
IS_ENDED = Q(status=Status.DELETED) | Q(status=Status.ARCHIVED, keep_until__isnull=True)


# What `DemoQuerySet.for_lists` leaves out (spec stays: a row's Extend button reads its policy).
LIST_DEFERRED = (
    "progress", "urls", "warnings_sent", "kubeconfig_sealed", "error_detail", "start_token",
    "archive_location",
    "template__description", "template__prospect_description", "template__vcluster_overrides",
    "template__unsafe_vcluster_overrides", "template__instructions", "template__credentials",
    # What only the start of a demo reads (its size, quotas, entry, warm pool, health): a list
    # shows a template's name and icon and asks its policies, and builds 45 of them a page.
    "template__tagline", "template__kubernetes_version", "template__control_plane_cpu",
    "template__control_plane_memory", "template__storage_size", "template__quota_cpu",
    "template__quota_memory", "template__quota_pods", "template__entry_url",
    "template__allow_kubeconfig_download", "template__provisioning_timeout",
    "template__warm_pool_size", "template__warm_pool_schedule", "template__warm_pool_max_age",
    "template__entry_service", "template__consecutive_failures", "template__flag_reason",
    "template__created_at",
    "owner__password",
)  # fmt: skip


class DemoQuerySet(models.QuerySet["Demo"]):
    def visible(self) -> "DemoQuerySet":
        """Demos a person can see: everything but unclaimed warm-pool spares and template
        admins' test launches (the template studio lists those)."""
        return self.filter(is_spare=False, is_test_launch=False)

    def working(self) -> "DemoQuerySet":
        """Demos a background step is driving toward another state."""
        return self.filter(status__in=WORKING)

    def for_lists(self) -> "DemoQuerySet":
        """Without the columns no list of demos shows: the start-up progress, the sealed
        kubeconfig, failure details, and the templates' and owners' long text. A page of rows
        parses a quarter of the JSON it did, and builds smaller objects. A row that reads one of
        these anyway costs a query each, which the pages' query-count tests would catch."""
        return self.defer(*LIST_DEFERRED)

    def owning_clusters(self) -> "DemoQuerySet":
        """Demos whose cluster must be kept: the orphan sweep deletes every other."""
        return self.filter(
            Q(status__in=OWNS_CLUSTER) | Q(status=Status.FAILED, failed_from__in=FAILED_KEEPING)
        )


def _new_public_id() -> uuid.UUID:
    return uuid.uuid4()


class Demo(models.Model):
    """One launched demo environment, from request to its end."""

    public_id = models.UUIDField(default=_new_public_id, unique=True, editable=False)
    # No index of their own: the composite indexes below start with these columns.
    template = models.ForeignKey(
        DemoTemplate, on_delete=models.PROTECT, related_name="demos", db_index=False
    )
    template_version = models.PositiveIntegerField(default=1)
    # The published version it started from. Empty for test launches (started from a draft)
    # and for demos started before versions were kept.
    from_version = models.ForeignKey(
        TemplateVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="demos",
    )
    # Started from a draft in the template studio: only template admins see it there, and it
    # stays out of everyone's lists of demos.
    is_test_launch = models.BooleanField(default=False)
    spec = models.JSONField(default=dict, help_text="Frozen rendered spec it was started from.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="demos",
        db_index=False,
    )
    prospect_name = models.CharField(max_length=100, blank=True)
    prospect_company = models.CharField(max_length=100, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    status_changed_at = models.DateTimeField(default=timezone.now)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    keep_until = models.DateTimeField(null=True, blank=True)
    lifetime = models.DurationField(default=timedelta(hours=2))
    extension_count = models.PositiveIntegerField(default=0)
    warnings_sent = models.JSONField(default=list, blank=True)

    cluster_name = models.CharField(max_length=63, unique=True)
    # The background steps that drive a demo: `steps` numbers them (each job id carries it, so a
    # stale job knows it is stale) and `next_step_at` says when the next one is due, so the sweep
    # can tell a lost step from one that is merely waiting.
    steps = models.PositiveIntegerField(default=0)
    next_step_at = models.DateTimeField(null=True, blank=True)
    # Where this demo's archive goes, chosen once, so every step of an archive follows the same
    # snapshot.
    archive_location = models.CharField(max_length=500, blank=True)
    # The kubeconfig prospects may download, captured by the worker when the demo became ready,
    # encrypted (portal.sealing). Empty when the template does not offer downloads.
    kubeconfig_sealed = models.TextField(blank=True)

    live_url = models.URLField(max_length=500, blank=True)
    urls = models.JSONField(default=list, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    time_to_ready = models.DurationField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)
    failed_from = models.CharField(max_length=16, blank=True, help_text="Status it failed in.")
    # A random value from the start form: a double submit finds the demo the first one made.
    start_token = models.CharField(max_length=64, blank=True)

    # Sleep (demos.engine.sleep): when it fell asleep, the time it had left then (given back when
    # it wakes), and how long it has slept in all, for the fleet's "hours saved".
    # Kept for later: the time it had left when paused, given back when it resumes.
    paused_remaining = models.DurationField(null=True, blank=True)
    asleep_since = models.DateTimeField(null=True, blank=True)
    sleep_remaining = models.DurationField(null=True, blank=True)
    slept = models.DurationField(default=timedelta(0))

    # Colleagues the owner added: they see the demo and act on it as the owner does.
    colleagues = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="shared_demos"
    )
    # A prospect asked for more time and nobody has answered yet: a badge with one-click Extend.
    more_time_requested_at = models.DateTimeField(null=True, blank=True)

    is_spare = models.BooleanField(default=False)
    claimed_at = models.DateTimeField(null=True, blank=True)
    restored_from = models.ForeignKey(
        "Snapshot", on_delete=models.SET_NULL, null=True, blank=True, related_name="restores"
    )

    objects = DemoQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            # The sweep's queries: due demos, stuck demos, the queue. Partial indexes keep them
            # proportional to the live demos, not the whole history.
            models.Index(fields=["expires_at"], name="demo_due_idx", condition=Q(status="ready")),
            models.Index(fields=["status", "status_changed_at"], name="demo_status_idx"),
            # The queue in its order, and the fleet filtered by one status.
            models.Index(fields=["status", "requested_at"], name="demo_status_requested_idx"),
            # Newest first: lists of everyone's demos (read backwards, stopping after a page)
            # and the CSV export (forwards, streamed).
            models.Index(fields=["requested_at", "id"], name="demo_requested_idx"),
            # Ended demos, most recently ended first, for everyone (managers) or one owner.
            models.Index(fields=["-ended_at", "-id"], name="demo_ended_idx", condition=IS_ENDED),
            models.Index(
                fields=["owner", "-ended_at", "-id"],
                name="demo_owner_ended_idx",
                condition=IS_ENDED,
            ),
            # Kept demos in the order their time runs out: the lists, and retention's sweep.
            models.Index(
                fields=["keep_until", "id"],
                name="demo_kept_idx",
                condition=Q(status__in=sorted(KEPT)),
            ),
            models.Index(fields=["owner", "status"], name="demo_owner_idx"),
            models.Index(fields=["template", "status"], name="demo_template_idx"),
            # Warm-pool spares per template: the catalog and the pools read these on every view
            # and sweep, among a history with none.
            models.Index(
                fields=["template", "status"], name="demo_spare_idx", condition=Q(is_spare=True)
            ),
            # Demos that ever slept, by end: the fleet's hours saved by sleep read these only
            # (demos.fleet.selectors.sleep_savings), not the whole history.
            models.Index(
                fields=["ended_at"],
                name="demo_slept_idx",
                condition=Q(slept__gt=timedelta(0)) | Q(asleep_since__isnull=False),
            ),
            # A template's latest ready demos: its typical time to ready (demos.engine.speeds).
            models.Index(
                fields=["template", "-ready_at"],
                name="demo_template_ready_idx",
                condition=Q(time_to_ready__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "start_token"],
                condition=~Q(start_token=""),
                name="unique_start_token_per_owner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.template.name} · {self.cluster_name}"

    @property
    def is_settled(self) -> bool:
        return self.status in SETTLED

    @property
    def time_left(self) -> timedelta | None:
        """Until expiry while running, until discarded while kept; None when neither applies."""
        return time_left(self.status, self.expires_at, self.keep_until)


def time_left(
    status: str, expires_at: datetime | None, keep_until: datetime | None
) -> timedelta | None:
    """`Demo.time_left` from the three columns it reads (a list's rows may have only those)."""
    if status == Status.READY and expires_at:
        return max(expires_at - timezone.now(), timedelta(0))
    if keep_until:
        return max(keep_until - timezone.now(), timedelta(0))
    return None


class DemoEvent(models.Model):
    """Append-only timeline and audit trail of a demo."""

    # Indexed with the id below: a demo's timeline, and its newest event (the poll's version).
    demo = models.ForeignKey(Demo, on_delete=models.CASCADE, related_name="events", db_index=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=40)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    actor_label = models.CharField(max_length=100, blank=True, help_text="e.g. scheduler")
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["demo", "id"], name="demoevent_demo_id_idx"),
            # The fleet's failures of the last day, among a million events of every kind.
            models.Index(
                fields=["created_at"], name="demoevent_failed_idx", condition=Q(kind="failed")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind}: {self.message}"

    @property
    def actor_name(self) -> str:
        if self.actor is not None:
            return self.actor.get_full_name() or self.actor.get_username()
        return self.actor_label or "system"


class SnapshotKind(models.TextChoices):
    PAUSED = "paused", "Paused in place"
    ARCHIVED = "archived", "Archived to storage"


class Snapshot(models.Model):
    """A demo kept for later: paused in place, or archived as a snapshot."""

    demo = models.ForeignKey(Demo, on_delete=models.CASCADE, related_name="snapshots")
    template = models.ForeignKey(DemoTemplate, on_delete=models.PROTECT, related_name="snapshots")
    kind = models.CharField(max_length=16, choices=SnapshotKind.choices)
    created_at = models.DateTimeField(default=timezone.now)
    location = models.CharField(max_length=500, blank=True)
    restorable = models.BooleanField(default=True)
    note = models.CharField(max_length=300, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    discarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.demo.cluster_name}"


class ShareLink(models.Model):
    """A prospect's way in. Only the hash of the token is stored."""

    demo = models.ForeignKey(Demo, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    # With the portal's key, the token is derived from the link's id and this salt, so its owner
    # can copy the link again; the database alone can no more rebuild it than before. Empty for
    # links made before (shown once).
    token_salt = models.CharField(max_length=32, blank=True)
    recipient = models.CharField(max_length=200, help_text="Name and/or email of the prospect.")
    note = models.TextField(blank=True, help_text="Shown to the prospect on the landing page.")
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the link lives as long as the demo."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    open_count = models.PositiveIntegerField(default=0)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    # The first time the prospect went through the gate into the live app (demos.gate).
    first_entered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Link for {self.recipient}"


class Engagement(models.Model):
    """How one visitor used a demo's live app, through one share link or as one team member.

    Written in batches from per-minute counts the gate keeps in Redis (demos.gate.engagement),
    never once per request. A session is a run of active minutes without a long gap; every
    session after the first is a return visit.
    """

    demo = models.ForeignKey(Demo, on_delete=models.CASCADE, related_name="engagements")
    link = models.ForeignKey(
        ShareLink, on_delete=models.CASCADE, null=True, blank=True, related_name="engagements"
    )
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    active_minutes = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["demo", "link"],
                condition=Q(link__isnull=False),
                name="unique_engagement_per_link",
            ),
            models.UniqueConstraint(
                fields=["demo", "member"],
                condition=Q(member__isnull=False),
                name="unique_engagement_per_member",
            ),
            models.CheckConstraint(
                condition=Q(link__isnull=True) ^ Q(member__isnull=True),
                name="engagement_link_or_member",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.demo_id}: {self.active_minutes} active minutes"

    @property
    def return_visits(self) -> int:
        return max(self.sessions - 1, 0)


class ShareLinkVisit(models.Model):
    link = models.ForeignKey(ShareLink, on_delete=models.CASCADE, related_name="visits")
    visited_at = models.DateTimeField(default=timezone.now)
    user_agent = models.CharField(max_length=300, blank=True)
    client_address = models.CharField(max_length=64, blank=True, help_text="Truncated.")

    class Meta:
        ordering = ["-visited_at"]

    def __str__(self) -> str:
        return f"{self.link.recipient} at {self.visited_at:%Y-%m-%d %H:%M}"


class SimulatedCluster(models.Model):
    """State of the simulated backend's clusters, so it survives worker restarts.

    Lives in the database rather than in worker memory: any worker can observe any cluster, and
    the phase is computed from `applied_at`, so no process has to stay alive to move it along.
    """

    name = models.CharField(max_length=63, unique=True)
    spec = models.JSONField(default=dict)
    applied_at = models.DateTimeField(default=timezone.now)
    step_seconds = models.FloatField(default=0)
    fail_step = models.CharField(max_length=100, blank=True)
    paused = models.BooleanField(default=False)
    snapshots = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    """A person's own settings."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text="An IANA zone such as Europe/Berlin; empty: the browser's own zone.",
    )
    # What a prospect sees of the salesperson on their landing page.
    job_title = models.CharField(max_length=100, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    booking_url = models.URLField(
        max_length=500, blank=True, help_text="A link where prospects book a meeting."
    )
    # A small image (PNG, JPEG or WebP, checked and size-limited on upload), kept in the database
    # so every web process serves it without shared file storage.
    photo = models.BinaryField(blank=True, default=b"")
    photo_type = models.CharField(max_length=20, blank=True)
    photo_updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Profile of {self.user}"


class Branding(models.Model):
    """How the portal presents itself to prospects: one row, set by an admin."""

    name = models.CharField(
        max_length=100, default="Demo portal", help_text="The company name prospects see."
    )
    accent_colour = models.CharField(
        max_length=7, default="#4f46e5", help_text="Buttons and links on prospect pages, #rrggbb."
    )
    website = models.URLField(max_length=300, blank=True)
    # As with profile photos: a small checked image kept in the database.
    logo = models.BinaryField(blank=True, default=b"")
    logo_type = models.CharField(max_length=20, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "branding"

    def __str__(self) -> str:
        return self.name
