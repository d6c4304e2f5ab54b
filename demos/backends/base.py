"""The one interface the lifecycle uses to run clusters.

Every method is idempotent and keyed by the demo's cluster name, so a job that runs twice, or a
reconcile sweep that repeats a step, does no harm. Methods raise `BackendError` with a message a
salesperson can act on; `transient=True` means "try again later" (the job retries with backoff).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# The frozen, rendered spec of one demo (see `demos.engine.specs.render_spec`): plain JSON data.
Spec = dict[str, Any]


class Phase(enum.StrEnum):
    ABSENT = "absent"  # nothing exists under this name
    CREATING = "creating"  # control plane starting
    INSTALLING = "installing"  # control plane up, charts installing
    CHECKING = "checking"  # charts installed, waiting for the live URL to answer
    READY = "ready"
    PAUSED = "paused"
    FAILED = "failed"
    DELETING = "deleting"


class ChartPhase(enum.StrEnum):
    PENDING = "pending"
    INSTALLING = "installing"
    # The install failed and is being tried again (vCluster retries charts until they succeed).
    RETRYING = "retrying"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True)
class ChartProgress:
    name: str
    namespace: str
    phase: ChartPhase
    message: str = ""


@dataclass(frozen=True)
class Observation:
    """What a backend sees of one cluster right now."""

    phase: Phase
    message: str = ""
    charts: tuple[ChartProgress, ...] = ()
    urls: tuple[str, ...] = ()
    # Technical detail for the event log (pod states, Helm output); never shown as the headline.
    detail: str = ""


class SnapshotPhase(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class SnapshotProgress:
    phase: SnapshotPhase
    location: str
    message: str = ""


@dataclass(frozen=True)
class ManagedCluster:
    name: str
    demo_id: str = ""
    created_at: datetime | None = None


@dataclass
class BackendError(Exception):
    """A failure worth telling a person about. `message` is the headline, `detail` the log."""

    message: str
    detail: str = ""
    transient: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class ClusterBackend(Protocol):
    """Implemented by `SimulatedBackend` and `VClusterBackend`."""

    name: str
    # Shown wherever a user sees a demo, e.g. "Simulated": users must know it is not real.
    label: str
    simulated: bool

    @property
    def can_restore(self) -> bool:
        """Whether archived snapshots can be restored into a new cluster here."""
        ...

    def apply(self, spec: Spec) -> None:
        """Create the cluster described by `spec` (or leave it as it is if it exists)."""
        ...

    def observe(self, spec: Spec) -> Observation:
        """Report the cluster's phase, per-chart progress, live URLs and a readable message."""
        ...

    def pause(self, name: str) -> bool:
        """Scale the cluster to zero, keeping its data. True once fully paused."""
        ...

    def resume(self, name: str) -> bool:
        """Undo `pause`. True once the control plane is asked to run again."""
        ...

    def snapshot(self, name: str, location: str) -> SnapshotProgress:
        """Start (first call) or follow (later calls) a snapshot of the cluster to `location`."""
        ...

    def restore(self, spec: Spec, location: str) -> None:
        """Create the cluster of `spec` from the snapshot at `location`."""
        ...

    def delete(self, name: str) -> bool:
        """Remove the cluster and everything created for it. True once nothing is left."""
        ...

    def list_clusters(self) -> list[ManagedCluster]:
        """Every cluster this backend manages for the portal (for orphan clean-up)."""
        ...

    def kubeconfig(self, name: str) -> str | None:
        """A kubeconfig usable from outside, or None when this backend cannot provide one."""
        ...

    def snapshot_location(self, name: str) -> str:
        """Where an archive of cluster `name` is stored (from the configured destination)."""
        ...
