"""The studio's pages, for template admins and superusers; everyone else gets 403.

Views read through `selectors`, change through `versions`, `launches`, `import_export` and the
catalog's `services`, and validate through the editor's forms; none of them writes a model itself.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from demos import roles
from demos.catalog import services
from demos.engine.lifecycle import Actor as LifecycleActor
from demos.engine.lifecycle import delete_demo
from demos.errors import LifecycleError
from demos.guards import role_required
from demos.models import Demo, DemoTemplate, TemplateVersion
from demos.sales.forms import new_start_token
from demos.studio import documents, import_export, launches, selectors, versions
from demos.studio.diff import diff_documents
from demos.studio.forms import Editor, editor_for
from demos.studio.preview import SampleForm, preview_content
from demos.studio.versions import Actor, PublishError

# Logged in, and a template admin or superuser: the one check for every studio page.
studio_access = role_required(
    roles.is_template_admin, "The template studio is for template admins."
)


def _template(slug: str) -> DemoTemplate:
    return get_object_or_404(DemoTemplate, slug=slug)


def _actor(request: HttpRequest) -> Actor:
    return Actor(user=request.user)


# --- The list ----------------------------------------------------------------------------------


@studio_access
@require_GET
def template_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "studio/list.html",
        {"rows": selectors.template_rows(), "flag_after": settings.DEMO_TEMPLATE_FLAG_AFTER},
    )


# --- The editor --------------------------------------------------------------------------------


def _editor_context(
    request: HttpRequest, editor: Editor, template: DemoTemplate | None, **extra: Any
) -> dict[str, Any]:
    bound = editor.form.is_bound
    return {
        "template": template,
        "editor": editor,
        "sections": editor.sections(),
        "summary": editor.summary() if bound else [],
        "sample": extra.pop("sample", None) or SampleForm(),
        "draft": versions.draft_of(template) if template else None,
        **extra,
    }


def _current(template: DemoTemplate | None) -> dict[str, Any]:
    return versions.working_content(template) if template else versions.default_content()


def _edit(request: HttpRequest, template: DemoTemplate | None) -> HttpResponse:
    actor = _actor(request)
    data = request.POST if request.method == "POST" else None
    editor = editor_for(
        _current(template), template=template, allow_unsafe=actor.may_change_unsafe, data=data
    )
    if data is not None and editor.is_valid():
        document = editor.document()
        if template is None:
            template = versions.create_template(document=document, actor=actor)
            messages.success(
                request,
                f"Created “{template.name}” as a draft. Salespeople do not see it until you "
                "publish it.",
            )
        else:
            versions.save_draft(template=template, document=document, actor=actor)
            messages.success(
                request,
                "Draft saved. Salespeople keep getting the published version until you "
                "publish this draft.",
            )
        return redirect("demos:studio_template", slug=template.slug)
    # Errors come back as a page like any other (200): the summary at its top says what to fix.
    return render(request, "studio/editor.html", _editor_context(request, editor, template))


@studio_access
@require_http_methods(["GET", "POST"])
def new_template(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@studio_access
@require_http_methods(["GET", "POST"])
def edit_template(request: HttpRequest, slug: str) -> HttpResponse:
    return _edit(request, _template(slug))


def _preview(request: HttpRequest, template: DemoTemplate | None) -> HttpResponse:
    """The editor's content as posted (saved or not), rendered for the sample values."""
    actor = _actor(request)
    editor = editor_for(
        _current(template),
        template=template,
        allow_unsafe=actor.may_change_unsafe,
        data=request.POST,
    )
    sample = SampleForm(request.POST)
    preview = None
    if editor.is_valid():
        copy = documents.template_from_content(template or DemoTemplate(), editor.document())
        preview = preview_content(copy, sample.sample())
    context = _editor_context(
        request, editor, template, sample=sample, preview=preview, previewed=True
    )
    if request.htmx:
        return render(request, "studio/editor.html#preview", context)
    return render(request, "studio/editor.html", context)


@studio_access
@require_POST
def preview_new(request: HttpRequest) -> HttpResponse:
    return _preview(request, None)


@studio_access
@require_POST
def preview_template(request: HttpRequest, slug: str) -> HttpResponse:
    return _preview(request, _template(slug))


# --- One template: draft, versions, test launches ----------------------------------------------


@studio_access
@require_GET
def template_detail(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    history = selectors.versions_of(template)
    draft = versions.draft_of(template)
    return render(
        request,
        "studio/template.html",
        {
            "template": template,
            "status": selectors.status_of(template),
            "draft": draft,
            "versions": history,
            "launches": launches.recent_test_launches(template)[: launches.LISTED],
            # A double click on "Test launch" starts one demo, as on the catalog's start form.
            "start_token": new_start_token(),
            "compare_old": history[1].number if len(history) > 1 else "",
            "compare_new": "draft" if draft else (history[0].number if history else ""),
            "flag_after": settings.DEMO_TEMPLATE_FLAG_AFTER,
        },
    )


@studio_access
@require_POST
def publish(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    try:
        version = versions.publish_draft(template=template, actor=_actor(request))
    except PublishError as exc:
        messages.error(request, str(exc))
        for problem in exc.problems:
            messages.error(request, problem)
        return redirect("demos:studio_template", slug=template.slug)
    template.refresh_from_db()
    messages.success(
        request,
        f"Published version {version.number}. New demos start from it; running demos keep the "
        "version they started from.",
    )
    return redirect("demos:studio_template", slug=template.slug)


@studio_access
@require_POST
def discard(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    try:
        if versions.discard_draft(template=template, actor=_actor(request)):
            messages.success(request, "Draft discarded.")
    except PublishError as exc:
        messages.error(request, str(exc))
    return redirect("demos:studio_template", slug=template.slug)


@studio_access
@require_POST
def availability(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    enabled = request.POST.get("enabled") == "on"
    if versions.set_availability(template=template, enabled=enabled, actor=_actor(request)):
        state = "offered in the catalog" if enabled else "hidden from the catalog"
        messages.success(request, f"“{template.name}” is {state}; running demos are not affected.")
    return redirect("demos:studio_template", slug=template.slug)


@studio_access
@require_POST
def put_back(request: HttpRequest, slug: str) -> HttpResponse:
    """Offer a template taken out of the catalog for failing again, once an admin fixed it."""
    template = _template(slug)
    cause = template.flag_reason
    with transaction.atomic():
        if services.put_template_back(template=template):
            # The template's history says who decided it was fixed, and what had gone wrong.
            versions.log_change(
                template,
                _actor(request),
                f"Put back in the catalog after failed starts (last cause: {cause or 'unknown'}).",
            )
            messages.success(
                request,
                f"“{template.name}” is back in the catalog; its failed starts count from zero.",
            )
    return redirect("demos:studio_template", slug=template.slug)


@studio_access
@require_POST
def roll_back(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    template = _template(slug)
    try:
        version = versions.roll_back(template=template, number=number, actor=_actor(request))
    except PublishError as exc:
        messages.error(request, str(exc))
        for problem in exc.problems:
            messages.error(request, problem)
    else:
        messages.success(
            request,
            f"Published version {version.number} with the content of version {number}.",
        )
    template.refresh_from_db()
    return redirect("demos:studio_template", slug=template.slug)


def _content(template: DemoTemplate, which: str) -> tuple[str, dict[str, Any]]:
    """A version (by number) or the draft, as (label, document); 404 when there is none."""
    if which == "draft":
        draft = versions.draft_of(template)
        if draft is None:
            raise Http404("No draft.")
        return "Draft", draft.content
    if not which.isdigit():
        raise Http404("No such version.")
    version = get_object_or_404(TemplateVersion, template=template, number=int(which))
    return f"Version {version.number}", version.content


@studio_access
@require_GET
def compare(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    old_label, old = _content(template, request.GET.get("old", ""))
    new_label, new = _content(template, request.GET.get("new", ""))
    return render(
        request,
        "studio/compare.html",
        {
            "template": template,
            "old_label": old_label,
            "new_label": new_label,
            "lines": diff_documents(old, new),
            "versions": selectors.versions_of(template),
            "old": request.GET.get("old", ""),
            "new": request.GET.get("new", ""),
            "has_draft": versions.draft_of(template) is not None,
        },
    )


# --- Import and export -------------------------------------------------------------------------


@studio_access
@require_GET
def export(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    which = request.GET.get("version", "")
    if which:
        _label, content = _content(template, which)
        text = documents.to_yaml(content)
        name = f"{template.slug}-{'draft' if which == 'draft' else 'v' + which}.yaml"
    else:
        try:
            text = import_export.export_template(template)
        except import_export.ExportError as exc:
            raise Http404(str(exc)) from None
        name = import_export.suggested_filename(template)
    return HttpResponse(
        text,
        content_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@studio_access
@require_http_methods(["GET", "POST"])
def import_page(request: HttpRequest) -> HttpResponse:
    problems: list[str] = []
    text = ""
    if request.method == "POST":
        upload = request.FILES.get("file")
        text = request.POST.get("document", "")
        if upload is not None:
            if upload.size > documents.MAX_DOCUMENT_BYTES:
                problems = ["The file is larger than a template document can be (1 MiB)."]
            else:
                text = upload.read().decode("utf-8", errors="replace")
        if not problems:
            result = import_export.import_template(text, actor=_actor(request))
            if result.ok and result.template is not None:
                messages.success(
                    request,
                    f"Imported “{result.template.name}” as "
                    f"{'a new template' if result.created else 'its draft'}. Test it, then "
                    "publish it.",
                )
                return redirect("demos:studio_template", slug=result.template.slug)
            problems = result.problems
    return render(request, "studio/import.html", {"problems": problems, "text": text})


# --- Test launches -----------------------------------------------------------------------------


@studio_access
@require_POST
def start_launch(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template(slug)
    try:
        demo = launches.start_test_launch(
            template=template,
            actor=_actor(request),
            start_token=request.POST.get("start_token", "")[:64],
        )
    except LifecycleError as exc:
        messages.error(request, f"The test launch could not start: {exc}")
        return redirect("demos:studio_template", slug=template.slug)
    return redirect("demos:studio_launch", slug=template.slug, public_id=demo.public_id)


def _launch(template: DemoTemplate, public_id: UUID) -> Demo:
    demo = (
        Demo.objects.filter(template=template, public_id=public_id, is_test_launch=True)
        .select_related("template", "owner")
        .first()
    )
    if demo is None:
        raise Http404("No such test launch.")
    return demo


@never_cache
@studio_access
@require_GET
def launch_detail(request: HttpRequest, slug: str, public_id: UUID) -> HttpResponse:
    template = _template(slug)
    demo = _launch(template, public_id)
    context = {"template": template, "report": launches.launch_report(demo)}
    if request.htmx and request.GET.get("fragment") == "report":
        status = HTMX_STOP_POLLING if demo.is_settled else 200
        return render(request, "studio/launch.html#report", context, status=status)
    return render(request, "studio/launch.html", context)


@studio_access
@require_POST
def launch_delete(request: HttpRequest, slug: str, public_id: UUID) -> HttpResponse:
    template = _template(slug)
    demo = _launch(template, public_id)
    try:
        delete_demo(demo=demo, actor=LifecycleActor.of(request.user))
    except LifecycleError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The test launch is being deleted.")
    return redirect("demos:studio_launch", slug=template.slug, public_id=demo.public_id)
