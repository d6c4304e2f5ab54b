"""Admin forms for demo templates: every input is checked on save (see demos.catalog.validation).

Checks that need the template and its charts together (personal variables against the warm
pool) run in the charts' formset, because Django validates the form and the inline formsets
separately and only the formset sees both: its `instance` is the template with the submitted
values applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django import forms
from django.forms import BoundField, Widget
from django.forms.models import BaseInlineFormSet

from demos.catalog import validation as checks
from demos.models import DemoTemplate, TemplateChart

MULTILINE_FIELDS = (
    *("description", "prospect_description", "instructions", "credentials"),
    *("vcluster_overrides", "unsafe_vcluster_overrides"),
)
# Typed as YAML, so edited in the code editor (static/js/yaml_editor.js).
YAML_FIELDS = ("credentials", "vcluster_overrides", "unsafe_vcluster_overrides")
# Listed rather than "__all__" so a new model field is a deliberate addition to the admin.
TEMPLATE_FIELDS = [
    *("name", "slug", "tagline", "description", "prospect_description"),
    *("icon", "colour", "enabled"),
    *("kubernetes_version", "control_plane_cpu", "control_plane_memory", "storage_size"),
    *("quota_cpu", "quota_memory", "quota_pods", "vcluster_overrides"),
    "unsafe_vcluster_overrides",
    *("entry_url", "instructions", "credentials", "allow_kubeconfig_download"),
    *("default_lifetime", "max_lifetime", "extension_step", "max_extensions", "expiry_action"),
    *("retention", "provisioning_timeout", "max_concurrent"),
    *("warm_pool_size", "warm_pool_schedule", "warm_pool_max_age"),
]
CHART_FIELDS = ["position", "repository", "chart", "version", "release_name", "namespace", "values"]


class MultilineTextField(forms.CharField):
    """Browsers submit textarea line breaks as CRLF, and the form strips surrounding blanks.
    Both sides are normalised before comparing, so saving without edits is not a change (and
    does not make a new template version)."""

    def to_python(self, value: Any) -> str:
        text = super().to_python(value)
        return text.replace("\r\n", "\n").replace("\r", "\n")

    def has_changed(self, initial: Any, data: Any) -> bool:
        if self.disabled:
            return False
        return self.to_python(initial or "") != self.to_python(data)


# How the YAML checks place a syntax error in their message: "… at line 3, column 5: …".
_YAML_ERROR_POSITION = re.compile(r"\bline (\d+), column (\d+)")


class YamlBoundField(BoundField):
    """Gives the code editor the place of the field's first YAML error, so it can mark that line.
    The checks report the line and column only inside the message, so they are read from there."""

    def build_widget_attrs(
        self, attrs: dict[str, Any], widget: Widget | None = None
    ) -> dict[str, Any]:
        attrs = super().build_widget_attrs(attrs, widget)
        for message in self.errors:
            if position := _YAML_ERROR_POSITION.search(message):
                attrs["data-yaml-error-line"] = position[1]
                attrs["data-yaml-error-column"] = position[2]
                attrs["data-yaml-error-message"] = message
                break
        return attrs


class YamlTextField(MultilineTextField):
    """A YAML text: a textarea the code editor takes over when JavaScript runs."""

    bound_field_class = YamlBoundField

    def widget_attrs(self, widget: Widget) -> dict[str, Any]:
        return {**super().widget_attrs(widget), "data-yaml-editor": True, "spellcheck": "false"}


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise forms.ValidationError(problems)


class DemoTemplateForm(forms.ModelForm):
    class Meta:
        model = DemoTemplate
        fields = TEMPLATE_FIELDS
        field_classes = {
            **dict.fromkeys(MULTILINE_FIELDS, MultilineTextField),
            **dict.fromkeys(YAML_FIELDS, YamlTextField),
        }
        # As written, not capitalised into "VCluster".
        labels = {
            "vcluster_overrides": "vCluster overrides",
            "description": "Sales notes",
            "prospect_description": "Description for prospects",
        }

    def clean_colour(self) -> str:
        colour = self.cleaned_data["colour"]
        _raise_if(checks.colour_problems(colour))
        return colour

    def clean_entry_url(self) -> str:
        url = self.cleaned_data["entry_url"].strip()
        _raise_if(checks.entry_url_problems(url))
        return url

    def clean_instructions(self) -> str:
        text = self.cleaned_data["instructions"]
        _raise_if(checks.text_problems(text, "Instructions"))
        return text

    def clean_credentials(self) -> str:
        text = self.cleaned_data["credentials"]
        _raise_if(checks.credentials_problems(text))
        return text

    def clean_vcluster_overrides(self) -> str:
        text = self.cleaned_data["vcluster_overrides"]
        _raise_if(checks.overrides_problems(text))
        return text

    def clean_unsafe_vcluster_overrides(self) -> str:
        # Only in a superuser's form: for others the admin makes the field read-only.
        text = self.cleaned_data["unsafe_vcluster_overrides"]
        _raise_if(checks.overrides_problems(text, unsafe=True))
        return text

    def clean_warm_pool_schedule(self) -> str:
        expression = self.cleaned_data["warm_pool_schedule"].strip()
        _raise_if(checks.schedule_problems(expression))
        return expression

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for field, rule in checks.QUANTITY_FIELDS.items():
            if cleaned.get(field):
                cleaned[field] = cleaned[field].strip()
                for message in checks.quantity_problems(cleaned[field], rule):
                    self.add_error(field, message)
        # Comparisons only make sense between values that are each valid on their own.
        valid = {name: value for name, value in cleaned.items() if name not in self.errors}
        for problems in (checks.lifetime_problems(valid), checks.quota_problems(valid)):
            for field, messages in problems.items():
                for message in messages:
                    self.add_error(field, message)
        return cleaned


class TemplateChartForm(forms.ModelForm):
    class Meta:
        model = TemplateChart
        fields = CHART_FIELDS
        field_classes = {"values": YamlTextField}
        widgets = {"values": forms.Textarea(attrs={"rows": 6, "cols": 80})}

    def clean_repository(self) -> str:
        url = self.cleaned_data["repository"].strip()
        _raise_if(checks.repository_problems(url))
        return url

    def clean_chart(self) -> str:
        name = self.cleaned_data["chart"].strip()
        _raise_if(checks.chart_name_problems(name))
        return name

    def clean_version(self) -> str:
        version = self.cleaned_data["version"].strip()
        _raise_if(checks.chart_version_problems(version))
        return version

    def clean_release_name(self) -> str:
        name = self.cleaned_data["release_name"].strip()
        _raise_if(checks.dns_label_problems(name, "Release name", 53))
        return name

    def clean_namespace(self) -> str:
        namespace = self.cleaned_data["namespace"].strip()
        _raise_if(checks.dns_label_problems(namespace, "Namespace", 63))
        return namespace

    def clean_values(self) -> str:
        text = self.cleaned_data["values"]
        release = (self.cleaned_data.get("release_name") or "").strip() or "(unnamed)"
        _raise_if(checks.yaml_problems(text, f"Values of chart {release}"))
        return text


class TemplateChartFormSet(BaseInlineFormSet):
    def kept_forms(self) -> Iterable[forms.Form]:
        """Chart forms that will exist after saving: filled in and not marked for deletion."""
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if self.can_delete and self._should_delete_form(form):
                continue
            yield form

    def draft_texts(self) -> Iterable[tuple[str, str]]:
        """The (field, text) pairs of the template as submitted, like `specs.template_texts`."""
        template = self.instance
        yield "Entry URL", template.entry_url
        yield "Instructions", template.instructions
        yield "Credentials", template.credentials
        for form in self.kept_forms():
            release = form.cleaned_data.get("release_name") or "(unnamed)"
            yield f"Values of chart {release}", form.cleaned_data.get("values") or ""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        _raise_if(checks.warm_pool_problems(self.instance.warm_pool_size or 0, self.draft_texts()))
