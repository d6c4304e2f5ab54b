"""The steps a salesperson watches while a demo starts, as plain JSON on `Demo.progress`.

Pure functions: each takes a progress dict and returns a new one, so they are trivial to test and
the lifecycle decides when to store them.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from django.utils import timezone

from demos.backends.base import ChartPhase, Observation, Phase
from demos.durations import format_duration

Progress = dict[str, Any]

PENDING, ACTIVE, DONE, FAILED = "pending", "active", "done", "failed"
_CHART_STATE = {
    ChartPhase.PENDING: PENDING,
    ChartPhase.INSTALLING: ACTIVE,
    ChartPhase.RETRYING: ACTIVE,
    ChartPhase.SUCCESS: DONE,
    ChartPhase.FAILED: FAILED,
}


def _step(key: str, label: str) -> dict[str, Any]:
    return {"key": key, "label": label, "state": PENDING, "started_at": None, "finished_at": None}


def chart_title(chart: dict[str, Any]) -> str:
    """A frozen spec's chart as a salesperson reads it: "oci://…/payments-api" is "Payments api".

    Steps and the timeline's sentences name charts so; release names, chart versions and cluster
    names are for the people who run templates (the demo page's technical details)."""
    name = (chart.get("chart") or chart.get("name", "")).rstrip("/").rsplit("/", 1)[-1]
    name = name.replace("-", " ").replace("_", " ").strip()
    return name[:1].upper() + name[1:]


def initial(spec: dict[str, Any], *, queued_done: bool = False) -> Progress:
    # Keys stay by release: that is how the backend reports each chart.
    steps = [
        _step("queued", "Waiting for capacity"),
        _step("cluster", "Creating the cluster"),
        *(
            _step(f"chart:{chart['name']}", f"Installing {chart_title(chart)}")
            for chart in spec["charts"]
        ),
        _step("check", "Checking the app"),
        _step("ready", "Ready"),
    ]
    if queued_done:
        steps[0]["state"] = DONE
    return {"steps": steps}


def _iso(at: datetime | None) -> str:
    return (at or timezone.now()).isoformat()


def _set(step: dict[str, Any], state: str, at: datetime | None = None) -> None:
    if step["state"] == state:
        return
    if state in (ACTIVE, DONE, FAILED) and not step["started_at"]:
        step["started_at"] = _iso(at)
    if state in (DONE, FAILED):
        step["finished_at"] = _iso(at)
    step["state"] = state


def mark(progress: Progress, key: str, state: str, at: datetime | None = None) -> Progress:
    new = copy.deepcopy(progress)
    for step in new.get("steps", []):
        if step["key"] == key:
            _set(step, state, at)
    return new


def cluster_is_up(progress: Progress) -> bool:
    return any(s["key"] == "cluster" and s["state"] == DONE for s in progress.get("steps", []))


def all_done(progress: Progress, at: datetime | None = None) -> Progress:
    new = copy.deepcopy(progress)
    for step in new.get("steps", []):
        _set(step, DONE, at)
    return new


def mark_failed(progress: Progress) -> Progress:
    new = copy.deepcopy(progress)
    steps = new.get("steps", [])
    failed = [s for s in steps if s["state"] == FAILED]
    active = [s for s in steps if s["state"] == ACTIVE]
    if not failed and active:
        _set(active[0], FAILED)
    elif not failed:
        pending = [s for s in steps if s["state"] == PENDING]
        if pending:
            _set(pending[0], FAILED)
    for step in steps:
        if step["state"] == ACTIVE:
            step["state"] = PENDING
    return new


def apply_observation(progress: Progress, observation: Observation) -> tuple[Progress, list[str]]:
    """Progress after `observation`, and a sentence for each step that finished or failed."""
    new = copy.deepcopy(progress)
    steps = {step["key"]: step for step in new.get("steps", [])}
    before = {key: step["state"] for key, step in steps.items()}
    phase = observation.phase
    if "queued" in steps:
        _set(steps["queued"], DONE)
    charts = [key for key in steps if key.startswith("chart:")]
    if phase == Phase.CREATING:
        _set(steps["cluster"], ACTIVE)
    elif phase in (Phase.INSTALLING, Phase.CHECKING, Phase.READY) or (
        phase == Phase.FAILED and observation.charts
    ):
        # Chart progress (even in a failure report) means the control plane came up.
        _set(steps["cluster"], DONE)
        reported = {f"chart:{chart.name}": chart for chart in observation.charts}
        for key in charts:
            if phase in (Phase.CHECKING, Phase.READY):
                _set(steps[key], DONE)
            elif key in reported:
                _set(steps[key], _CHART_STATE[reported[key].phase])
        if phase == Phase.INSTALLING and not reported:
            first_open = next((k for k in charts if steps[k]["state"] != DONE), None)
            if first_open:
                _set(steps[first_open], ACTIVE)
        if phase in (Phase.CHECKING, Phase.READY):
            _set(steps["check"], ACTIVE if phase == Phase.CHECKING else DONE)
    news = []
    for key, step in steps.items():
        if before[key] == step["state"]:
            continue
        if step["state"] == DONE and key != "queued":
            news.append(f"{step['label']}: done ({format_duration(step_seconds(step))}).")
        elif step["state"] == FAILED:
            news.append(f"{step['label']}: failed.")
    return new, news


def step_seconds(step: dict[str, Any]) -> float | None:
    """Seconds a step took (or has taken so far), for display."""
    if not step.get("started_at"):
        return None
    start = datetime.fromisoformat(step["started_at"])
    end = datetime.fromisoformat(step["finished_at"]) if step.get("finished_at") else timezone.now()
    return max((end - start).total_seconds(), 0.0)
