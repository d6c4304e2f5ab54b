"""The embedded backend: walks the phases of a real vCluster without a Kubernetes cluster.

Clusters live as `SimulatedCluster` rows, and the phase is computed from how long ago the cluster
was applied, so any worker can observe any cluster and a restarted worker picks up where the last
one stopped. Each step (control plane, each chart in order, the app check) takes
DEMO_SIM_STEP_SECONDS. Failures can be injected by step, by template or by chance, and transient
errors at a rate, for tests and fault drills. The live link is a sample page the portal serves,
labelled as simulated.
"""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.urls import reverse
from django.utils import timezone

from demos.backends.base import (
    BackendError,
    ChartPhase,
    ChartProgress,
    ManagedCluster,
    Observation,
    Phase,
    SnapshotPhase,
    SnapshotProgress,
    Spec,
)
from demos.gate import hosts
from demos.models import SimulatedCluster

SNAPSHOT_SCHEME = "simulated://snapshots/"


def _steps(spec: Spec) -> list[str]:
    return ["cluster", *(f"chart:{chart['name']}" for chart in spec["charts"]), "check"]


def _failure_message(step: str, spec: Spec) -> tuple[str, str]:
    if step == "cluster":
        return (
            "The cluster did not start: its control plane kept crashing (simulated failure).",
            "pod demo-0: container syncer: CrashLoopBackOff (injected by DEMO_SIM_FAIL_*)",
        )
    if step.startswith("chart:"):
        name = step.removeprefix("chart:")
        chart = next((c for c in spec["charts"] if c["name"] == name), {"chart": name})
        image = f"registry.example.com/{chart['chart']}:{chart.get('version', 'latest')}"
        return (
            f"Chart “{name}” failed: image pull error for {image} (simulated failure).",
            f"pod {name}-0: ErrImagePull: {image}: not found (injected by DEMO_SIM_FAIL_*)",
        )
    return (
        "The app did not answer at its live URL (simulated failure).",
        "GET entry URL: connection refused (injected by DEMO_SIM_FAIL_*)",
    )


class SimulatedBackend:
    name = "simulated"
    label = "Simulated"
    simulated = True

    @property
    def can_restore(self) -> bool:
        return True

    # Failure injection --------------------------------------------------------------------

    def _maybe_transient_error(self, operation: str) -> None:
        rate = settings.DEMO_SIM_ERROR_RATE
        if rate and random.random() < rate:  # noqa: S311 - test-only chaos, not security
            raise BackendError(
                f"The cluster API did not answer while {operation} (simulated outage).",
                detail="injected by DEMO_SIM_ERROR_RATE",
                transient=True,
            )

    def _choose_failure(self, spec: Spec) -> str:
        steps = _steps(spec)
        wanted = settings.DEMO_SIM_FAIL_STEP
        if wanted:
            if wanted == "chart":
                return next((s for s in steps if s.startswith("chart:")), "")
            return wanted if wanted in steps else ""
        if spec["template"]["slug"] in settings.DEMO_SIM_FAIL_TEMPLATES:
            return steps[-1]
        rate = settings.DEMO_SIM_FAIL_RATE
        if rate and random.random() < rate:  # noqa: S311
            return random.choice(steps)  # noqa: S311
        return ""

    # The interface --------------------------------------------------------------------------

    def apply(self, spec: Spec) -> None:
        self._maybe_transient_error("creating the cluster")
        # A concurrent apply may create it first: same outcome.
        with contextlib.suppress(IntegrityError):
            SimulatedCluster.objects.get_or_create(
                name=spec["cluster_name"],
                defaults={
                    "spec": spec,
                    "step_seconds": settings.DEMO_SIM_STEP_SECONDS,
                    "fail_step": self._choose_failure(spec),
                },
            )

    def restore(self, spec: Spec, location: str) -> None:
        if not location.startswith(SNAPSHOT_SCHEME):
            raise BackendError(
                f"The snapshot at {location} was not made by the simulated backend, so it "
                "cannot be restored here.",
                transient=False,
            )
        self.apply(spec)

    def observe(self, spec: Spec) -> Observation:
        self._maybe_transient_error("checking the cluster")
        cluster = SimulatedCluster.objects.filter(name=spec["cluster_name"]).first()
        if cluster is None:
            return Observation(Phase.ABSENT, "The cluster does not exist.")
        if cluster.paused:
            return Observation(Phase.PAUSED, "The cluster is paused.")
        steps = _steps(cluster.spec)
        elapsed = (timezone.now() - cluster.applied_at).total_seconds()
        current = len(steps) if cluster.step_seconds <= 0 else int(elapsed // cluster.step_seconds)
        if cluster.fail_step in steps and steps.index(cluster.fail_step) <= current:
            message, detail = _failure_message(cluster.fail_step, cluster.spec)
            return Observation(
                Phase.FAILED, message, self._charts(steps, current, cluster), (), detail
            )
        charts = self._charts(steps, current, cluster)
        if current == 0:
            return Observation(Phase.CREATING, "Starting the control plane.")
        if current < len(steps) - 1:
            installing = steps[current].removeprefix("chart:")
            return Observation(Phase.INSTALLING, f"Installing {installing}.", charts)
        urls = (self.live_url(cluster.name),)
        if current == len(steps) - 1:
            return Observation(Phase.CHECKING, "Checking that the app answers.", charts, urls)
        return Observation(Phase.READY, "The demo is ready.", charts, urls)

    def _charts(
        self, steps: list[str], current: int, cluster: SimulatedCluster
    ) -> tuple[ChartProgress, ...]:
        charts = []
        for index, step in enumerate(steps):
            if not step.startswith("chart:"):
                continue
            if step == cluster.fail_step and index <= current:
                phase = ChartPhase.FAILED
            elif index < current:
                phase = ChartPhase.SUCCESS
            elif index == current:
                phase = ChartPhase.INSTALLING
            else:
                phase = ChartPhase.PENDING
            namespace = next(
                (c["namespace"] for c in cluster.spec["charts"] if f"chart:{c['name']}" == step),
                "default",
            )
            charts.append(ChartProgress(step.removeprefix("chart:"), namespace, phase))
        return tuple(charts)

    def pause(self, name: str) -> bool:
        self._maybe_transient_error("pausing the cluster")
        SimulatedCluster.objects.filter(name=name).update(paused=True)
        return True

    def resume(self, name: str) -> bool:
        self._maybe_transient_error("resuming the cluster")
        cluster = SimulatedCluster.objects.filter(name=name).first()
        if cluster is None:
            raise BackendError(
                "The paused cluster no longer exists, so it cannot be resumed.", transient=False
            )
        if cluster.paused:
            # Charts are already installed: only the control plane has to come back (one step).
            replay = timedelta(seconds=cluster.step_seconds * (len(_steps(cluster.spec)) - 1))
            SimulatedCluster.objects.filter(name=name, paused=True).update(
                paused=False, applied_at=timezone.now() - replay
            )
        return True

    def snapshot(self, name: str, location: str) -> SnapshotProgress:
        self._maybe_transient_error("taking a snapshot")
        cluster = SimulatedCluster.objects.filter(name=name).first()
        if cluster is None:
            return SnapshotProgress(SnapshotPhase.FAILED, location, "The cluster does not exist.")
        record = next((s for s in cluster.snapshots if s["location"] == location), None)
        if record is None:
            record = {"location": location, "requested_at": timezone.now().isoformat()}
            cluster.snapshots = [*cluster.snapshots, record]
            cluster.save(update_fields=["snapshots"])
        started = datetime.fromisoformat(record["requested_at"])
        if (timezone.now() - started).total_seconds() < cluster.step_seconds:
            return SnapshotProgress(SnapshotPhase.RUNNING, location, "Saving the datastore.")
        return SnapshotProgress(SnapshotPhase.COMPLETED, location)

    def delete(self, name: str) -> bool:
        self._maybe_transient_error("deleting the cluster")
        SimulatedCluster.objects.filter(name=name).delete()
        return True

    def list_clusters(self) -> list[ManagedCluster]:
        return [
            ManagedCluster(name, spec.get("demo_id", ""), applied_at)
            for name, spec, applied_at in SimulatedCluster.objects.values_list(
                "name", "spec", "applied_at"
            )
        ]

    def kubeconfig(self, name: str) -> str | None:
        if not SimulatedCluster.objects.filter(name=name).exists():
            return None
        return _SIMULATED_KUBECONFIG.format(name=name)

    def snapshot_location(self, name: str) -> str:
        return f"{SNAPSHOT_SCHEME}{name}/{timezone.now():%Y%m%dT%H%M%S}"

    def live_url(self, name: str) -> str:
        if settings.DEMO_GATE:
            return hosts.simulated_origin(name) + "/"
        return settings.SITE_URL + reverse("demos:simulated_app", args=[name])

    def cluster_state(self, name: str) -> dict[str, Any] | None:
        """What the sample app page shows (only the simulated backend serves one)."""
        cluster = SimulatedCluster.objects.filter(name=name).first()
        if cluster is None or cluster.paused:
            return None
        return {"name": cluster.name, "spec": cluster.spec, "applied_at": cluster.applied_at}


_SIMULATED_KUBECONFIG = """\
# SIMULATED: this demo runs on the portal's simulated backend. There is no real cluster behind
# this kubeconfig; with the vCluster backend you would get working credentials here.
apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: https://{name}.simulated.invalid
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}
current-context: {name}
users:
- name: {name}
  user:
    token: simulated
"""
