"""Fixtures for the vCluster backend tests: a host cluster API and a vCluster API (two kmock
emulators on real ports), the players standing in for controllers and Helm, and a backend wired
to them through the real `kubernetes` client.

The backend and its Helm runner authenticate as the worker, and the host authorizes every request
they send against the worker's rights in the portal's production manifests (host_rbac.py); Helm
installs the real upstream chart (chart_helm.py); the vCluster's deploy controller behaves as
upstream's (deploy_controller.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import yaml
from chart_helm import ChartHelm
from deploy_controller import DeployController
from host_player import HostPlayer, VClusterPlayer
from host_rbac import WORKER_TOKEN, HostAuthorizer
from kmock_shim import EmulatorThread, KubeEmulator
from kube_support import CLUSTER, BackendFactory, ReadyzSwitch, RecordingApiClient, Site
from upstream.chart import SCHEMA

from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.values import example_spec


@pytest.fixture(scope="session")
def production_rbac_manifests() -> list[dict[str, Any]]:
    return HostAuthorizer().manifests


@pytest.fixture
def authorizer(production_rbac_manifests: list[dict[str, Any]]) -> HostAuthorizer:
    return HostAuthorizer(production_rbac_manifests)


@pytest.fixture
def host(authorizer: HostAuthorizer) -> Iterator[EmulatorThread]:
    """The host cluster's API server, authorizing the worker as the portal's RBAC does."""
    with EmulatorThread() as emulator:
        emulator.set_authorizer(authorizer)
        yield emulator


@pytest.fixture
def readyz() -> ReadyzSwitch:
    return ReadyzSwitch()


@pytest.fixture
def vcluster_api(readyz: ReadyzSwitch) -> Iterator[EmulatorThread]:
    """The API server inside the demo's vCluster (reached through its exported kubeconfig)."""

    def configure(emulator: KubeEmulator) -> None:
        emulator["get /readyz"] << readyz

    with EmulatorThread(configure) as emulator:
        yield emulator


@pytest.fixture
def player(host: EmulatorThread) -> HostPlayer:
    return HostPlayer(host.api_client())


@pytest.fixture
def vplayer(vcluster_api: EmulatorThread) -> VClusterPlayer:
    return VClusterPlayer(vcluster_api.api_client())


@pytest.fixture
def helm(host: EmulatorThread) -> ChartHelm:
    """`helm`, installing the upstream chart on the host as the worker."""
    return ChartHelm(host.api_client(token=WORKER_TOKEN))


@pytest.fixture
def deploy(vcluster_api: EmulatorThread, helm: ChartHelm) -> Callable[[], DeployController]:
    """vCluster's deploy controller for the values of the last install."""

    def start() -> DeployController:
        return DeployController(vcluster_api.api_client(), yaml.safe_load(helm.values[-1]))

    return start


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    yield served
    served.close()


@pytest.fixture
def cfg(vcluster_api: EmulatorThread) -> VClusterSettings:
    """Settings as an operator would set them, checking values against the upstream schema.
    The worker reaches every vCluster at the vCluster emulator, as through a port-forward."""
    return VClusterSettings(
        values_schema=str(SCHEMA),
        api_server=vcluster_api.url,
        base_domain="demos.example.com",
        storage_class="standard",
        request_timeout_seconds=5,
    )


@pytest.fixture
def spec(site: Site) -> dict[str, Any]:
    return example_spec(CLUSTER, entry_url=site.url)


@pytest.fixture
def make_backend(host: EmulatorThread, helm: ChartHelm, cfg: VClusterSettings) -> BackendFactory:
    """Build backends on the emulated host, authenticated as the worker."""

    def build(**changes: Any) -> VClusterBackend:
        api = host.api_client(RecordingApiClient, token=WORKER_TOKEN)
        options = {k: changes.pop(k) for k in ("cli_runner", "probe", "clock") if k in changes}
        return VClusterBackend(replace(cfg, **changes), host_api=api, helm_runner=helm, **options)

    return build


@pytest.fixture
def backend(make_backend: BackendFactory) -> VClusterBackend:
    return make_backend()
