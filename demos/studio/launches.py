"""Test launches: a demo started from a template's draft, for its template admins only.

It goes through the lifecycle's one start path (`start_demo`), given a copy of the template
that holds the draft's content instead of the row's; the spec frozen at start is rendered from
that copy, so the demo runs the draft while the catalog keeps offering the published version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet

from demos.engine import progress
from demos.engine.lifecycle import start_demo
from demos.models import Demo, DemoTemplate
from demos.studio import documents
from demos.studio.versions import Actor, log_change, working_content

# Recent test launches listed on a template's page.
LISTED = 10


def start_test_launch(*, template: DemoTemplate, actor: Actor, start_token: str = "") -> Demo:
    """Start a demo of the template's draft (or of its published content when there is no
    draft) for `actor`. Raises LifecycleError as any start does (capacity, invalid content)."""
    content = working_content(template)
    draft = documents.template_from_content(template, content)
    demo = start_demo(
        template=draft,
        owner=actor.user,
        prospect_company="Test launch",
        start_token=start_token,
        test_launch=True,
    )
    log_change(template, actor, f"Test launch {demo.cluster_name} started from the studio.")
    return demo


def recent_test_launches(template: DemoTemplate) -> QuerySet[Demo]:
    return Demo.objects.filter(template=template, is_test_launch=True).select_related("owner")


@dataclass(frozen=True)
class StepResult:
    label: str
    state: str
    seconds: float | None


@dataclass(frozen=True)
class LaunchReport:
    """What a test launch shows: its state, time to ready and each chart's result."""

    demo: Demo
    charts: list[StepResult]
    steps: list[StepResult]

    @property
    def time_to_ready(self) -> timedelta | None:
        return self.demo.time_to_ready


def launch_report(demo: Demo) -> LaunchReport:
    steps = [
        StepResult(step["label"], step["state"], progress.step_seconds(step))
        for step in demo.progress.get("steps", [])
    ]
    charts = [
        StepResult(chart_label(step), step["state"], progress.step_seconds(step))
        for step in demo.progress.get("steps", [])
        if step["key"].startswith("chart:")
    ]
    return LaunchReport(demo=demo, charts=charts, steps=steps)


def chart_label(step: dict[str, Any]) -> str:
    return step["key"].removeprefix("chart:")
