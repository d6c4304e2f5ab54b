"""The studio's editor: the admin's template form with duration pickers, the charts as a list,
and the one `validate_document` both the editor and the YAML import go through.

Every check is the catalog's (demos.catalog.forms and .validation): the main form subclasses the
admin's `DemoTemplateForm`, each chart is the admin's `TemplateChartForm`, and the warm-pool
rule is the same function. What differs is where content lives: a draft is a document
(demos.studio.documents), not rows, so nothing here saves a model. The YAML fields carry the
code editor's marks (data-yaml-editor, and the line of an error) from the catalog's form fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django import forms
from django.utils.html import format_html
from django.utils.safestring import SafeString

from demos.catalog import validation as checks
from demos.catalog.forms import DemoTemplateForm, TemplateChartForm
from demos.durations import format_duration
from demos.engine.sleep import MIN_SLEEP_AFTER
from demos.models import DemoTemplate
from demos.studio.documents import (
    CHART_KEYS,
    DURATION_FIELDS,
    DURATION_UNITS,
    FORMAT,
    OPTIONAL_DURATIONS,
    SETTINGS,
    duration_text,
    parse_duration_text,
    setting_value,
    split_duration,
    with_defaults,
)
from demos.templatetags.icons import PRODUCT_ICONS, icon_svg, product_icon_name

CHARTS_PREFIX = "charts"


# --- Duration picker ---------------------------------------------------------------------------


class DurationPickerWidget(forms.MultiWidget):
    """A whole number and a unit, instead of `HH:MM:SS`."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        units = [(suffix, name) for suffix, _size, name in DURATION_UNITS]
        super().__init__(
            [
                forms.NumberInput(attrs={"min": 0, "class": "duration-number"}),
                forms.Select(choices=units, attrs={"class": "duration-unit"}),
            ],
            attrs,
        )

    def decompress(self, value: Any) -> list[Any]:
        if isinstance(value, timedelta):
            return list(split_duration(value))
        if isinstance(value, str) and value:
            return list(split_duration(parse_duration_text(value)))
        return [None, "h"]


class DurationPickerField(forms.MultiValueField):
    widget = DurationPickerWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("max_length", None)
        units = [(suffix, name) for suffix, _size, name in DURATION_UNITS]
        super().__init__(
            fields=(
                forms.IntegerField(min_value=0, max_value=10**6),
                forms.ChoiceField(choices=units),
            ),
            **kwargs,
        )

    def compress(self, data_list: list[Any]) -> timedelta | None:
        if not data_list or data_list[0] is None:
            return None  # an optional duration left empty (a required one never gets here)
        number, unit = data_list
        return parse_duration_text(f"{number}{unit}")


# --- The live link: who serves it, when it sleeps ---------------------------------------------

_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# A named port (IANA service name): lowercase letters, digits and single dashes, one letter at
# least, at most 15 characters.
_PORT_NAME = re.compile(r"^(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def sleep_after_problems(value: timedelta | None) -> list[str]:
    if value is None or value >= MIN_SLEEP_AFTER:
        return []
    return [
        f"Sleep after must be at least {format_duration(MIN_SLEEP_AFTER)}: waking a demo takes "
        "a moment, so a shorter time would put it to sleep between two clicks. Leave it empty "
        "for demos that never sleep."
    ]


def entry_service_problems(text: str) -> list[str]:
    """`namespace/name:port`: the Service inside the vCluster that serves the live link."""
    if not text:
        return []
    example = "Write it as namespace/name:port, e.g. default/shop:80 or shop/frontend:http."
    namespace, slash, rest = text.partition("/")
    name, colon, port = rest.rpartition(":")
    if not (slash and colon and namespace and name and port):
        return [f"Entry service “{text}” is not namespace/name:port. {example}"]
    problems = []
    if len(namespace) > 63 or not _DNS_1123_LABEL.match(namespace):
        problems.append(
            f"Entry service: namespace “{namespace}” must be at most 63 lowercase letters, "
            "digits and dashes, starting and ending with a letter or digit."
        )
    if len(name) > 63 or not _DNS_1035_LABEL.match(name):
        problems.append(
            f"Entry service: Service name “{name}” must be at most 63 lowercase letters, digits "
            "and dashes, starting with a letter and ending with a letter or digit."
        )
    if port.isdigit():
        if not 1 <= int(port) <= 65535:
            problems.append(f"Entry service: port {port} must be between 1 and 65535.")
    elif len(port) > 15 or not _PORT_NAME.match(port):
        problems.append(
            f"Entry service: port “{port}” must be a number (1 to 65535) or a port name of at "
            "most 15 lowercase letters, digits and single dashes, e.g. http."
        )
    return problems


class LiveLinkChecks:
    """The checks of the live-link settings, for the studio's form and the admin's."""

    cleaned_data: dict[str, Any]

    def clean_sleep_after(self) -> timedelta | None:
        value = self.cleaned_data.get("sleep_after")
        problems = sleep_after_problems(value)
        if problems:
            raise forms.ValidationError(problems)
        return value

    def clean_entry_service(self) -> str:
        text = (self.cleaned_data.get("entry_service") or "").strip()
        problems = entry_service_problems(text)
        if problems:
            raise forms.ValidationError(problems)
        return text


# --- The product icon ------------------------------------------------------------------------


def _icon_choices() -> list[tuple[str, SafeString]]:
    # Each choice shows its picture. Built per form, as the sprite's URL comes from the static
    # storage (hashed in production).
    return [
        (name, format_html("{} {}", icon_svg(name, size=24), label))
        for name, label in PRODUCT_ICONS.items()
    ]


class ProductIconField(forms.ChoiceField):
    """One of the product icons, picked by its picture. A template from before icons had names
    holds an emoji: it is shown (and rendered everywhere) as the default icon, and kept if the
    form leaves it as it was; any other value must be an icon's name."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("max_length", None)
        kwargs.pop("empty_value", None)
        kwargs.setdefault("widget", forms.RadioSelect(attrs={"class": "icon-picker"}))
        kwargs["help_text"] = "The picture shown with the demo in the catalog and to prospects."
        super().__init__(choices=_icon_choices, **kwargs)
        self.kept = ""
        names = ", ".join(PRODUCT_ICONS)
        self.error_messages["invalid_choice"] = (
            f"Icon “%(value)s” is not one of the icons: pick one of {names}."
        )

    def valid_value(self, value: Any) -> bool:
        return value in PRODUCT_ICONS or (bool(self.kept) and value == self.kept)

    def prepare_value(self, value: Any) -> Any:
        return product_icon_name(value) if value else value


class ProductIconChoice:
    """Lets the icon field keep the value the form started with (see ProductIconField)."""

    fields: dict[str, forms.Field]
    initial: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("icon")
        if isinstance(field, ProductIconField):
            field.kept = str(self.initial.get("icon", field.initial) or "")


# --- The template form and the charts ----------------------------------------------------------


def _textarea(rows: int, yaml: bool = False) -> forms.Textarea:
    attrs: dict[str, Any] = {"rows": rows, "spellcheck": "false"} if yaml else {"rows": rows}
    if yaml:
        attrs["data-yaml-editor"] = ""
    return forms.Textarea(attrs=attrs)


class StudioTemplateForm(ProductIconChoice, LiveLinkChecks, DemoTemplateForm):
    """The admin's template form (same checks), minus availability, with duration pickers."""

    class Meta(DemoTemplateForm.Meta):
        fields = SETTINGS
        field_classes = {
            **dict.fromkeys(DURATION_FIELDS, DurationPickerField),
            **DemoTemplateForm.Meta.field_classes,
            "icon": ProductIconField,
        }
        widgets = {
            "description": _textarea(4),
            "prospect_description": _textarea(5),
            "instructions": _textarea(5),
            "credentials": _textarea(4, yaml=True),
            "vcluster_overrides": _textarea(6, yaml=True),
            "unsafe_vcluster_overrides": _textarea(4, yaml=True),
            "colour": forms.TextInput(attrs={"type": "color"}),
        }
        labels = {
            **DemoTemplateForm.Meta.labels,
            "control_plane_cpu": "Control-plane CPU",
            "control_plane_memory": "Control-plane memory",
            "quota_cpu": "Quota: CPU",
            "quota_memory": "Quota: memory",
            "quota_pods": "Quota: pods",
            "entry_url": "Entry URL",
            "allow_kubeconfig_download": "Prospects may download a kubeconfig",
            "max_lifetime": "Maximum lifetime",
            "max_extensions": "Maximum extensions",
            "expiry_action": "When it expires",
            "max_concurrent": "Maximum running at once",
            "warm_pool_size": "Warm-pool size",
            "warm_pool_schedule": "Warm-pool schedule",
            "warm_pool_max_age": "Replace spares after",
            "sleep_after": "Sleep after",
            "entry_service": "Entry service",
        }
        help_texts = {
            "slug": "Letters, digits and dashes; used in links and exports.",
            "default_lifetime": "How long a demo runs unless the salesperson picks otherwise.",
            "max_lifetime": "The longest a demo may run, extensions included.",
            "extension_step": "How much time each extension adds.",
            "retention": "How long paused or archived demos are kept.",
            "provisioning_timeout": "A start that takes longer fails (1 minute to 2 hours).",
            "sleep_after": "A running demo nobody uses for this long goes to sleep, keeping the "
            "time it has left, and wakes when its link is opened (at least 5 minutes). Leave "
            "it empty: never.",
            "entry_service": "The Service inside the demo's cluster that serves the live link, "
            "as namespace/name:port, e.g. default/shop:80.",
        }

    def __init__(self, *args: Any, allow_unsafe: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in DURATION_FIELDS:
            unit = self.fields[name].widget.widgets[1]
            unit.attrs["aria-label"] = f"{self.fields[name].label}: unit"
        if not allow_unsafe:
            # Trusted with demos, not with the host: shown, kept, never changed by this person.
            unsafe = self.fields["unsafe_vcluster_overrides"]
            unsafe.disabled = True
            unsafe.help_text = "Superusers only. Kept as it is when you save."


class StudioChartForm(TemplateChartForm):
    """The admin's chart form; the install order may be left empty (after the others)."""

    position = forms.IntegerField(label="Install order", min_value=0, max_value=999, required=False)

    class Meta(TemplateChartForm.Meta):
        widgets = {"values": _textarea(8, yaml=True)}


class DraftChartFormSet(forms.BaseFormSet):
    """The charts of a draft. Not a model formset: draft charts are not rows yet."""

    def kept_forms(self) -> list[forms.Form]:
        """Filled-in forms not marked for removal, in install order."""
        kept = [
            (index, form)
            for index, form in enumerate(self.forms)
            if getattr(form, "cleaned_data", None) and not self._should_delete_form(form)
        ]
        order = sorted(
            kept,
            key=lambda item: (
                item[1].cleaned_data.get("position") is None,
                item[1].cleaned_data.get("position") or 0,
                item[0],
            ),
        )
        return [form for _index, form in order]

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[str] = set()
        for form in self.kept_forms():
            release = form.cleaned_data["release_name"]
            if release in seen:
                form.add_error(
                    "release_name",
                    f"Release name “{release}” is used by another chart; each chart needs its own.",
                )
            seen.add(release)


ChartFormSet = forms.formset_factory(
    StudioChartForm, formset=DraftChartFormSet, extra=1, can_delete=True
)


# --- Binding content to the editor -------------------------------------------------------------


def initial_values(document: dict[str, Any]) -> dict[str, Any]:
    """The form's initial values for a document (durations as timedelta for the pickers)."""
    document = with_defaults(document)
    return {name: setting_value(name, document[name]) for name in SETTINGS if name in document}


def initial_charts(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**chart, "position": position}
        for position, chart in enumerate(document.get("charts", []), start=1)
    ]


def form_data(document: dict[str, Any]) -> dict[str, str]:
    """What the editor would post for `document`: the import goes through the same forms."""
    data: dict[str, str] = {}
    for name in SETTINGS:
        if name not in document or document[name] is None:
            continue
        value = document[name]
        if name in DURATION_FIELDS:
            try:
                number, unit = split_duration(parse_duration_text(value))
            except ValueError:
                # Left for the form to refuse, on the right field.
                data[f"{name}_0"], data[f"{name}_1"] = str(value), "?"
                continue
            data[f"{name}_0"], data[f"{name}_1"] = str(number), unit
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = str(value)
    charts = document.get("charts", [])
    data |= {
        f"{CHARTS_PREFIX}-TOTAL_FORMS": str(len(charts)),
        f"{CHARTS_PREFIX}-INITIAL_FORMS": str(len(charts)),
        f"{CHARTS_PREFIX}-MIN_NUM_FORMS": "0",
        f"{CHARTS_PREFIX}-MAX_NUM_FORMS": "1000",
    }
    for index, chart in enumerate(charts):
        data[f"{CHARTS_PREFIX}-{index}-position"] = str(index + 1)
        for key in CHART_KEYS:
            value = chart.get(key)
            if value is not None:
                data[f"{CHARTS_PREFIX}-{index}-{key}"] = str(value)
    return data


@dataclass(frozen=True)
class SummaryItem:
    """One line of the error summary: the field's label, its message, where to jump."""

    anchor: str
    label: str
    message: str
    # Which chart, for a chart's field: "Chart app0".
    context: str = ""

    @property
    def text(self) -> str:
        # The checks' messages mostly name their field already ("Colour “blue” must be…").
        named = self.message.lower().startswith(self.label.lower())
        text = self.message if named else f"{self.label}: {self.message}"
        return f"{self.context}: {text}" if self.context else text


@dataclass(frozen=True)
class FieldView:
    """A bound field and the id of the element its label and the summary point at."""

    field: forms.BoundField

    @property
    def anchor(self) -> str:
        if isinstance(self.field.field.widget, forms.MultiWidget | forms.RadioSelect):
            return f"{self.field.auto_id}_0"
        return self.field.auto_id


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    fields: list[FieldView] = field(default_factory=list)
    is_charts: bool = False


SECTIONS: list[tuple[str, str, list[str]]] = [
    ("basics", "Basics", ["name", "slug", "icon", "colour", "kubernetes_version", "description"]),
    ("charts", "Charts", []),
    (
        "values",
        "Cluster values",
        [
            *("control_plane_cpu", "control_plane_memory", "storage_size"),
            *("quota_cpu", "quota_memory", "quota_pods"),
            *("vcluster_overrides", "unsafe_vcluster_overrides"),
        ],
    ),
    (
        "lifetimes",
        "Lifetimes and expiry",
        [
            *("default_lifetime", "max_lifetime", "extension_step", "max_extensions"),
            *("expiry_action", "retention", "provisioning_timeout", "max_concurrent"),
        ],
    ),
    ("warm-pool", "Warm pool", ["warm_pool_size", "warm_pool_schedule", "warm_pool_max_age"]),
    ("prospect", "Prospect-facing text", ["tagline", "prospect_description", "entry_url"]),
    ("live-link", "Live link", ["entry_service", "sleep_after"]),
    (
        "credentials",
        "Credentials and instructions",
        ["instructions", "credentials", "allow_kubeconfig_download"],
    ),
]


@dataclass
class Editor:
    """The template form and the chart forms of one edit, bound or not."""

    form: StudioTemplateForm
    charts: DraftChartFormSet

    def is_valid(self) -> bool:
        # Both, always: every error is reported at once, not the charts' after the form's.
        valid = self.form.is_valid()
        valid = self.charts.is_valid() and valid
        if valid:
            self._check_warm_pool()
        return self.ok()

    def ok(self) -> bool:
        """No error anywhere (after `is_valid()`, and after errors added since)."""
        return not self.form.errors and not self.charts.total_error_count()

    def _check_warm_pool(self) -> None:
        cleaned = self.form.cleaned_data
        texts: list[tuple[str, str]] = [
            ("Entry URL", cleaned["entry_url"]),
            ("Instructions", cleaned["instructions"]),
            ("Credentials", cleaned["credentials"]),
        ]
        for chart in self.charts.kept_forms():
            release = chart.cleaned_data["release_name"]
            texts.append((f"Values of chart {release}", chart.cleaned_data["values"]))
        for message in checks.warm_pool_problems(cleaned["warm_pool_size"] or 0, texts):
            self.form.add_error("warm_pool_size", message)

    def document(self) -> dict[str, Any]:
        """The validated content as a document. Only after `is_valid()`."""
        cleaned = self.form.cleaned_data
        document: dict[str, Any] = {"format": FORMAT}
        for name in SETTINGS:
            value = cleaned[name]
            document[name] = duration_text(value) if name in DURATION_FIELDS else value
        document["charts"] = [
            {key: chart.cleaned_data[key] for key in CHART_KEYS}
            for chart in self.charts.kept_forms()
        ]
        return document

    def sections(self) -> list[Section]:
        return [
            Section(
                key,
                title,
                [FieldView(self.form[name]) for name in names],
                is_charts=key == "charts",
            )
            for key, title, names in SECTIONS
        ]

    def summary(self) -> list[SummaryItem]:
        """Every error, in the order of the page, each pointing at its field."""
        items = [
            SummaryItem("", "Template", str(message)) for message in self.form.non_field_errors()
        ]
        for section in self.sections():
            if section.is_charts:
                items += list(self._chart_errors())
            for view in section.fields:
                items += [
                    SummaryItem(view.anchor, str(view.field.label), str(message))
                    for message in view.field.errors
                ]
        return items

    def _chart_errors(self) -> Iterator[SummaryItem]:
        for message in self.charts.non_form_errors():
            yield SummaryItem("charts", "Charts", str(message))
        for number, chart in enumerate(self.charts.forms, start=1):
            release = chart.data.get(chart.add_prefix("release_name")) or f"chart {number}"
            for message in chart.non_field_errors():
                yield SummaryItem(f"chart-{number}", f"Chart {release}", str(message))
            for name in chart.fields:
                bound = chart[name]
                for message in bound.errors:
                    yield SummaryItem(
                        bound.auto_id, str(bound.label), str(message), f"Chart {release}"
                    )


def editor_for(
    document: dict[str, Any],
    *,
    template: DemoTemplate | None,
    allow_unsafe: bool,
    data: dict[str, Any] | None = None,
) -> Editor:
    """The editor showing `document` (the draft, or the published content), bound to `data`
    when the person posted it.

    The form's instance is a fresh copy of the row, so the slug check knows which template this
    is; the form never saves it (construct_instance only changes the copy in memory).
    """
    instance = DemoTemplate.objects.get(pk=template.pk) if template else DemoTemplate()
    form = StudioTemplateForm(
        data, instance=instance, initial=initial_values(document), allow_unsafe=allow_unsafe
    )
    charts = ChartFormSet(
        data, prefix=CHARTS_PREFIX, initial=None if data is not None else initial_charts(document)
    )
    return Editor(form, charts)


def validate_document(
    document: dict[str, Any],
    *,
    template: DemoTemplate | None,
    current: dict[str, Any],
    allow_unsafe: bool,
) -> Editor:
    """Validate a document exactly as the editor validates a post of it.

    `current` is the template's content now (its draft or published document; for a new
    template, the defaults), which a person who may not change the unsafe overrides must keep.
    """
    # Settings the document leaves out keep what the template has now (a new template's
    # defaults), so a short file that names only what it changes is enough.
    current = with_defaults(current)
    document = {**current, **document}
    unreadable = {}
    for name in DURATION_FIELDS:
        if document[name] is None and name in OPTIONAL_DURATIONS:
            continue
        try:
            parse_duration_text(document[name])
        except ValueError as exc:
            unreadable[name] = str(exc)
    readable = {**document, **{name: current[name] for name in unreadable}}
    editor = editor_for(
        current, template=template, allow_unsafe=allow_unsafe, data=form_data(readable)
    )
    valid = editor.is_valid()
    for name, message in unreadable.items():
        editor.form.add_error(name, message)
        valid = False
    wanted = document.get("unsafe_vcluster_overrides") or ""
    if not allow_unsafe and valid and wanted != (current.get("unsafe_vcluster_overrides") or ""):
        editor.form.add_error(
            "unsafe_vcluster_overrides",
            "Unsafe vCluster overrides: only superusers may change these; keep the current "
            "value or ask a superuser.",
        )
    return editor


def problems_of(editor: Editor) -> list[str]:
    """The summary as plain lines, for the import command and the import page."""
    return [item.text for item in editor.summary()]
