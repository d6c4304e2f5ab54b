"""Drafts and versions: every change a template admin makes in the studio.

The template's row holds its published content, the one that demos start from and the catalog
shows; edits wait in its `TemplateDraft`. Publishing validates the draft again, writes it into
the row and records an immutable `TemplateVersion`; rolling back publishes an older version's
content as a new version. Demos keep the spec frozen at their start, so none of this changes a
running demo. Ready warm-pool spares of an older version are retired on publication, so a
salesperson never gets one; the pool refills with the new version.

Each change is recorded for the fleet's activity feed (Django's LogEntry, as the admin writes
it) when a person makes it; changes by commands carry a label instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from demos.catalog import services
from demos.engine import dispatch, lifecycle
from demos.errors import LifecycleError
from demos.models import LIVE, Demo, DemoTemplate, TemplateDraft, TemplateVersion
from demos.studio import documents
from demos.studio.forms import Editor, problems_of, validate_document


@dataclass(frozen=True)
class Actor:
    """Who changes a template: a person, or a command with a label."""

    user: Any = None
    label: str = ""

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.get_full_name() or self.user.get_username()
        return self.label or "system"

    @property
    def may_change_unsafe(self) -> bool:
        # Commands run by the operator, who holds the host anyway.
        return self.user is None or self.user.is_superuser


class PublishError(ValueError):
    """Content that cannot be published; `problems` are the editor's messages."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def log_change(template: DemoTemplate, actor: Actor, message: str, *, added: bool = False) -> None:
    """Who did what to a template, for the activity feed and the admin's history."""
    if actor.user is None:
        return
    LogEntry.objects.log_actions(
        actor.user.pk, [template], ADDITION if added else CHANGE, message, single_object=True
    )


# --- Reading content ---------------------------------------------------------------------------


def draft_of(template: DemoTemplate) -> TemplateDraft | None:
    return TemplateDraft.objects.filter(template=template).select_related("saved_by").first()


def is_published(template: DemoTemplate) -> bool:
    return template.published_version_id is not None


def published_content(template: DemoTemplate) -> dict[str, Any] | None:
    if not is_published(template):
        return None
    content = TemplateVersion.objects.get(pk=template.published_version_id).content
    return documents.with_defaults(content)


def working_content(template: DemoTemplate) -> dict[str, Any]:
    """What the editor opens: the draft if there is one, else the published content."""
    draft = draft_of(template)
    if draft is not None:
        return documents.with_defaults(draft.content)
    return published_content(template) or documents.content_of_template(template)


def default_content() -> dict[str, Any]:
    """A new template's document: the model's defaults and no charts."""
    document = documents.content_of_template(DemoTemplate())
    document["charts"] = []
    return document


# --- Drafts ------------------------------------------------------------------------------------


def create_template(*, document: dict[str, Any], actor: Actor) -> DemoTemplate:
    """A new, never-published template whose content is all in its draft.

    The row holds only its name and slug (and the model's defaults, so it starts no spares)
    until the first publication; the catalog does not list it.
    """
    with transaction.atomic():
        template = DemoTemplate.objects.create(slug=document["slug"], name=document["name"])
        TemplateDraft.objects.create(
            template=template,
            content=document,
            saved_by=actor.user,
            saved_by_label=actor.label,
        )
        log_change(template, actor, "Created as a draft in the template studio.", added=True)
    return template


def save_draft(*, template: DemoTemplate, document: dict[str, Any], actor: Actor) -> TemplateDraft:
    """Keep a validated edit as the template's draft, replacing any earlier draft."""
    with transaction.atomic():
        draft, _created = TemplateDraft.objects.update_or_create(
            template=template,
            defaults={
                "content": document,
                "saved_at": timezone.now(),
                "saved_by": actor.user,
                "saved_by_label": actor.label,
            },
            create_defaults={
                "content": document,
                "based_on": template.version if is_published(template) else None,
                "saved_by": actor.user,
                "saved_by_label": actor.label,
            },
        )
        log_change(template, actor, "Saved a draft in the template studio.")
    return draft


def discard_draft(*, template: DemoTemplate, actor: Actor) -> bool:
    """Drop the draft of a published template. True when there was one."""
    if not is_published(template):
        raise PublishError("A template that was never published has only its draft; keep it.")
    with transaction.atomic():
        deleted, _ = TemplateDraft.objects.filter(template=template).delete()
        if deleted:
            log_change(template, actor, "Discarded the draft in the template studio.")
    return bool(deleted)


def set_availability(*, template: DemoTemplate, enabled: bool, actor: Actor) -> bool:
    """Offer a published template in the catalog, or hide it. Not a new version."""
    with transaction.atomic():
        changed = services.set_template_enabled(template=template, enabled=enabled)
        if changed:
            log_change(
                template,
                actor,
                "Offered in the catalog." if enabled else "Hidden from the catalog.",
            )
    return changed


# --- Publishing --------------------------------------------------------------------------------


def check_content(
    template: DemoTemplate, document: dict[str, Any], actor: Actor
) -> tuple[dict[str, Any], Editor]:
    """Validate content with the editor's forms; the cleaned document and the editor."""
    current = working_content(template)
    editor = validate_document(
        document, template=template, current=current, allow_unsafe=actor.may_change_unsafe
    )
    if not editor.ok():
        return {}, editor
    return editor.document(), editor


def _next_number(template: DemoTemplate) -> int:
    highest = template.versions.aggregate(highest=Max("number"))["highest"] or 0
    if is_published(template):
        highest = max(highest, template.version)
    return highest + 1


def _publish(
    template: DemoTemplate, document: dict[str, Any], actor: Actor, note: str
) -> TemplateVersion:
    """Write `document` into the row as the next version. Caller holds the row's lock."""
    number = _next_number(template)
    version = TemplateVersion.objects.create(
        template=template,
        number=number,
        content=document,
        published_by=actor.user,
        published_by_label=actor.label,
        note=note,
    )
    documents.apply_content(template, document)
    DemoTemplate.objects.filter(pk=template.pk).update(
        version=number, published_version=version, updated_at=timezone.now()
    )
    template.version, template.published_version = number, version
    _retire_older_spares(template, number)
    log_change(template, actor, f"Published version {number}. {note}".strip())
    return version


def _retire_older_spares(template: DemoTemplate, number: int) -> None:
    spares = Demo.objects.filter(
        template=template, is_spare=True, status__in=LIVE, template_version__lt=number
    )
    for spare in spares:
        try:
            lifecycle.retire_spare(
                demo=spare,
                reason=f"Version {number} was published; spares of older versions are replaced.",
            )
        except LifecycleError:
            continue  # claimed meanwhile: that salesperson has it now
    if template.warm_pool_size:
        transaction.on_commit(lambda: dispatch.request_pool_refill(template.pk))


def _locked(template: DemoTemplate) -> DemoTemplate:
    return DemoTemplate.objects.select_for_update().get(pk=template.pk)


def publish_draft(*, template: DemoTemplate, actor: Actor, note: str = "") -> TemplateVersion:
    """Publish the draft: validated again (settings such as the allowed chart repositories may
    have changed since it was saved), then written into the row as a new version."""
    with transaction.atomic():
        locked = _locked(template)
        draft = draft_of(locked)
        if draft is None:
            raise PublishError("There is no draft to publish.")
        document, editor = check_content(locked, draft.content, actor)
        if not document:
            raise PublishError(
                "The draft has errors; open it in the editor and fix them.", problems_of(editor)
            )
        if is_published(locked) and document == published_content(locked):
            draft.delete()
            raise PublishError(
                f"The draft is the same as version {locked.version}; nothing to publish."
            )
        version = _publish(locked, document, actor, note)
        draft.delete()
    template.refresh_from_db()
    return version


def roll_back(*, template: DemoTemplate, number: int, actor: Actor) -> TemplateVersion:
    """Publish version `number`'s content again, as a new version. A draft stays as it is."""
    with transaction.atomic():
        locked = _locked(template)
        older = TemplateVersion.objects.filter(template=locked, number=number).first()
        if older is None:
            raise PublishError(f"There is no version {number}.")
        if number == locked.version:
            raise PublishError(f"Version {number} is the published version already.")
        document, editor = check_content(locked, older.content, actor)
        if not document:
            raise PublishError(
                f"Version {number} does not pass today's checks, so it cannot be published "
                "again. Copy what you need into a draft instead.",
                problems_of(editor),
            )
        version = _publish(locked, document, actor, f"Rolled back to version {number}.")
    template.refresh_from_db()
    return version


def publish_document(
    *, template: DemoTemplate, document: dict[str, Any], actor: Actor, note: str
) -> TemplateVersion:
    """Publish validated content directly (the import command's --publish)."""
    with transaction.atomic():
        locked = _locked(template)
        version = _publish(locked, document, actor, note)
        TemplateDraft.objects.filter(template=locked).delete()
    template.refresh_from_db()
    return version


def record_row_as_version(*, template: DemoTemplate, actor: Actor, note: str) -> TemplateVersion:
    """Record what the row holds now as its published version (number `template.version`).

    For content written straight into the row: seeded templates, and saves in the Django
    admin, which bump the version number themselves.
    """
    with transaction.atomic():
        locked = _locked(template)
        version = TemplateVersion.objects.create(
            template=locked,
            number=locked.version,
            content=documents.content_of_template(locked),
            published_by=actor.user,
            published_by_label=actor.label,
            note=note,
        )
        DemoTemplate.objects.filter(pk=template.pk).update(published_version=version)
    template.refresh_from_db()
    return version
