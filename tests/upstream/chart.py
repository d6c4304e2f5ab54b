"""`helm template` of the vendored upstream vCluster chart (tests/fixtures/vcluster-chart, v0.36.1).

What this returns is exactly what `helm upgrade --install` would create on a host cluster for the
same values, so tests of cluster behaviour start from upstream's own templates, not from ours.
The real `helm` is required: `make test` fetches a pinned one (scripts/get-tools), and a missing
binary fails the test instead of skipping it.
"""

from __future__ import annotations

import copy
import subprocess
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import yaml

from upstream.tools import ROOT, binary

CHART = ROOT / "tests" / "fixtures" / "vcluster-chart"
SCHEMA = CHART / "values.schema.json"
CHART_VERSION = "0.36.1"
# Host Kubernetes versions the chart's templates branch on (role.yaml adds pods/resize from 1.35).
HOST_VERSIONS = ("1.33.0", "1.35.0")

Manifest = dict[str, Any]


class ChartRenderError(Exception):
    """helm refused to render the chart with these values."""


def render_chart(
    values_yaml: str, *, name: str, namespace: str, kube_version: str = "1.35.0"
) -> list[Manifest]:
    """Every object `helm template` of the vendored chart renders for `values_yaml`, in order.

    Raises `ChartRenderError` with helm's own message when the chart refuses the values (schema
    or template validation), as `helm upgrade --install` would.
    """
    # Copies: callers may change what they get, the cache must not see it.
    return copy.deepcopy(list(_render(values_yaml, name, namespace, kube_version)))


@lru_cache(maxsize=64)
def _render(
    values_yaml: str, name: str, namespace: str, kube_version: str
) -> tuple[Mapping[str, Any], ...]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
        values_file.write(values_yaml)
        values_file.flush()
        result = subprocess.run(
            [
                binary("helm"),
                "template",
                name,
                str(CHART),
                "--namespace",
                namespace,
                "--kube-version",
                kube_version,
                "--values",
                values_file.name,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode != 0:
        raise ChartRenderError(result.stderr.strip())
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj.get("kind") == kind]


def values_yaml(values: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(values), sort_keys=False)
