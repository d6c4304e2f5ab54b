"""Bulk extend and bulk delete from the fleet page, one lifecycle call per demo.

Each demo is its own transaction inside the lifecycle, so one demo that cannot be extended (it
was extended the maximum number of times, or stopped meanwhile) does not stop the others, and
each gets its own outcome to report.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django import forms

from demos import access
from demos.engine import lifecycle
from demos.engine.lifecycle import Actor
from demos.errors import LifecycleError
from demos.models import Demo

MAX_SELECTED = 500


class BulkAction(enum.StrEnum):
    EXTEND = "extend"
    DELETE = "delete"

    @property
    def verb(self) -> str:
        return {BulkAction.EXTEND: "Extend", BulkAction.DELETE: "Delete"}[self]

    @property
    def done(self) -> str:
        return {BulkAction.EXTEND: "Extended", BulkAction.DELETE: "Deleting"}[self]

    @property
    def service(self) -> Callable[..., Demo]:
        return {BulkAction.EXTEND: lifecycle.extend_demo, BulkAction.DELETE: lifecycle.delete_demo}[
            self
        ]


class DemoIdsField(forms.Field):
    """The public ids of the ticked demos (several inputs of one name)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[uuid.UUID]:
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        try:
            return list(dict.fromkeys(uuid.UUID(str(item)) for item in values))
        except ValueError:
            raise forms.ValidationError("The selection is not valid; reload the page.") from None

    def validate(self, value: list[uuid.UUID]) -> None:
        if not value:
            raise forms.ValidationError("Tick at least one demo first.")
        if len(value) > MAX_SELECTED:
            raise forms.ValidationError(f"Select at most {MAX_SELECTED} demos at once.")


class BulkActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a.value, a.verb) for a in BulkAction])
    demos = DemoIdsField()
    confirmed = forms.BooleanField(required=False)

    @property
    def bulk_action(self) -> BulkAction:
        return BulkAction(self.cleaned_data["action"])


@dataclass(frozen=True)
class Outcome:
    demo: Demo
    ok: bool
    message: str = ""


NOT_ALLOWED = "Only the demo's owner or a sales manager can change this demo."


def apply_bulk_action(*, action: BulkAction, demos: Iterable[Demo], user: Any) -> list[Outcome]:
    """Run `action` on each demo through the lifecycle; collect what happened to each.

    Who may change which demo is decided per demo by `access.can_act_on`, as everywhere else.
    """
    actor = Actor.of(user)
    outcomes = []
    for demo in demos:
        if not access.can_act_on(user, demo):
            outcomes.append(Outcome(demo, ok=False, message=NOT_ALLOWED))
            continue
        try:
            action.service(demo=demo, actor=actor)
        except LifecycleError as exc:
            outcomes.append(Outcome(demo, ok=False, message=str(exc)))
        else:
            outcomes.append(Outcome(demo, ok=True))
    return outcomes
