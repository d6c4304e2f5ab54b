"""The template document: one template's settings, charts and values as plain data.

One shape serves everything that holds a template's content outside its database row: drafts,
published versions, the YAML export and import, and the diff between two versions. Durations
are written as text such as `2h` or `14d` (the largest unit that divides them exactly), so a
person can read and edit an exported file; an optional one left empty is `null` (`sleep_after:
null`: the demo never sleeps).

    document = content_of_template(template)   # from the row and its charts
    text = to_yaml(document)                    # what `export_template` writes
    document = parse_yaml_document(text)        # what `import_template` reads (then validates)
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import yaml

from demos.bounded_yaml import BoundedYAMLError, load_bounded
from demos.catalog.forms import CHART_FIELDS, TEMPLATE_FIELDS
from demos.models import DemoTemplate, TemplateChart

FORMAT = "demo-template/1"
# The live link (demos.gate): edited in the studio and by superusers in the admin.
LIVE_LINK_FIELDS = ["sleep_after", "entry_service"]
# Availability is not content: enabling a template is not a new version (see
# demos.catalog.services.set_template_enabled), so `enabled` is not part of a document.
SETTINGS: list[str] = [
    *(name for name in TEMPLATE_FIELDS if name != "enabled" and name not in LIVE_LINK_FIELDS),
    *LIVE_LINK_FIELDS,
]
DURATION_FIELDS = frozenset(
    field.name
    for field in DemoTemplate._meta.concrete_fields
    if field.get_internal_type() == "DurationField" and field.name in SETTINGS
)
# Durations that may be empty: `null` in a document (for `sleep_after`: never).
OPTIONAL_DURATIONS = frozenset(
    name for name in DURATION_FIELDS if DemoTemplate._meta.get_field(name).null
)
# A chart's place in the list is its install order, so `position` is not written out.
CHART_KEYS: list[str] = [name for name in CHART_FIELDS if name != "position"]
DOCUMENT_KEYS = frozenset({"format", *SETTINGS, "charts"})

# A document holds several YAML texts (each at most 64 KiB) besides its own settings.
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DOCUMENT_NODES = 50_000

# (suffix, seconds, unit name), largest first.
DURATION_UNITS: tuple[tuple[str, int, str], ...] = (
    ("d", 86400, "days"),
    ("h", 3600, "hours"),
    ("m", 60, "minutes"),
    ("s", 1, "seconds"),
)
_DURATION_TEXT = re.compile(r"^\s*([0-9]{1,9})\s*([dhms])\s*$")


class DocumentError(ValueError):
    """A document that cannot be read at all (not YAML, not a mapping, wrong format)."""


def split_duration(value: timedelta) -> tuple[int, str]:
    """A duration as (number, unit suffix) in the largest unit that divides it exactly."""
    seconds = int(value.total_seconds())
    for suffix, size, _name in DURATION_UNITS:
        if seconds % size == 0:
            return seconds // size, suffix
    return seconds, "s"


def duration_text(value: timedelta | None) -> str | None:
    """`2h` for two hours; None (an optional duration left empty) stays None."""
    if value is None:
        return None
    number, suffix = split_duration(value)
    return f"{number}{suffix}"


def parse_duration_text(text: Any) -> timedelta:
    """`2h`, `90m`, `14d`, `30s` as a duration; ValueError for anything else."""
    match = _DURATION_TEXT.match(str(text))
    if not match:
        raise ValueError(
            f"“{text}” is not a duration. Write a whole number and a unit: d (days), h (hours), "
            "m (minutes) or s (seconds), e.g. 2h or 90m."
        )
    size = next(size for suffix, size, _name in DURATION_UNITS if suffix == match[2])
    return timedelta(seconds=int(match[1]) * size)


def _normalised(value: Any) -> Any:
    # As the editor's form stores text: line breaks as LF, no surrounding blanks. So content read
    # from a row saved elsewhere compares equal to the same content saved from the editor.
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return value


def content_of_template(template: DemoTemplate) -> dict[str, Any]:
    """The document of what `template`'s row and charts hold now."""
    document: dict[str, Any] = {"format": FORMAT}
    for name in SETTINGS:
        value = getattr(template, name)
        document[name] = duration_text(value) if name in DURATION_FIELDS else _normalised(value)
    charts = template.charts.order_by("position", "pk") if template.pk else []
    document["charts"] = [
        {key: _normalised(getattr(chart, key)) for key in CHART_KEYS} for chart in charts
    ]
    return document


def setting_value(name: str, value: Any) -> Any:
    """One setting of a document as its model field's value (a duration as timedelta)."""
    if name not in DURATION_FIELDS or (value is None and name in OPTIONAL_DURATIONS):
        return value
    return parse_duration_text(value)


# Settings added after the format was first written: a document without them reads as if it
# had their defaults.
LATER_FIELDS = [*LIVE_LINK_FIELDS, "prospect_description"]


def with_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with the settings added since (`LATER_FIELDS`) at their defaults when it
    lacks them: drafts, versions and files written before those settings existed read as if
    they had them."""
    missing = {name: _default_text(name) for name in LATER_FIELDS if name not in document}
    return {**missing, **document} if missing else document


def _default_text(name: str) -> Any:
    default = DemoTemplate._meta.get_field(name).get_default()
    return duration_text(default) if name in DURATION_FIELDS else default


def setting_values(document: dict[str, Any]) -> dict[str, Any]:
    """The document's settings as model field values (durations as timedelta)."""
    document = with_defaults(document)
    return {name: setting_value(name, document[name]) for name in SETTINGS}


def apply_content(template: DemoTemplate, document: dict[str, Any]) -> None:
    """Write a validated document into `template`'s row and replace its charts.

    Only publishing calls this: the row is what demos start from.
    """
    for name, value in setting_values(document).items():
        setattr(template, name, value)
    template.save()
    template.charts.all().delete()
    TemplateChart.objects.bulk_create(
        TemplateChart(template=template, position=position, **chart)
        for position, chart in enumerate(document["charts"])
    )


def template_from_content(template: DemoTemplate, document: dict[str, Any]) -> DemoTemplate:
    """An unsaved copy of `template` holding the document's content, charts included.

    For rendering content that is not (yet) the row's: previews and test launches. The copy
    keeps the row's primary key (a test launch belongs to the template) but must never be
    saved; its charts are in memory, so `copy.charts.all()` answers without the database.
    """
    copy = DemoTemplate(
        pk=template.pk,
        enabled=template.enabled,
        version=template.version,
        published_version_id=template.published_version_id,
        **setting_values(document),
    )
    charts = [
        TemplateChart(template=copy, position=position, **chart)
        for position, chart in enumerate(document["charts"])
    ]
    # What `prefetch_related("charts")` leaves behind: the related manager answers from it.
    copy._prefetched_objects_cache = {"charts": charts}
    return copy


class _DocumentDumper(yaml.SafeDumper):
    """Block style for texts of several lines, so chart values read as they were typed."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_DocumentDumper.add_representer(str, _represent_text)


def to_yaml(document: dict[str, Any]) -> str:
    """The document as YAML, keys in a fixed order: the same content always gives the same
    bytes, so exports can live in git and be compared."""
    document = with_defaults(document)
    ordered = {key: document[key] for key in ("format", *SETTINGS, "charts") if key in document}
    ordered["charts"] = [
        {key: chart[key] for key in CHART_KEYS if key in chart}
        for chart in ordered.get("charts", [])
    ]
    return yaml.dump(
        ordered,
        Dumper=_DocumentDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=10_000,
    )


def parse_yaml_document(text: str) -> dict[str, Any]:
    """Read one template document. Only its shape is checked here; the content is validated by
    the editor's own forms (`demos.studio.forms.validate_document`)."""
    try:
        data = load_bounded(
            text, field="Template file", max_bytes=MAX_DOCUMENT_BYTES, max_nodes=MAX_DOCUMENT_NODES
        )
    except BoundedYAMLError as exc:
        raise DocumentError(str(exc)) from None
    if not isinstance(data, dict):
        raise DocumentError("Template file: expected a YAML mapping of settings and charts.")
    if data.get("format") != FORMAT:
        raise DocumentError(
            f"Template file: the first key must be `format: {FORMAT}` (found "
            f"{data.get('format')!r}); it is what an export writes."
        )
    unknown = sorted(str(key) for key in data if key not in DOCUMENT_KEYS)
    if unknown:
        raise DocumentError(f"Template file: unknown settings {', '.join(unknown)}.")
    charts = data.get("charts") or []
    if not isinstance(charts, list) or not all(isinstance(chart, dict) for chart in charts):
        raise DocumentError("Template file: `charts` must be a list of charts (mappings).")
    for number, chart in enumerate(charts, start=1):
        unknown = sorted(str(key) for key in chart if key not in CHART_KEYS)
        if unknown:
            raise DocumentError(
                f"Template file: chart {number} has unknown keys {', '.join(unknown)}."
            )
    return data
