"""Named points where the fault drills (`make drills`) kill a worker, as a node failure would.

Off unless `DEMO_FAULT_FILE` names a file (the drills set it; production never does). The file
holds the name of one point. The first process to reach that point claims the file by renaming
it (atomic, so exactly one process strikes), writes which point struck and where, and kills its
process group with SIGKILL: the worker that runs the job (jobs run in the worker's own process,
see portal/worker.py) and its scheduler, as losing the pod would. The drills start each worker in
a session of its own, so nothing else dies with it.

Striking at a named point instead of a random moment makes every round hit the window it means
to, including the one between a backend call and the commit that records it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from django.conf import settings

# Every point the engine marks, in the order a demo meets them.
POINTS = (
    # Provisioning: the demo is `provisioning` in the database, nothing applied yet.
    "provision:after-begin",
    # The cluster was applied (or restored) on the backend; the follow-up is not yet recorded.
    "provision:after-apply",
    # An observation came back from the backend; nothing of it is stored yet.
    "observe:before-record",
    # The demo became ready on the backend; the transition to `ready` is not yet committed.
    "ready:before-commit",
    # Pause, resume, archive and delete: the backend call returned, its outcome is not recorded.
    "pause:after-call",
    "resume:after-call",
    "archive:after-snapshot",
    "delete:after-call",
)


def strike(point: str) -> None:
    """Kill this worker here if the drill asked for `point`; otherwise return at once."""
    path = settings.DEMO_FAULT_FILE
    if not path:
        return
    armed = Path(path)
    try:
        if armed.read_text().strip() != point:
            return
        claimed = armed.with_name(armed.name + ".struck")
        armed.rename(claimed)  # only one process wins the rename
    except OSError:
        return  # not armed, or another process struck first
    claimed.write_text(f"{point} {os.getpid()}\n")
    os.killpg(os.getpgid(0), signal.SIGKILL)
