"""Rendering a template into the frozen spec a demo runs from, and checking template input.

A demo keeps the spec it was started with, so editing a template never changes a running demo.
Variables are `${NAME}`; `$${NAME}` is a literal `${NAME}`. YAML (chart values, credentials) is
parsed first, with the bounded loader, and variables are substituted inside string values only,
so a prospect called `Acme: "Inc"` cannot break (or inject into) the YAML. Values are always one
line, so none can start a new line of credentials or a new block of Markdown instructions
either. In the entry URL only `${DEMO_HOST}` may stand in the scheme or host: any other variable
there would let whoever fills it in send the prospect's "Open demo" to another site.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import yaml
from django.conf import settings

from demos.bounded_yaml import BoundedYAMLError, load_bounded

if TYPE_CHECKING:
    from demos.models import Demo, DemoTemplate, TemplateChart

VARIABLES: dict[str, str] = {
    "DEMO_HOST": "Host name of the demo, e.g. demo-1a2b3c4d.demos.example.com",
    "DEMO_ID": "Public id of the demo",
    "DEMO_NAME": "Cluster name of the demo (a DNS label)",
    "TEMPLATE_SLUG": "Slug of the template",
    "PROSPECT_NAME": "Prospect's name, as entered at start",
    "PROSPECT_COMPANY": "Prospect's company, as entered at start",
    "OWNER_EMAIL": "Email of the salesperson who started it",
    "OWNER_NAME": "Name of the salesperson who started it",
}
# Values only known once a person claims the demo: templates using them cannot be pre-started.
PERSONAL_VARIABLES = frozenset({"PROSPECT_NAME", "PROSPECT_COMPANY", "OWNER_EMAIL", "OWNER_NAME"})

_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SpecError(ValueError):
    """A template cannot be rendered. The message names the field and what to fix."""


def variables_in(text: str) -> set[str]:
    return {name for escape, name in _VARIABLE.findall(text) if not escape}


def check_variables(text: str, field: str) -> None:
    unknown = sorted(variables_in(text) - VARIABLES.keys())
    if unknown:
        known = ", ".join(f"${{{name}}}" for name in VARIABLES)
        raise SpecError(
            f"{field}: unknown variable {', '.join(f'${{{n}}}' for n in unknown)}. "
            f"Known variables: {known}."
        )


def substitute(text: str, variables: Mapping[str, str], field: str = "text") -> str:
    check_variables(text, field)

    def replace(match: re.Match[str]) -> str:
        escape, name = match.groups()
        return "${" + name + "}" if escape else str(variables[name])

    return _VARIABLE.sub(replace, text)


# An entry URL's scheme, user, host and port: everything before the path, query or fragment.
_URL_AUTHORITY = re.compile(r"^[^/?#]*(//[^/?#]*)?")
HOST_VARIABLES = frozenset({"DEMO_HOST"})


def check_entry_url(url: str) -> None:
    """Refuse variables other than ${DEMO_HOST} in the scheme, user or host of an entry URL."""
    match = _URL_AUTHORITY.match(url.strip())
    head = match.group(0) if match else ""
    refused = sorted(variables_in(head) - HOST_VARIABLES)
    if refused:
        raise SpecError(
            f"Entry URL: {', '.join(f'${{{name}}}' for name in refused)} cannot be part of the "
            "address's scheme or host, or the link could lead to another site; only ${DEMO_HOST} "
            "may be there. Use other variables in the path or query, e.g. "
            "https://${DEMO_HOST}/?company=${PROSPECT_COMPANY}."
        )


def parse_yaml(text: str, field: str, *, mapping: bool = True) -> Any:
    """Parse YAML within the bounded loader's limits; errors name the field, line and column."""
    try:
        data = load_bounded(text, field=field)
    except BoundedYAMLError as exc:
        raise SpecError(str(exc)) from None
    if data is None:
        return {} if mapping else None
    if mapping and not isinstance(data, dict):
        raise SpecError(
            f"{field}: expected a YAML mapping (key: value), got {type(data).__name__}."
        )
    return data


def _substitute_tree(node: Any, variables: Mapping[str, str], field: str) -> Any:
    if isinstance(node, str):
        return substitute(node, variables, field)
    if isinstance(node, dict):
        return {key: _substitute_tree(value, variables, field) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute_tree(item, variables, field) for item in node]
    return node


def render_values(text: str, variables: Mapping[str, str], field: str) -> str:
    """Chart values as a YAML string with variables substituted in its string values."""
    data = parse_yaml(text, field)
    return yaml.safe_dump(_substitute_tree(data, variables, field), sort_keys=False) if data else ""


def demo_host(cluster_name: str) -> str:
    return f"{cluster_name}.{settings.DEMO_BASE_DOMAIN}"


def _one_line(value: str) -> str:
    # Line breaks (and any other run of white space) become one space: a value typed into a
    # form must never add a line to the credentials or a block to the instructions.
    return " ".join(value.split())


def demo_variables(demo: Demo) -> dict[str, str]:
    owner = demo.owner
    variables = {
        "DEMO_HOST": demo_host(demo.cluster_name),
        "DEMO_ID": str(demo.public_id),
        "DEMO_NAME": demo.cluster_name,
        "TEMPLATE_SLUG": demo.template.slug,
        "PROSPECT_NAME": demo.prospect_name,
        "PROSPECT_COMPANY": demo.prospect_company,
        "OWNER_EMAIL": owner.email if owner else "",
        "OWNER_NAME": (owner.get_full_name() or owner.get_username()) if owner else "",
    }
    return {name: _one_line(value) for name, value in variables.items()}


def template_texts(template: DemoTemplate) -> Iterable[tuple[str, str]]:
    """Every (field, text) of a template that may contain variables."""
    yield "Entry URL", template.entry_url
    yield "Instructions", template.instructions
    yield "Credentials", template.credentials
    for chart in template.charts.all():
        yield f"Values of chart {chart.release_name}", chart.values


def personal_variables_used(template: DemoTemplate) -> set[str]:
    used: set[str] = set()
    for _field, text in template_texts(template):
        used |= variables_in(text) & PERSONAL_VARIABLES
    return used


def _check_repositories(charts: Iterable[TemplateChart]) -> None:
    """The save-time repository rules again, for templates saved before they (or the operator's
    DEMO_CHART_REPOSITORIES) changed: no demo fetches charts from an internal address."""
    from demos.catalog.validation import repository_problems

    for chart in charts:
        problems = repository_problems(chart.repository)
        if problems:
            raise SpecError(problems[0])


def render_spec(demo: Demo) -> dict[str, Any]:
    """The complete, frozen description of what to run for `demo`. Plain JSON data."""
    template = demo.template
    variables = demo_variables(demo)
    check_entry_url(template.entry_url)
    charts = list(template.charts.all())
    _check_repositories(charts)
    credentials = parse_yaml(template.credentials, "Credentials")
    return {
        "cluster_name": demo.cluster_name,
        "demo_id": str(demo.public_id),
        "template": {"slug": template.slug, "name": template.name, "version": template.version},
        "kubernetes_version": template.kubernetes_version,
        "resources": {"cpu": template.control_plane_cpu, "memory": template.control_plane_memory},
        "storage_size": template.storage_size,
        "quota": {
            "cpu": template.quota_cpu,
            "memory": template.quota_memory,
            "pods": template.quota_pods,
        },
        "vcluster_overrides": parse_yaml(template.vcluster_overrides, "vCluster overrides"),
        "unsafe_vcluster_overrides": parse_yaml(
            template.unsafe_vcluster_overrides, "Unsafe vCluster overrides"
        ),
        "charts": [
            {
                "name": chart.release_name,
                "chart": chart.chart,
                "repository": chart.repository,
                "version": chart.version,
                "namespace": chart.namespace,
                "values": render_values(
                    chart.values, variables, f"Values of chart {chart.release_name}"
                ),
            }
            for chart in charts
        ],
        "host": variables["DEMO_HOST"],
        "entry_url": substitute(template.entry_url, variables, "Entry URL"),
        "instructions": substitute(template.instructions, variables, "Instructions"),
        "credentials": {
            str(label): substitute(str(value), variables, "Credentials")
            for label, value in credentials.items()
        },
        "allow_kubeconfig_download": template.allow_kubeconfig_download,
        "provisioning_timeout_seconds": int(template.provisioning_timeout.total_seconds()),
        # The live link (demos.gate): what serves it, and how long it may sit unused before the
        # demo sleeps (None: never).
        "entry_service": template.entry_service,
        "sleep_after_seconds": _seconds(template.sleep_after) if template.sleep_after else None,
        "policy": {
            "extension_step_seconds": _seconds(template.extension_step),
            "max_extensions": template.max_extensions,
            "max_lifetime_seconds": _seconds(template.max_lifetime),
            "expiry_action": str(template.expiry_action),
            "retention_seconds": _seconds(template.retention),
        },
        "variables": variables,
    }


def _seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())


@dataclass(frozen=True)
class Policy:
    """The rules a demo lives by, frozen into its spec at start: editing the template later
    changes new demos only."""

    extension_step: timedelta
    max_extensions: int
    max_lifetime: timedelta
    expiry_action: str
    retention: timedelta
    provisioning_timeout: timedelta

    @classmethod
    def of(cls, demo: Demo) -> Policy:
        frozen = demo.spec["policy"]
        return cls(
            extension_step=timedelta(seconds=frozen["extension_step_seconds"]),
            max_extensions=frozen["max_extensions"],
            max_lifetime=timedelta(seconds=frozen["max_lifetime_seconds"]),
            expiry_action=frozen["expiry_action"],
            retention=timedelta(seconds=frozen["retention_seconds"]),
            provisioning_timeout=timedelta(seconds=demo.spec["provisioning_timeout_seconds"]),
        )
