"""Seeded choices and the fault file of the drills. Pure: no Django, no processes.

The engine marks named code points with `demos.engine.faults.strike(point)`. A drill arms one
point by writing its name into the file the workers know as DEMO_FAULT_FILE; the first worker
process to reach that point renames the file to `<file>.struck`, writes "<point> <pid>" into it
and kills itself with SIGKILL. Everything random in the drills comes from one seed, so a round
that went wrong can be run again in the same order.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# What a drill has to do for a point to be reached, by the point's prefix.
_OPERATIONS = {
    "provision": "start",
    "observe": "start",
    "ready": "start",
    "pause": "pause",
    "resume": "resume",
    "archive": "archive",
    "delete": "delete",
}


def drill_rng(seed: int, drill: str) -> random.Random:
    """The random source of one drill: the same seed gives each drill the same choices, whichever
    other drills run before it."""
    return random.Random(f"{seed}:{drill}")


def point_sequence(seed: int, rounds: int, points: Sequence[str]) -> list[str]:
    """The point to strike in each of `rounds` rounds: every point once in a seeded order, then
    again in another, so a run of as many rounds as there are points covers them all."""
    if not points:
        return []
    rng = drill_rng(seed, "strike")
    sequence: list[str] = []
    while len(sequence) < rounds:
        order = list(points)
        rng.shuffle(order)
        sequence += order
    return sequence[:rounds]


def operation_for(point: str) -> str:
    """What the drill does to reach `point`: start demos, or pause, resume, archive or delete
    ready ones."""
    prefix = point.partition(":")[0]
    if prefix not in _OPERATIONS:
        raise ValueError(f"no operation reaches the point {point!r}")
    return _OPERATIONS[prefix]


@dataclass(frozen=True)
class Strike:
    point: str
    pid: int


class FaultFile:
    """The file that arms a point, and the one a struck process leaves behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.struck_path = path.with_name(path.name + ".struck")

    def arm(self, point: str) -> None:
        """Arm `point`: written aside and renamed into place, so no worker reads half a name."""
        self.clear()
        staged = self.path.with_name(self.path.name + ".staged")
        staged.write_text(point + "\n")
        os.replace(staged, self.path)

    def struck(self) -> Strike | None:
        """Which point struck and in which process, once the striking process has said so."""
        try:
            text = self.struck_path.read_text()
        except OSError:
            return None
        point, _, pid = text.strip().partition(" ")
        if not text.endswith("\n") or not pid.isdigit():
            return None  # claimed, and not yet written in full
        return Strike(point, int(pid))

    def claimed(self) -> bool:
        """Whether a process has claimed the armed point (it may not have written it yet)."""
        return self.struck_path.exists()

    def disarm(self) -> bool:
        """Take back an armed point nobody reached. False when a process claimed it first."""
        disarmed = self.path.with_name(self.path.name + ".disarmed")
        try:
            os.replace(self.path, disarmed)
        except FileNotFoundError:
            return False
        disarmed.unlink(missing_ok=True)
        return True

    def clear(self) -> None:
        for path in (self.path, self.struck_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
