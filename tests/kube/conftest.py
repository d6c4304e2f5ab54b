"""Fixtures for the vCluster backend tests: a host cluster API and a vCluster API (two kmock
emulators on real ports), the players standing in for controllers and Helm, and a backend wired
to them through the real `kubernetes` client.

Every request the backend sends to the host emulator is recorded; after each test the recorded
calls must all be declared in `demos.backends.vcluster.permissions.BACKEND_CALLS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from host_player import FakeHelm, HostPlayer, VClusterPlayer
from kmock_shim import EmulatorThread, KubeEmulator
from kube_support import (
    CLUSTER,
    SCHEMA,
    BackendFactory,
    ReadyzSwitch,
    RecordingApiClient,
    Site,
    undeclared,
)

from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.config import VClusterSettings
from demos.backends.vcluster.values import example_spec


@pytest.fixture
def host() -> Iterator[EmulatorThread]:
    """The host cluster's API server."""
    with EmulatorThread() as emulator:
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
def helm(player: HostPlayer) -> FakeHelm:
    return FakeHelm(player)


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    yield served
    served.close()


@pytest.fixture
def cfg(vcluster_api: EmulatorThread) -> VClusterSettings:
    """Settings as an operator would set them; the schema check is on when the schema is here.
    The worker reaches every vCluster at the vCluster emulator, as through a port-forward."""
    return VClusterSettings(
        values_schema=str(SCHEMA) if SCHEMA.is_file() else "",
        api_server=vcluster_api.url,
        base_domain="demos.example.com",
        storage_class="standard",
        request_timeout_seconds=5,
    )


@pytest.fixture
def spec(site: Site) -> dict[str, Any]:
    return example_spec(CLUSTER, entry_url=site.url)


@pytest.fixture
def make_backend(
    host: EmulatorThread, helm: FakeHelm, cfg: VClusterSettings
) -> Iterator[BackendFactory]:
    """Build backends on the emulated host; afterwards, check every call they made is declared."""
    clients: list[RecordingApiClient] = []

    def build(**changes: Any) -> VClusterBackend:
        api = host.api_client(RecordingApiClient)
        clients.append(api)
        options = {k: changes.pop(k) for k in ("cli_runner", "probe", "clock") if k in changes}
        return VClusterBackend(replace(cfg, **changes), host_api=api, helm_runner=helm, **options)

    yield build
    calls = [call for api in clients for call in api.calls]
    assert not undeclared(calls), f"API calls missing from permissions.py: {undeclared(calls)}"


@pytest.fixture
def backend(make_backend: BackendFactory) -> VClusterBackend:
    return make_backend()
