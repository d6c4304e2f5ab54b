"""Templates as one YAML document each, so they can live in git and move between portals.

An import is validated exactly like the editor (the document goes through the editor's forms,
`demos.studio.forms.validate_document`), then becomes the template's draft, or is published at
once when asked. Exporting what was imported gives the same bytes back: the document is stored
as the forms cleaned it, and written in a fixed order and style (demos.studio.documents).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from demos.models import DemoTemplate, TemplateVersion
from demos.studio import documents, versions
from demos.studio.forms import problems_of, validate_document
from demos.studio.versions import Actor

PUBLISHED, DRAFT = "published", "draft"


class ExportError(ValueError):
    pass


def export_template(template: DemoTemplate, *, source: str = PUBLISHED) -> str:
    """The template's published content (or its draft) as YAML."""
    if source == DRAFT:
        draft = versions.draft_of(template)
        if draft is None:
            raise ExportError(f"Template {template.slug} has no draft.")
        return documents.to_yaml(draft.content)
    content = versions.published_content(template)
    if content is None:
        raise ExportError(
            f"Template {template.slug} was never published; export its draft instead."
        )
    return documents.to_yaml(content)


@dataclass
class ImportResult:
    template: DemoTemplate | None = None
    created: bool = False
    published: TemplateVersion | None = None
    # Published with `publish`, but the same as the published version: nothing new was made.
    unchanged: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def import_template(text: str, *, actor: Actor, publish: bool = False) -> ImportResult:
    """Read a template document and keep it as the draft of the template with its slug (a new
    template when there is none), or publish it at once with `publish`.

    Nothing is written when there are problems.
    """
    try:
        document = documents.parse_yaml_document(text)
    except documents.DocumentError as exc:
        return ImportResult(problems=[str(exc)])
    slug = str(document.get("slug") or "")
    template = DemoTemplate.objects.filter(slug=slug).first()
    current = versions.working_content(template) if template else versions.default_content()
    editor = validate_document(
        document, template=template, current=current, allow_unsafe=actor.may_change_unsafe
    )
    if not editor.ok():
        return ImportResult(template=template, problems=problems_of(editor))
    cleaned = editor.document()
    with transaction.atomic():
        created = template is None
        if template is None:
            template = versions.create_template(document=cleaned, actor=actor)
        else:
            versions.save_draft(template=template, document=cleaned, actor=actor)
        versions.log_change(template, actor, "Imported from a YAML file.")
        if not publish:
            return ImportResult(template=template, created=created)
        if versions.published_content(template) == cleaned:
            versions.discard_draft(template=template, actor=actor)
            return ImportResult(template=template, unchanged=True)
        published = versions.publish_document(
            template=template, document=cleaned, actor=actor, note="Imported."
        )
    return ImportResult(template=template, created=created, published=published)


def suggested_filename(template: DemoTemplate, source: str = PUBLISHED) -> str:
    suffix = "-draft" if source == DRAFT else f"-v{template.version}"
    return f"{template.slug}{suffix}.yaml"
