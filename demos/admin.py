"""Django admin: templates are edited here; demos, snapshots and share links are read-only.

Validation lives in demos.catalog.forms / demos.catalog.validation, template changes beyond the
form in demos.catalog.services, the preview in demos.catalog.preview. This module wires them
into the admin. Demo state is never changed here: that is the lifecycle's job (the fleet page
offers bulk actions that go through it).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.utils import construct_change_message
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import BaseFormSet, ModelForm, RadioSelect
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from demos.branding import BrandingForm, current_branding, forget_branding
from demos.catalog import services
from demos.catalog.forms import DemoTemplateForm, TemplateChartForm, TemplateChartFormSet
from demos.catalog.preview import preview_template
from demos.engine.specs import PERSONAL_VARIABLES, VARIABLES
from demos.fleet import selectors
from demos.models import (
    Branding,
    Demo,
    DemoEvent,
    DemoTemplate,
    ShareLink,
    ShareLinkVisit,
    Snapshot,
    TemplateChart,
)
from demos.studio.documents import LIVE_LINK_FIELDS
from demos.studio.forms import (
    DurationPickerField,
    LiveLinkChecks,
    ProductIconChoice,
    ProductIconField,
)
from demos.studio.versions import Actor, record_row_as_version

BOTH_LOCATIONS = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]
# Saved with the form; `version` (and the published version record) are left out so a
# concurrent bump or publication is never overwritten.
_SAVED_FIELDS = [
    field.name
    for field in DemoTemplate._meta.concrete_fields
    if not field.primary_key and field.name not in ("version", "created_at", "published_version")
]


def _variables_help() -> str:
    items = format_html_join(
        "",
        "<li><code>${{{}}}</code> {}{}</li>",
        (
            (name, text, " (personal: not with a warm pool)" if name in PERSONAL_VARIABLES else "")
            for name, text in VARIABLES.items()
        ),
    )
    return format_html(
        "Entry URL, instructions, credentials and chart values may use these variables "
        "(write <code>$${{NAME}}</code> for a literal one):<ul>{}</ul>",
        items,
    )


class TemplateAdminForm(ProductIconChoice, LiveLinkChecks, DemoTemplateForm):
    """The catalog's template form, with the live-link settings the studio edits too (same
    checks); how long before a demo sleeps is picked as a number and a unit, empty for never;
    the icon is picked from the product icons' pictures, as in the studio."""

    class Meta(DemoTemplateForm.Meta):
        fields = [*DemoTemplateForm.Meta.fields, *LIVE_LINK_FIELDS]
        field_classes = {
            **DemoTemplateForm.Meta.field_classes,
            "sleep_after": DurationPickerField,
            "icon": ProductIconField,
        }
        # The admin's own layout for a row of radio buttons (it has not the portal's CSS).
        widgets = {"icon": RadioSelect(attrs={"class": "radiolist inline"})}


class TemplateChartInline(admin.StackedInline):
    model = TemplateChart
    form = TemplateChartForm
    formset = TemplateChartFormSet
    extra = 0
    ordering = ["position", "pk"]
    fields = [
        ("position", "release_name", "namespace"),
        ("repository", "chart", "version"),
        "values",
    ]
    verbose_name = "chart"
    verbose_name_plural = "charts (installed in position order)"


@admin.register(DemoTemplate)
class DemoTemplateAdmin(admin.ModelAdmin):
    form = TemplateAdminForm
    inlines = [TemplateChartInline]
    list_display = [
        "name",
        "slug",
        "enabled",
        "version",
        "kubernetes_version",
        "active_demos_column",
        "warm_pool_size",
        "updated_at",
    ]
    list_filter = ["enabled", "kubernetes_version", "expiry_action"]
    search_fields = ["name", "slug", "tagline"]
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ["version", "running_versions", "created_at", "updated_at"]
    actions = ["duplicate", "enable", "disable"]
    save_on_top = True
    fieldsets = [
        (
            "Catalog",
            {
                "fields": [
                    *("name", "slug", "tagline", "description", "prospect_description"),
                    *("icon", "colour", "enabled"),
                ],
                "description": "Sales notes are for the sales team only; prospects read the "
                "description for prospects on their demo page.",
            },
        ),
        (
            "Version",
            {
                "fields": ["version", "running_versions", "created_at", "updated_at"],
                "description": "Saving a change publishes a new version at once. Running "
                "demos keep the spec they started from. Template admins: the template studio "
                "(/studio/) keeps drafts, test launches, history and roll back.",
            },
        ),
        (
            "Cluster",
            {
                "fields": [
                    "kubernetes_version",
                    ("control_plane_cpu", "control_plane_memory", "storage_size"),
                    ("quota_cpu", "quota_memory", "quota_pods"),
                    "vcluster_overrides",
                    "unsafe_vcluster_overrides",
                ]
            },
        ),
        (
            "What the salesperson gets",
            {
                "fields": [
                    "entry_url",
                    "instructions",
                    "credentials",
                    "allow_kubeconfig_download",
                ],
                "description": _variables_help(),
            },
        ),
        (
            "Lifetime",
            {
                "fields": [
                    ("default_lifetime", "max_lifetime"),
                    ("extension_step", "max_extensions"),
                    ("expiry_action", "retention"),
                    ("provisioning_timeout", "max_concurrent"),
                ],
                "description": "Durations as HH:MM:SS or “DD HH:MM:SS”.",
            },
        ),
        (
            "Warm pool",
            {"fields": ["warm_pool_size", "warm_pool_schedule", "warm_pool_max_age"]},
        ),
        (
            "Live link",
            {
                "fields": LIVE_LINK_FIELDS,
                "description": "The portal's gate routes each demo's host to the entry service "
                "and puts demos nobody uses to sleep.",
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DemoTemplate]:
        return selectors.with_active_counts(super().get_queryset(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Template admins are trusted with demos, not with the host: they see the superusers'
        # overrides but cannot change them (a read-only field is not taken from the POST).
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields.append("unsafe_vcluster_overrides")
        return fields

    # --- Columns and read-only fields ---------------------------------------------------------

    @admin.display(description="Active demos", ordering="active_demos")
    def active_demos_column(self, template: DemoTemplate) -> str:
        active = getattr(template, "active_demos", 0)
        outdated = getattr(template, "outdated_demos", 0)
        return f"{active} ({outdated} on older versions)" if outdated else str(active)

    @admin.display(description="Active demos by version")
    def running_versions(self, template: DemoTemplate) -> str:
        if template.pk is None:
            return "—"
        rows = selectors.active_demos_by_version(template)
        if not rows:
            return "No active demos."
        return "; ".join(
            f"version {version}{' (current)' if version == template.version else ''}: "
            f"{count} active demo{'s' if count != 1 else ''}"
            for version, count in rows
        )

    # --- Saving: a changed template gets a new version ------------------------------------------

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        if change:
            obj.save(update_fields=_SAVED_FIELDS)
        else:
            obj.save()

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: list[BaseFormSet], change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        template = form.instance
        was_published = template.published_version_id is not None
        # The same test as the admin's own change message, so the history and the version
        # always agree on whether something changed.
        if change and construct_change_message(form, formsets, add=False):
            services.bump_template_version(template=template)
            # The row is the published content: record it as a version, as the studio does. A
            # studio draft that was never published stays unpublished (its content is the draft).
            if was_published:
                record_row_as_version(
                    template=template, actor=Actor(request.user), note="Saved in the Django admin."
                )
        elif not change:
            record_row_as_version(
                template=template, actor=Actor(request.user), note="Created in the Django admin."
            )
        if "unsafe_vcluster_overrides" in form.changed_data:
            # Who set what, in full: the history is the audit trail of host-level trust.
            text = form.instance.unsafe_vcluster_overrides or "(cleared)"
            self.log_change(request, form.instance, f"Unsafe vCluster overrides set to:\n{text}")

    def construct_change_message(
        self, request: HttpRequest, form: ModelForm, formsets: list[BaseFormSet], add: bool = False
    ) -> list[dict[str, Any]]:
        message = super().construct_change_message(request, form, formsets, add)
        if message and not add:
            # Read by the fleet's activity feed; the admin history ignores unknown keys.
            message.append({"version": {"to": form.instance.version}})
        return message

    # --- Actions --------------------------------------------------------------------------------

    @admin.action(
        permissions=["add"], description="Duplicate (as a disabled copy)", location=BOTH_LOCATIONS
    )
    def duplicate(
        self, request: HttpRequest, queryset: QuerySet[DemoTemplate]
    ) -> HttpResponse | None:
        copies = []
        for template in queryset:
            copy = services.duplicate_template(template=template)
            # Published as its version 1 (and disabled, as a copy is): enabling it offers it.
            record_row_as_version(
                template=copy,
                actor=Actor(request.user),
                note=f"Duplicated from {template.slug} version {template.version}.",
            )
            self.log_addition(
                request, copy, f"Duplicated from “{template}” (version {template.version})."
            )
            copies.append(copy)
        if len(copies) == 1:
            copy = copies[0]
            self.message_user(
                request,
                f"Created “{copy}” ({copy.slug}), disabled until you review it.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:demos_demotemplate_change", args=[copy.pk]))
        self.message_user(request, f"Created {len(copies)} disabled copies.", messages.SUCCESS)
        return None

    @admin.action(
        permissions=["change"], description="Enable in the catalog", location=BOTH_LOCATIONS
    )
    def enable(self, request: HttpRequest, queryset: QuerySet[DemoTemplate]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    @admin.action(
        permissions=["change"],
        description="Disable (hide from the catalog)",
        location=BOTH_LOCATIONS,
    )
    def disable(self, request: HttpRequest, queryset: QuerySet[DemoTemplate]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    def _set_enabled(
        self, request: HttpRequest, queryset: QuerySet[DemoTemplate], *, enabled: bool
    ) -> None:
        changed = [
            template
            for template in queryset
            if services.set_template_enabled(template=template, enabled=enabled)
        ]
        for template in changed:
            self.log_change(request, template, [{"changed": {"fields": ["Enabled"]}}])
        state = "enabled" if enabled else "disabled"
        self.message_user(
            request,
            f"{len(changed)} template{'s' if len(changed) != 1 else ''} {state}; running demos "
            "are not affected.",
            messages.SUCCESS,
        )

    # --- Preview ----------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        preview = path(
            "<path:object_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="demos_demotemplate_preview",
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        template = self.get_object(request, object_id)
        if template is None:
            raise Http404("No such template.")
        if not self.has_view_or_change_permission(request, template):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": template,
            "title": f"Preview of {template} (version {template.version})",
            "preview": preview_template(template=template),
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/demos/demotemplate/preview.html", context)


# --- Read-only records ---------------------------------------------------------------------------


class ReadOnlyMixin:
    """Shown for reference; changes go through the lifecycle or the fleet page, never here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class DemoEventInline(ReadOnlyInline):
    model = DemoEvent
    fields = ["created_at", "kind", "actor_name", "message"]
    readonly_fields = fields
    ordering = ["created_at", "pk"]
    verbose_name_plural = "timeline"


@admin.register(Demo)
class DemoAdmin(ReadOnlyAdmin):
    list_display = [
        "cluster_name",
        "template",
        "template_version",
        "owner",
        "prospect_company",
        "status",
        "requested_at",
        "expires_at",
        "is_spare",
    ]
    list_filter = ["status", "is_spare", "template"]
    list_select_related = ["template", "owner"]
    search_fields = [
        "cluster_name",
        "public_id",
        "prospect_name",
        "prospect_company",
        "owner__username",
        "owner__email",
    ]
    date_hierarchy = "requested_at"
    inlines = [DemoEventInline]
    # The sealed kubeconfig is a credential: never shown, not even in its encrypted form.
    exclude = ["start_token", "kubeconfig_sealed"]
    readonly_fields = ["portal_link"]

    @admin.display(description="In the portal")
    def portal_link(self, demo: Demo) -> str:
        if demo.is_spare:
            return "Warm-pool spare (not claimed yet)."
        url = reverse("demos:detail", args=[demo.public_id])
        return format_html('<a href="{}">{}</a>', url, url)


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "demo",
        "template",
        "kind",
        "created_at",
        "expires_at",
        "restorable",
        "discarded_at",
    ]
    list_filter = ["kind", "restorable", "template"]
    list_select_related = ["demo__template", "template"]
    search_fields = ["demo__cluster_name", "location", "note"]


class ShareLinkVisitInline(ReadOnlyInline):
    model = ShareLinkVisit
    fields = ["visited_at", "client_address", "user_agent"]
    readonly_fields = fields
    ordering = ["-visited_at"]


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnlyAdmin):
    list_display = [
        "recipient",
        "demo",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "open_count",
        "token_hint",
    ]
    list_filter = ["revoked_at"]
    list_select_related = ["demo__template", "created_by"]
    search_fields = ["recipient", "demo__cluster_name"]
    # The hash is not the token, but it is all an attacker with database read access would need
    # to match a stolen link; the admin shows only enough to tell links apart.
    exclude = ["token_hash"]
    readonly_fields = ["token_hint"]
    inlines = [ShareLinkVisitInline]

    @admin.display(description="Token hash")
    def token_hint(self, link: ShareLink) -> str:
        return f"{link.token_hash[:8]}…"


@admin.register(Branding)
class BrandingAdmin(admin.ModelAdmin):
    """The portal's look for prospects: superusers only, and one row (demos.branding)."""

    form = BrandingForm
    list_display = ["name", "accent_colour", "website", "updated_at"]
    readonly_fields = ["current_logo"]
    fields = ["name", "accent_colour", "website", "current_logo", "logo_upload", "remove_logo"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser and not Branding.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    @admin.display(description="Current logo")
    def current_logo(self, branding: Branding) -> str:
        url = current_branding().logo_url if branding.pk and branding.logo_type else None
        if url is None:
            return "None: prospect pages show the name alone."
        return format_html('<img src="{}" alt="The current logo" height="64">', url)

    def save_model(self, request: HttpRequest, obj: Branding, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        forget_branding()

    def delete_model(self, request: HttpRequest, obj: Branding) -> None:
        super().delete_model(request, obj)
        forget_branding()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Branding]) -> None:
        super().delete_queryset(request, queryset)
        forget_branding()
