"""Checks for what admins type into a demo template, run when the template is saved.

A mistake found here costs an admin a second; found when a salesperson starts a demo in front of a
customer, it costs the meeting. Every function returns messages (empty when all is well) that name
the field and say how to fix it; the admin form turns them into field errors. YAML and variable
rules come from `demos.engine.specs`, the vCluster rules from the vCluster backend, so there is one
checker for each, used both here and when a demo starts.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from croniter import croniter
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from demos.durations import format_duration
from demos.engine.lifecycle import MIN_LIFETIME, archive_refusal
from demos.engine.specs import (
    PERSONAL_VARIABLES,
    SpecError,
    check_entry_url,
    check_variables,
    parse_yaml,
    variables_in,
)

# A Kubernetes resource quantity without a sign: a number and an optional suffix.
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_DECIMAL |= {"P": 10**15, "E": 10**18}

MI = 2**20
GI = 2**30


@dataclass(frozen=True)
class QuantityRule:
    """What a sensible value of one resource field looks like, and an example to suggest."""

    label: str
    kind: str  # "cpu" (cores) or "bytes"
    minimum: Decimal
    maximum: Decimal
    example: str


CONTROL_PLANE_CPU = QuantityRule("Control-plane CPU", "cpu", Decimal("0.01"), Decimal(16), "200m")
CONTROL_PLANE_MEMORY = QuantityRule(
    "Control-plane memory", "bytes", Decimal(64 * MI), Decimal(64 * GI), "256Mi"
)
STORAGE_SIZE = QuantityRule("Storage size", "bytes", Decimal(256 * MI), Decimal(1024 * GI), "5Gi")
QUOTA_CPU = QuantityRule("Quota CPU", "cpu", Decimal("0.1"), Decimal(256), "4")
QUOTA_MEMORY = QuantityRule("Quota memory", "bytes", Decimal(128 * MI), Decimal(1024 * GI), "8Gi")

QUANTITY_FIELDS: dict[str, QuantityRule] = {
    "control_plane_cpu": CONTROL_PLANE_CPU,
    "control_plane_memory": CONTROL_PLANE_MEMORY,
    "storage_size": STORAGE_SIZE,
    "quota_cpu": QUOTA_CPU,
    "quota_memory": QUOTA_MEMORY,
}

# The control-plane pod, CoreDNS and at least one pod of the demo's own app.
MIN_QUOTA_PODS = 3

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# An exact SemVer 2 version (Helm requires SemVer for charts), optionally with a leading v.
_CHART_VERSION = re.compile(
    r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
)
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


# --- Single values -----------------------------------------------------------------------------


def parse_quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity in base units (cores or bytes); None if malformed."""
    match = _QUANTITY.match(text.strip())
    if not match:
        return None
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        return None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Decimal(_DECIMAL[suffix])
    if suffix:
        return number * Decimal(10) ** int(suffix[1:])
    return number


def quantity_problems(text: str, rule: QuantityRule) -> list[str]:
    value = parse_quantity(text)
    if value is None:
        hint = (
            "a number of cores such as 2 or 0.5, or thousandths with m such as 200m"
            if rule.kind == "cpu"
            else "a number with a suffix such as 256Mi or 8Gi (Ki, Mi, Gi, Ti are powers of "
            "1024; k, M, G, T powers of 1000)"
        )
        return [f"{rule.label}: “{text}” is not a Kubernetes quantity. Use {hint}."]
    if rule.minimum <= value <= rule.maximum:
        return []
    low, high = _show(rule.minimum, rule.kind), _show(rule.maximum, rule.kind)
    hint = ""
    if rule.kind == "bytes" and text.strip().endswith("m"):
        hint = " A lowercase m means thousandths, not mega: write Mi or M."
    elif rule.kind == "cpu" and value > rule.maximum and text.strip().isdigit():
        hint = f" Did you mean {text.strip()}m (thousandths of a core)?"
    return [
        f"{rule.label}: {text.strip()} is outside the sensible range {low} to {high}.{hint}"
        f" For example: {rule.example}."
    ]


def _show(value: Decimal, kind: str) -> str:
    if kind == "cpu":
        return f"{int(value * 1000)}m" if value < 1 else f"{value.normalize():f} cores"
    for suffix, size in (("Ti", 2**40), ("Gi", GI), ("Mi", MI)):
        if value >= size:
            return f"{(value / size).normalize():f}{suffix}"
    return f"{value:f} bytes"


def repository_problems(url: str) -> list[str]:
    """A chart repository must be an https:// or oci:// address with a host and no credentials."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "oci"):
        hint = (
            " Plain http:// is not accepted: charts must come over TLS."
            if url.startswith("http://")
            else ""
        )
        return [
            f"Chart repository “{url}” must start with https:// (a Helm repository) or oci:// "
            f"(an OCI registry).{hint}"
        ]
    if not parts.hostname or " " in url:
        return [f"Chart repository “{url}” has no valid host name."]
    if parts.username or parts.password:
        return [
            "Chart repository: do not put credentials in the URL; they would be copied into "
            "every demo. Configure registry access on the host cluster instead."
        ]
    allowed = settings.DEMO_CHART_REPOSITORIES
    if allowed:
        if any(_has_prefix(url, prefix) for prefix in allowed):
            return []
        return [
            f"Chart repository “{url}” is not one this portal installs from. Allowed: "
            f"{', '.join(allowed)} (DEMO_CHART_REPOSITORIES). Ask the operator to add it."
        ]
    refusal = internal_host_refusal(parts.hostname)
    if refusal:
        return [
            f"Chart repository “{url}”: {refusal}. Charts are fetched from inside the host "
            "cluster, so only public repositories are accepted (or the ones the operator lists "
            "in DEMO_CHART_REPOSITORIES)."
        ]
    return []


def _has_prefix(url: str, prefix: str) -> bool:
    # A prefix ends at a path boundary: "https://charts.example.com" must not let
    # "https://charts.example.com.evil.test" through.
    base = prefix.rstrip("/")
    return url.rstrip("/") == base or url.startswith(base + "/")


# Names that only resolve inside a cluster or a private network.
_INTERNAL_SUFFIXES = (".localhost", ".svc", ".cluster.local", ".internal", ".local", ".lan")
# Addresses that embed an IPv4 address a host would reach: NAT64's well-known prefix.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def internal_host_refusal(hostname: str) -> str:
    """Why `hostname` points inside the cluster or a private network; empty when it does not.

    Names are judged by their form only (no DNS lookup: the answer could change by the time
    the chart is fetched); the operator's allow-list and egress rules are the stronger control.
    """
    host = hostname.lower().rstrip(".")
    address = _ip_literal(host)
    if address is not None:
        if not address.is_global or address.is_multicast:
            return (
                f"{address} is not a public address (loopback, private, link-local, multicast "
                "or reserved)"
            )
        return ""
    if host == "localhost" or host.endswith(_INTERNAL_SUFFIXES):
        return f"“{host}” is a cluster-internal or local name"
    if "." not in host:
        return f"“{host}” is a bare name that only resolves inside a cluster or private network"
    return ""


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`host` as an address when it is one in any spelling a resolver accepts, else None.

    Besides the usual forms, C resolvers take 2130706433, 0x7f000001, 0177.1 and 127.1 as
    127.0.0.1; `inet_aton` reads them the same way, without any lookup.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not embedded.is_global:
            return embedded
    return address


def chart_name_problems(name: str) -> list[str]:
    if _CHART_NAME.match(name):
        return []
    return [f"Chart name “{name}” may contain only letters, digits, dots, dashes and underscores."]


def chart_version_problems(version: str) -> list[str]:
    if _CHART_VERSION.match(version.strip()):
        return []
    return [
        f"Chart version “{version}” must be an exact version such as 1.4.2: every demo of a "
        "template version must install the same chart."
    ]


def dns_label_problems(value: str, label: str, max_length: int) -> list[str]:
    if len(value) <= max_length and _DNS_LABEL.match(value):
        return []
    return [
        f"{label} “{value}” must be at most {max_length} lowercase letters, digits and dashes, "
        "starting and ending with a letter or digit."
    ]


def colour_problems(colour: str) -> list[str]:
    return [] if _COLOUR.match(colour) else [f"Colour “{colour}” must be written as #rrggbb."]


def schedule_problems(expression: str) -> list[str]:
    if not expression.strip() or croniter.is_valid(expression.strip()):
        return []
    return [
        f"Warm-pool schedule “{expression}” is not a cron expression. Use five fields "
        "(minute hour day month weekday), e.g. `* 8-18 * * 1-5` for working hours."
    ]


# --- Texts with variables and YAML -------------------------------------------------------------


def text_problems(text: str, field: str) -> list[str]:
    """A text where variables are substituted: every `${NAME}` must be a known variable."""
    try:
        check_variables(text, field)
    except SpecError as exc:
        return [str(exc)]
    return []


def entry_url_problems(url: str) -> list[str]:
    """An entry URL: known variables, and only ${DEMO_HOST} in its scheme or host."""
    problems = text_problems(url, "Entry URL")
    if problems:
        return problems
    try:
        check_entry_url(url)
    except SpecError as exc:
        return [str(exc)]
    if not url.startswith(("https://", "http://")):
        return ["Entry URL must start with https:// (or http://), e.g. https://${DEMO_HOST}/."]
    return []


def yaml_problems(text: str, field: str) -> list[str]:
    """A YAML mapping whose string values may use variables (chart values, credentials)."""
    try:
        data = parse_yaml(text, field)
    except SpecError as exc:
        return [str(exc)]
    problems = text_problems(text, field)
    # Variables are substituted inside values only, so one in a key would reach the chart as is.
    keys = sorted({key for key in _keys(data) if variables_in(key)})
    if keys:
        problems.append(
            f"{field}: variables are replaced in values, not in keys; move them out of "
            f"{', '.join(f'“{key}”' for key in keys)}."
        )
    return problems


def _keys(node: Any) -> Iterable[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def credentials_problems(text: str) -> list[str]:
    problems = yaml_problems(text, "Credentials")
    if problems:
        return problems
    data = parse_yaml(text, "Credentials")
    nested = sorted(str(key) for key, value in data.items() if isinstance(value, dict | list))
    if nested:
        return [
            "Credentials: each entry must be a single value (label: value); "
            f"{', '.join(nested)} is a list or mapping."
        ]
    return []


def overrides_problems(text: str, *, unsafe: bool = False) -> list[str]:
    """Extra vcluster.yaml: valid YAML, no variables, and accepted by the vCluster chart.

    Template admins' overrides must stay on the allow-list (docs/vcluster.md); `unsafe` is the
    superusers' layer, which skips that list but not the portal's own refusals. The schema check
    runs when an operator configured VCLUSTER_VALUES_SCHEMA.
    """
    label = "Unsafe vCluster overrides" if unsafe else "vCluster overrides"
    try:
        parse_yaml(text, label)
    except SpecError as exc:
        return [str(exc)]
    problems: list[str] = []
    if variables_in(text):
        problems.append(
            f"{label}: variables such as ${{DEMO_HOST}} are not replaced here; use a "
            "fixed value or move the setting into a chart's values."
        )
    # Here, not at the top: it loads the vCluster backend and its Kubernetes client (a third of a
    # second), which processes on the simulated backend never need.
    from demos.backends.vcluster.values import validate_overrides

    try:
        problems += validate_overrides(text, unsafe=unsafe)
    except ImproperlyConfigured as exc:
        problems.append(f"{label} cannot be checked: {exc}")
    return problems


# --- Several fields together -------------------------------------------------------------------


def lifetime_problems(fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """Lifetimes and timeouts, by field name. Missing values (already an error) are skipped."""
    problems: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    durations = {
        "default_lifetime": "Default lifetime",
        "max_lifetime": "Maximum lifetime",
        "extension_step": "Extension step",
        "retention": "Retention",
        "provisioning_timeout": "Provisioning timeout",
        "warm_pool_max_age": "Warm-pool maximum age",
    }
    for field, label in durations.items():
        value = fields.get(field)
        if value is not None and value < timedelta(0):
            add(field, f"{label} cannot be negative.")
    default, maximum = fields.get("default_lifetime"), fields.get("max_lifetime")
    if default is not None and timedelta(0) <= default < MIN_LIFETIME:
        add(
            "default_lifetime",
            f"Default lifetime must be at least {format_duration(MIN_LIFETIME)}.",
        )
    if default is not None and maximum is not None and default > maximum:
        add(
            "default_lifetime",
            f"Default lifetime ({format_duration(default)}) is longer than the maximum lifetime "
            f"({format_duration(maximum)}). Shorten it or raise the maximum.",
        )
    step, extensions = fields.get("extension_step"), fields.get("max_extensions")
    if extensions and step is not None and step <= timedelta(0):
        add(
            "extension_step",
            "Extension step must be longer than zero while extensions are allowed; set "
            "maximum extensions to 0 to forbid them.",
        )
    timeout = fields.get("provisioning_timeout")
    if timeout is not None and not timedelta(minutes=1) <= timeout <= timedelta(hours=2):
        add("provisioning_timeout", "Provisioning timeout must be between 1 minute and 2 hours.")
    retention, action = fields.get("retention"), fields.get("expiry_action")
    if action and action != "delete" and retention is not None and retention <= timedelta(0):
        add("retention", "Retention must be longer than zero when expired demos are kept.")
    if action == "archive":
        refusal = archive_refusal()
        if refusal:
            add("expiry_action", f"“Archive” is not available here. {refusal}")
    pool_age, pool_size = fields.get("warm_pool_max_age"), fields.get("warm_pool_size")
    if pool_size and pool_age is not None and pool_age < timedelta(minutes=5):
        add("warm_pool_max_age", "Warm-pool maximum age must be at least 5 minutes.")
    return problems


def quota_problems(fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """The quota also counts the control-plane pod, so it must leave room for the demo's apps."""
    problems: dict[str, list[str]] = {}
    pods = fields.get("quota_pods")
    if pods is not None and pods < MIN_QUOTA_PODS:
        problems["quota_pods"] = [
            f"Quota pods must be at least {MIN_QUOTA_PODS}: the control plane and CoreDNS count "
            "against it too."
        ]
    for quota_field, plane_field, rule in (
        ("quota_cpu", "control_plane_cpu", QUOTA_CPU),
        ("quota_memory", "control_plane_memory", QUOTA_MEMORY),
    ):
        quota = parse_quantity(str(fields.get(quota_field) or ""))
        plane = parse_quantity(str(fields.get(plane_field) or ""))
        if quota is not None and plane is not None and quota <= plane:
            problems[quota_field] = [
                f"{rule.label} ({fields[quota_field]}) must be larger than the control plane's "
                f"request ({fields[plane_field]}), which counts against it, or no app can start."
            ]
    return problems


def warm_pool_problems(pool_size: int, texts: Iterable[tuple[str, str]]) -> list[str]:
    """Spares are started before anyone claims them, so personal variables cannot be filled in.

    `texts` are the template's (field, text) pairs, as `demos.engine.specs.template_texts` yields
    them for a saved template; the form passes the unsaved ones.
    """
    if not pool_size:
        return []
    where: dict[str, list[str]] = {}
    for field, text in texts:
        for name in sorted(variables_in(text or "") & PERSONAL_VARIABLES):
            where.setdefault(name, []).append(field)
    if not where:
        return []
    used = "; ".join(f"${{{name}}} in {', '.join(where[name])}" for name in sorted(where))
    return [
        f"Warm pool size must be 0 for this template: spares are started before a salesperson "
        f"claims them, so these variables cannot be filled in and prevent pre-provisioning: "
        f"{used}. Remove them or turn the warm pool off."
    ]
