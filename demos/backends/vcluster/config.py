"""The vCluster backend's settings, read once from Django settings into a plain, typed value.

Tests and the admin form build `VClusterSettings` directly; the running portal uses
`VClusterSettings.from_django()`. Every setting is documented in docs/vcluster.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from demos.backends.vcluster.snapshots import SNAPSHOT_SCHEMES, shown_url, url_problem

# Placeholders an operator may use in the URL templates below.
TEMPLATE_FIELDS = frozenset({"name", "namespace", "base_domain", "date"})
# What the URL templates are filled with to check them before any demo exists.
_SAMPLE = {"name": "demo-0123456789abcdef", "date": "20260101-000000"}
_PLACEHOLDER = re.compile(r"{([^{}]*)}")


@dataclass(frozen=True)
class VClusterSettings:
    """Everything the backend needs to know about the host cluster and the vCluster chart."""

    # Host cluster access: the pod's service account, or a kubeconfig file and context.
    in_cluster: bool = False
    kubeconfig: str = ""
    context: str = ""
    # The vCluster chart, installed with Helm.
    chart_repo: str = "https://charts.loft.sh"
    chart_name: str = "vcluster"
    chart_version: str = "0.36.1"
    helm_bin: str = "helm"
    helm_timeout_seconds: int = 300
    # What every demo's vcluster.yaml gets.
    base_domain: str = "demos.localhost"
    ingress_class: str = ""
    storage_class: str = ""
    image: str = "loft-sh/vcluster-oss"
    image_registry: str = "ghcr.io"
    namespace_prefix: str = "vcluster-"
    pod_security_standard: str = "baseline"
    network_policy: bool = False
    # Namespaces whose pods may reach demo apps through the NetworkPolicy: the ingress controller.
    ingress_namespace_selector: str = "kubernetes.io/metadata.name=ingress-nginx"
    # Least privilege: the worker holds namespaced rights only where it binds this ClusterRole,
    # in each demo namespace it creates (empty: the operator grants them some other way).
    namespace_role: str = "demo-portal-demo-namespace"
    worker_service_account: str = "demo-portal/portal-backend"
    chart_install_timeout_seconds: int = 300
    values_schema: str = ""
    # Labels tell this portal's clusters apart from anything else on the host (and from another
    # portal, e.g. staging, sharing the host), so orphan clean-up never touches foreign clusters.
    portal_instance: str = "default"
    # How the worker reaches each vCluster's API server, and how prospects reach it.
    api_server: str = "https://{name}.{namespace}:443"
    external_server: str = ""
    api_ingress_host: str = ""
    # Archives and restores.
    snapshot_url: str = ""
    vcluster_cli: str = ""
    cli_timeout_seconds: int = 900
    # Talking to things.
    request_timeout_seconds: int = 10
    http_check: bool = True
    http_check_verify_tls: bool = True
    extra_sans: tuple[str, ...] = field(default=())

    @classmethod
    def from_django(cls) -> VClusterSettings:
        """Read the VCLUSTER_* settings (see portal/settings.py), failing loudly on bad values."""
        from django.conf import settings

        def get(name: str, default: Any) -> Any:
            return getattr(settings, name, default)

        defaults = cls()
        value = cls(
            in_cluster=get("VCLUSTER_IN_CLUSTER", defaults.in_cluster),
            kubeconfig=get("VCLUSTER_KUBECONFIG", defaults.kubeconfig),
            context=get("VCLUSTER_CONTEXT", defaults.context),
            chart_repo=get("VCLUSTER_CHART_REPO", defaults.chart_repo),
            chart_name=get("VCLUSTER_CHART_NAME", defaults.chart_name),
            chart_version=get("VCLUSTER_CHART_VERSION", defaults.chart_version),
            helm_bin=get("VCLUSTER_HELM_BIN", defaults.helm_bin),
            helm_timeout_seconds=get("VCLUSTER_HELM_TIMEOUT", defaults.helm_timeout_seconds),
            base_domain=get("DEMO_BASE_DOMAIN", defaults.base_domain),
            ingress_class=get("VCLUSTER_INGRESS_CLASS", defaults.ingress_class),
            storage_class=get("VCLUSTER_STORAGE_CLASS", defaults.storage_class),
            image=get("VCLUSTER_IMAGE", defaults.image),
            image_registry=get("VCLUSTER_IMAGE_REGISTRY", defaults.image_registry),
            namespace_prefix=get("VCLUSTER_NAMESPACE_PREFIX", defaults.namespace_prefix),
            pod_security_standard=get(
                "VCLUSTER_POD_SECURITY_STANDARD", defaults.pod_security_standard
            ),
            network_policy=get("VCLUSTER_NETWORK_POLICY", defaults.network_policy),
            ingress_namespace_selector=get(
                "VCLUSTER_INGRESS_NAMESPACE_SELECTOR", defaults.ingress_namespace_selector
            ),
            namespace_role=get("VCLUSTER_NAMESPACE_ROLE", defaults.namespace_role),
            worker_service_account=get(
                "VCLUSTER_WORKER_SERVICE_ACCOUNT", defaults.worker_service_account
            ),
            chart_install_timeout_seconds=get(
                "VCLUSTER_CHART_INSTALL_TIMEOUT", defaults.chart_install_timeout_seconds
            ),
            values_schema=get("VCLUSTER_VALUES_SCHEMA", defaults.values_schema),
            portal_instance=get("VCLUSTER_PORTAL_INSTANCE", defaults.portal_instance),
            api_server=get("VCLUSTER_API_SERVER", defaults.api_server),
            external_server=get("VCLUSTER_EXTERNAL_SERVER", defaults.external_server),
            api_ingress_host=get("VCLUSTER_API_INGRESS_HOST", defaults.api_ingress_host),
            snapshot_url=get("VCLUSTER_SNAPSHOT_URL", defaults.snapshot_url),
            vcluster_cli=get("VCLUSTER_CLI", defaults.vcluster_cli),
            cli_timeout_seconds=get("VCLUSTER_CLI_TIMEOUT", defaults.cli_timeout_seconds),
            request_timeout_seconds=get(
                "VCLUSTER_REQUEST_TIMEOUT", defaults.request_timeout_seconds
            ),
            http_check=get("VCLUSTER_HTTP_CHECK", defaults.http_check),
            http_check_verify_tls=get(
                "VCLUSTER_HTTP_CHECK_VERIFY_TLS", defaults.http_check_verify_tls
            ),
            extra_sans=tuple(get("VCLUSTER_EXTRA_SANS", defaults.extra_sans)),
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
        if self.in_cluster and self.kubeconfig:
            found.append("Set either VCLUSTER_IN_CLUSTER=true or VCLUSTER_KUBECONFIG, not both.")
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
