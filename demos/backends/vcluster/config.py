"""The vCluster backend's settings: each declared once, as a typed field with its default.

Each field names the setting it comes from. portal/settings.py reads every `VCLUSTER_*` one from
the environment variable of that name with the portal's typed readers (`VClusterSettings.
variables()`), so a bad value stops start-up naming the variable; `from_django()` builds the value
from those Django settings, so tests may override one setting at a time. Tests and the admin
form also build `VClusterSettings` directly. Every setting is documented in docs/vcluster.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from demos.backends.vcluster.snapshots import SNAPSHOT_SCHEMES, shown_url, url_problem

# Placeholders an operator may use in the URL templates below.
TEMPLATE_FIELDS = frozenset({"name", "namespace", "base_domain", "date"})
# What the URL templates are filled with to check them before any demo exists.
_SAMPLE = {"name": "demo-0123456789abcdef", "date": "20260101-000000"}
_PLACEHOLDER = re.compile(r"{([^{}]*)}")

Default = bool | int | str | tuple[str, ...]


class Variable(NamedTuple):
    """One `VCLUSTER_*` environment variable: its type is its default's (a tuple is a
    comma-separated list); whole numbers must be at least `minimum`."""

    name: str
    default: Default
    minimum: int


def _setting(name: str, default: Default, *, minimum: int = 0, portal_wide: bool = False) -> Any:
    """A field read from the Django setting `name`. Portal-wide settings (not `VCLUSTER_*`) are
    read from the environment with the rest of the portal's; the others by `variables()`."""
    return field(
        default=default, metadata={"setting": name, "minimum": minimum, "portal_wide": portal_wide}
    )


@dataclass(frozen=True)
class VClusterSettings:
    """Everything the backend needs to know about the host cluster and the vCluster chart."""

    # Host cluster access: the pod's service account, or a kubeconfig file and context.
    in_cluster: bool = _setting("VCLUSTER_IN_CLUSTER", False)
    kubeconfig: str = _setting("VCLUSTER_KUBECONFIG", "")
    context: str = _setting("VCLUSTER_CONTEXT", "")
    # The vCluster chart, installed with Helm. portal/settings.py prefers a pinned helm from
    # scripts/get-tools when there is one.
    chart_repo: str = _setting("VCLUSTER_CHART_REPO", "https://charts.loft.sh")
    chart_name: str = _setting("VCLUSTER_CHART_NAME", "vcluster")
    chart_version: str = _setting("VCLUSTER_CHART_VERSION", "0.36.1")
    helm_bin: str = _setting("VCLUSTER_HELM_BIN", "helm")
    helm_timeout_seconds: int = _setting("VCLUSTER_HELM_TIMEOUT", 300, minimum=10)
    # What every demo's vcluster.yaml gets. Demo host names are shared with the whole portal.
    base_domain: str = _setting("DEMO_BASE_DOMAIN", "demos.localhost", portal_wide=True)
    ingress_class: str = _setting("VCLUSTER_INGRESS_CLASS", "")
    storage_class: str = _setting("VCLUSTER_STORAGE_CLASS", "")
    image: str = _setting("VCLUSTER_IMAGE", "loft-sh/vcluster-oss")
    image_registry: str = _setting("VCLUSTER_IMAGE_REGISTRY", "ghcr.io")
    namespace_prefix: str = _setting("VCLUSTER_NAMESPACE_PREFIX", "vcluster-")
    pod_security_standard: str = _setting("VCLUSTER_POD_SECURITY_STANDARD", "baseline")
    network_policy: bool = _setting("VCLUSTER_NETWORK_POLICY", False)
    # Namespaces whose pods may reach demo apps through the NetworkPolicy: the ingress controller.
    ingress_namespace_selector: str = _setting(
        "VCLUSTER_INGRESS_NAMESPACE_SELECTOR", "kubernetes.io/metadata.name=ingress-nginx"
    )
    # Least privilege: the worker holds namespaced rights only where it binds this ClusterRole
    # (k8s/base/rbac.yaml), in each demo namespace it creates (empty: the operator grants them
    # some other way).
    namespace_role: str = _setting("VCLUSTER_NAMESPACE_ROLE", "demo-portal-demo-namespace")
    worker_service_account: str = _setting(
        "VCLUSTER_WORKER_SERVICE_ACCOUNT", "demo-portal/portal-backend"
    )
    chart_install_timeout_seconds: int = _setting("VCLUSTER_CHART_INSTALL_TIMEOUT", 300, minimum=10)
    # The chart's values.schema.json (of chart_version); empty skips the schema check.
    values_schema: str = _setting("VCLUSTER_VALUES_SCHEMA", "")
    # Labels tell this portal's clusters apart from anything else on the host (and from another
    # portal, e.g. staging, sharing the host), so orphan clean-up never touches foreign clusters.
    portal_instance: str = _setting("VCLUSTER_PORTAL_INSTANCE", "default")
    # How the worker reaches each vCluster's API server (the default is the in-cluster Service),
    # how prospects reach it from outside (empty: no prospect kubeconfigs), and the host of an
    # ingress exposing it.
    api_server: str = _setting("VCLUSTER_API_SERVER", "https://{name}.{namespace}:443")
    external_server: str = _setting("VCLUSTER_EXTERNAL_SERVER", "")
    api_ingress_host: str = _setting("VCLUSTER_API_INGRESS_HOST", "")
    # Archives, and the vcluster CLI that restores need (without it, archives are not restored).
    snapshot_url: str = _setting("VCLUSTER_SNAPSHOT_URL", "")
    vcluster_cli: str = _setting("VCLUSTER_CLI", "")
    cli_timeout_seconds: int = _setting("VCLUSTER_CLI_TIMEOUT", 900, minimum=30)
    # Talking to things; the last step of "ready" is the live link answering HTTP.
    request_timeout_seconds: int = _setting("VCLUSTER_REQUEST_TIMEOUT", 10, minimum=1)
    http_check: bool = _setting("VCLUSTER_HTTP_CHECK", True)
    http_check_verify_tls: bool = _setting("VCLUSTER_HTTP_CHECK_VERIFY_TLS", True)
    extra_sans: tuple[str, ...] = _setting("VCLUSTER_EXTRA_SANS", ())
    # Gated live links (portal-wide, declared in portal/settings.py): with DEMO_GATE on and an
    # ingress controller in DEMO_GATE_CONTROLLER, the backend creates each demo host's routing
    # itself (entry.py): the app behind the controller's forward auth to DEMO_GATE_AUTH_URL,
    # /.portal-gate/ to the portal's Service, and a denied browser sent to SITE_URL's sign-in.
    gate: bool = _setting("DEMO_GATE", True, portal_wide=True)
    gate_controller: str = _setting("DEMO_GATE_CONTROLLER", "portal", portal_wide=True)
    gate_auth_url: str = _setting(
        "DEMO_GATE_AUTH_URL",
        "http://portal-web.demo-portal.svc.cluster.local/gate/check/",
        portal_wide=True,
    )
    gate_portal_service: str = _setting(
        "DEMO_GATE_PORTAL_SERVICE", "portal-web.demo-portal.svc.cluster.local", portal_wide=True
    )
    gate_portal_port: int = _setting("DEMO_GATE_PORTAL_PORT", 80, minimum=1, portal_wide=True)
    site_url: str = _setting("SITE_URL", "http://127.0.0.1:8000", portal_wide=True)
    # The TLS Secret (in each demo namespace) of the demo hosts' Ingresses; empty: no `tls`
    # section, the controller's default certificate (e.g. ingress-nginx's
    # --default-ssl-certificate, a wildcard for DEMO_BASE_DOMAIN) serves them.
    entry_tls_secret: str = _setting("VCLUSTER_ENTRY_TLS_SECRET", "")
    # DEMO_GATE_CONTROLLER=envoy-gateway: the Gateway (NAMESPACE/NAME) demo routes attach to.
    gateway: str = _setting("VCLUSTER_GATEWAY", "")

    @classmethod
    def variables(cls) -> list[Variable]:
        """The `VCLUSTER_*` environment variables, one per field, for portal/settings.py."""
        return [
            Variable(f.metadata["setting"], f.default, f.metadata["minimum"])
            for f in fields(cls)
            if not f.metadata["portal_wide"]
        ]

    @classmethod
    def from_django(cls) -> VClusterSettings:
        """The value the Django settings hold (see portal/settings.py), failing loudly on bad
        values. Read afresh on each call, so overriding one setting in a test takes effect."""
        value = cls(
            **{
                f.name: _typed(getattr(settings, f.metadata["setting"], f.default), f.default)
                for f in fields(cls)
            }
        )
        problems = value.problems()
        if problems:
            raise ImproperlyConfigured(" ".join(problems))
        return value

    def problems(self) -> list[str]:
        """Configuration mistakes, each as a sentence naming the setting and the fix."""
        found: list[str] = []
        for setting, template in (
            ("VCLUSTER_API_SERVER", self.api_server),
            ("VCLUSTER_EXTERNAL_SERVER", self.external_server),
            ("VCLUSTER_API_INGRESS_HOST", self.api_ingress_host),
            ("VCLUSTER_SNAPSHOT_URL", self.snapshot_url),
        ):
            unknown = sorted(set(_PLACEHOLDER.findall(template)) - TEMPLATE_FIELDS)
            if unknown:
                found.append(
                    f"{setting}={template!r} uses unknown placeholder(s) "
                    f"{', '.join('{' + u + '}' for u in unknown)}; use "
                    f"{', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))}."
                )
        if not self.api_server.startswith("https://"):
            found.append(
                f"VCLUSTER_API_SERVER={self.api_server!r} must be an https:// URL: the vCluster "
                "API only speaks TLS."
            )
        if self.external_server and not self.external_server.startswith("https://"):
            found.append(
                f"VCLUSTER_EXTERNAL_SERVER={self.external_server!r} must start with https://."
            )
        if self.snapshot_url and urlsplit(self.snapshot_url).scheme not in SNAPSHOT_SCHEMES:
            found.append(
                f"VCLUSTER_SNAPSHOT_URL={self.snapshot_url!r} must start with one of "
                f"{', '.join(s + '://' for s in SNAPSHOT_SCHEMES)}."
            )
        elif self.snapshot_url:
            found.extend(self._snapshot_url_problems())
        if self.pod_security_standard not in ("", "privileged", "baseline", "restricted"):
            found.append(
                f"VCLUSTER_POD_SECURITY_STANDARD={self.pod_security_standard!r} must be "
                "privileged, baseline or restricted."
            )
        if self.values_schema and not Path(self.values_schema).is_file():
            found.append(
                f"VCLUSTER_VALUES_SCHEMA={self.values_schema!r} is not a readable file: point it "
                "at values.schema.json of vCluster chart version "
                f"{self.chart_version}, or leave it empty to skip validation."
            )
        if self.network_policy and not self.ingress_labels():
            found.append(
                f"VCLUSTER_INGRESS_NAMESPACE_SELECTOR={self.ingress_namespace_selector!r} must be "
                "labels as key=value[,key=value] naming the ingress controller's namespace: with "
                "VCLUSTER_NETWORK_POLICY on, nothing else may reach a demo's apps."
            )
        if self.namespace_role and len(self.worker_service_account.split("/")) != 2:
            found.append(
                f"VCLUSTER_WORKER_SERVICE_ACCOUNT={self.worker_service_account!r} must be "
                "NAMESPACE/NAME of the worker's ServiceAccount."
            )
        found.extend(self._gate_problems())
        if self.in_cluster and self.kubeconfig:
            found.append("Set either VCLUSTER_IN_CLUSTER=true or VCLUSTER_KUBECONFIG, not both.")
        return found

    @property
    def routes_entry(self) -> bool:
        """Whether the backend creates each demo host's gated routing (entry.py)."""
        return self.gate and self.gate_controller != "portal"

    def _gate_problems(self) -> list[str]:
        """Settings the gated routing cannot do without (only when the backend creates it)."""
        if not self.routes_entry:
            return []
        found = []
        auth = urlsplit(self.gate_auth_url)
        if auth.scheme not in ("http", "https") or not auth.hostname:
            found.append(
                f"DEMO_GATE_AUTH_URL={self.gate_auth_url!r} must be the http(s):// URL of the "
                "portal's /gate/check/ that the ingress controller can reach."
            )
        if self.gate_controller == "envoy-gateway" and len(self.gateway.split("/")) != 2:
            found.append(
                f"VCLUSTER_GATEWAY={self.gateway!r} must be NAMESPACE/NAME of the Gateway that "
                "demo routes attach to (DEMO_GATE_CONTROLLER=envoy-gateway)."
            )
        return found

    def _snapshot_url_problems(self) -> list[str]:
        """VCLUSTER_SNAPSHOT_URL parsed as vCluster parses it, so a bad option stops start-up
        rather than failing the first archive. Credentials and options stay out of the message."""
        shown = shown_url(self.snapshot_url)
        try:
            filled = self.fill(
                self.snapshot_url,
                name=_SAMPLE["name"],
                namespace=self.namespace_prefix + _SAMPLE["name"],
                date=_SAMPLE["date"],
            )
        except (KeyError, IndexError):
            return []  # an unknown placeholder, reported above
        except ValueError:
            return [f"VCLUSTER_SNAPSHOT_URL={shown!r} has an unmatched {{ or }}."]
        problem = url_problem(filled)
        if not problem:
            return []
        return [f"VCLUSTER_SNAPSHOT_URL={shown!r} is not usable: {problem}."]

    def ingress_labels(self) -> dict[str, str]:
        """VCLUSTER_INGRESS_NAMESPACE_SELECTOR as labels (empty when malformed)."""
        labels: dict[str, str] = {}
        for term in self.ingress_namespace_selector.split(","):
            key, sep, value = term.strip().partition("=")
            if not sep or not key.strip():
                return {}
            labels[key.strip()] = value.strip()
        return labels

    def fill(self, template: str, *, name: str, namespace: str, date: str = "") -> str:
        """Fill one of the URL templates for cluster `name`."""
        return template.format(
            name=name, namespace=namespace, base_domain=self.base_domain, date=date
        )


def _typed(value: Any, default: Default) -> Any:
    """A list setting as the tuple a frozen value holds (settings may be overridden as lists)."""
    return tuple(value) if isinstance(default, tuple) else value
