"""What a person can do to a demo, and which of those actions fit its state right now.

The one place that decides which buttons a demo shows: pages and fragments render what
`available_actions` returns and never reason about states themselves. The lifecycle still
enforces every rule, so a button shown a moment before someone else acted gets a readable
refusal, never a wrong state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from demos.access import can_act_on
from demos.durations import format_duration
from demos.engine import lifecycle
from demos.engine.lifecycle import Actor
from demos.engine.lifecycle.requests import resume_lifetime
from demos.engine.specs import Policy
from demos.models import Demo, Status


@dataclass(frozen=True)
class DemoAction:
    """One thing a person can ask of a demo, carried out by a lifecycle function. The states
    that allow it come from the lifecycle's transition table."""

    name: str
    perform: Callable[..., Demo]
    tone: str  # "primary", "secondary" or "danger": how prominent its button is
    in_lists: bool  # offered as a quick action in lists of demos, not only on the demo page
    # Actions that are hard to undo ask first; the others act at once.
    confirm: str = ""
    confirm_label: str = ""

    @property
    def statuses(self) -> frozenset[str]:
        return lifecycle.states_for(self.name)

    def run(self, demo: Demo, user: Any) -> Demo:
        return self.perform(demo=demo, actor=Actor.of(user))


@dataclass(frozen=True)
class OfferedAction:
    """An action as a button shows it for one demo."""

    name: str
    label: str
    tone: str
    hint: str
    confirm: str
    confirm_label: str


EXTEND = DemoAction("extend", lifecycle.extend_demo, "primary", True)
PAUSE = DemoAction("pause", lifecycle.pause_demo, "secondary", True)
RESUME = DemoAction("resume", lifecycle.resume_demo, "primary", True)
RETRY = DemoAction("retry", lifecycle.retry_demo, "primary", True)
# Asleep demos wake by themselves when their link is opened; this is for the salesperson who
# wants it running before the call.
WAKE = DemoAction("wake", lifecycle.wake_demo, "primary", True)
ARCHIVE = DemoAction(
    "archive",
    lifecycle.archive_demo,
    "secondary",
    False,
    confirm="Archive this demo? A snapshot is kept so you can restore it later, and the running "
    "cluster is deleted now.",
    confirm_label="Archive demo",
)
DELETE = DemoAction(
    "delete",
    lifecycle.delete_demo,
    "danger",
    True,
    confirm="Delete this demo? Its cluster and everything in it are removed. This cannot be "
    "undone.",
    confirm_label="Delete demo",
)

# In the order their buttons appear.
ACTIONS: dict[str, DemoAction] = {
    action.name: action for action in (RETRY, WAKE, EXTEND, RESUME, PAUSE, ARCHIVE, DELETE)
}

_LABELS = {
    "retry": "Retry",
    "pause": "Keep for later",
    "resume": "Resume",
    "wake": "Wake now",
    "archive": "Archive",
    "delete": "Delete",
}


def _label(action: DemoAction, demo: Demo) -> str:
    if action is EXTEND:
        return f"Extend by {format_duration(Policy.of(demo).extension_step)}"
    if action is DELETE and demo.status in lifecycle.TRANSITIONS["cancel"].allowed:
        return "Cancel"
    if action is RESUME and demo.paused_remaining is not None:
        # It comes back with the time it had left, so the button says how much that is.
        return f"Resume ({format_duration(resume_lifetime(demo))} left)"
    return _LABELS[action.name]


def _hint(action: DemoAction, demo: Demo) -> str:
    """The line beside a button that says what it does, where its name alone does not."""
    if action is EXTEND:
        left = Policy.of(demo).max_extensions - demo.extension_count
        return f"{left} extension{'s' if left != 1 else ''} left"
    if action is RESUME and demo.paused_remaining is None:
        return f"Runs for {format_duration(resume_lifetime(demo))} again"
    if action is PAUSE:
        kept = format_duration(Policy.of(demo).retention)
        return f"Pauses it with everything kept, for {kept}; resume it any time."
    if action is ARCHIVE:
        return "Saves a snapshot and frees the cluster; restoring starts a new demo from it."
    if action is WAKE and demo.sleep_remaining is not None:
        return f"With the {format_duration(demo.sleep_remaining)} it had left"
    return ""


def extension_note(demo: Demo) -> str:
    """Why a running demo offers no Extend, in words; "" when it does (or is not running)."""
    if demo.status != Status.READY or demo.expires_at is None:
        return ""
    return lifecycle.extension_refusal(demo) or ""


def is_allowed(action: DemoAction, demo: Demo) -> bool:
    """Whether `action` fits `demo`'s state (who asks is checked separately)."""
    if demo.status not in action.statuses:
        return False
    if action is EXTEND:
        return lifecycle.extension_refusal(demo) is None
    if action is ARCHIVE:
        return lifecycle.archive_refusal() is None
    return True


def available_actions(user: Any, demo: Demo, *, in_list: bool = False) -> list[OfferedAction]:
    """The actions `user` may take on `demo` now, as buttons, in display order."""
    if not can_act_on(user, demo):
        return []
    return [
        OfferedAction(
            name=action.name,
            label=_label(action, demo),
            tone=action.tone,
            hint=_hint(action, demo),
            confirm=action.confirm,
            confirm_label=action.confirm_label,
        )
        for action in ACTIONS.values()
        if is_allowed(action, demo) and (action.in_lists or not in_list)
    ]


def done_message(action: DemoAction, demo: Demo) -> str:
    """What to tell the person once `action` was accepted."""
    if action is EXTEND and demo.expires_at:
        ends = timezone.localtime(demo.expires_at)
        return f"Extended: the demo now ends at {ends:%H:%M %Z}."
    if action is DELETE and demo.status == Status.DELETED:
        return "Cancelled: the demo will not start."
    if action is RESUME:
        left = format_duration(resume_lifetime(demo))
        return f"Resuming: the demo will be ready again in a moment, and runs for {left}."
    return {
        "extend": "Extended.",
        "pause": "Keeping it for later: the cluster is being paused and its data kept.",
        "resume": "Resuming: the demo will be ready again in a moment.",
        "wake": "Waking it up: the demo will be ready again in a moment.",
        "retry": "Trying again.",
        "archive": "Archiving: a snapshot is taken, then the cluster is deleted.",
        "delete": "Deleting the demo and its cluster.",
    }[action.name]
