"""Rendering the kustomize tree and walking the objects it produces, for the deploy tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from upstream.tools import ToolError, kustomize

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
# Every directory with a kustomization under k8s/overlays is an overlay, so a new one is tested
# without anyone remembering to add it here.
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
# The base is rendered too: it must stay valid on its own for overlays to build on it.
TREES = ["base", *(f"overlays/{name}" for name in OVERLAYS)]

# Kinds whose pods run for as long as the workload exists (and so need probes).
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
WORKLOADS = LONG_RUNNING | {"Job"}

Manifest = dict[str, Any]


@cache
def render(tree: str) -> tuple[Manifest, ...]:
    """`kubectl kustomize` of k8s/<tree>, as parsed objects. Fails the test without kubectl."""
    try:
        return tuple(dict(doc) for doc in kustomize(tree))
    except ToolError as exc:
        pytest.fail(str(exc))


def name_of(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def find(objects: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"{kind}/{name} is not in the rendered objects")


def of_kind(objects: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


@dataclass(frozen=True)
class Container:
    """One container with the pod and workload it belongs to."""

    workload: Manifest
    pod: Manifest
    spec: Manifest
    init: bool

    @property
    def label(self) -> str:
        kind = "init container" if self.init else "container"
        return f"{name_of(self.workload)} {kind} {self.spec['name']}"

    @property
    def long_running(self) -> bool:
        return self.workload["kind"] in LONG_RUNNING and not self.init


def pod_spec(workload: Manifest) -> Manifest:
    return workload["spec"]["template"]["spec"]


def workloads(objects: tuple[Manifest, ...]) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] in WORKLOADS]


def containers(objects: tuple[Manifest, ...]) -> Iterator[Container]:
    for workload in workloads(objects):
        pod = pod_spec(workload)
        for spec in pod.get("initContainers", []):
            yield Container(workload, pod, spec, init=True)
        for spec in pod["containers"]:
            yield Container(workload, pod, spec, init=False)


def portal_containers(objects: tuple[Manifest, ...]) -> list[Container]:
    """Containers that run the portal's own image (named demo-portal in every overlay)."""
    return [c for c in containers(objects) if image_name(c.spec["image"]).endswith("demo-portal")]


def image_name(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def config_data(objects: tuple[Manifest, ...]) -> dict[str, str]:
    """The portal's settings ConfigMap (its generated name carries a hash suffix)."""
    maps = [
        m
        for m in of_kind(objects, "ConfigMap")
        if m["metadata"]["name"].startswith("portal-config")
    ]
    assert len(maps) == 1, f"expected one portal-config ConfigMap, found {len(maps)}"
    return maps[0]["data"]


def env_sources(container: Container) -> dict[str, Manifest]:
    """The container's explicit `env` entries by name."""
    return {item["name"]: item for item in container.spec.get("env", [])}
