"""Every change of a demo happens here, and nowhere else.

One table, `TRANSITIONS`, says for each transition which states it leaves, the state it reaches,
the background work that carries it out, and the event it writes. The lifecycle's functions, the
buttons a page offers (`demos.sales.buttons`) and the tests all read it; nothing else lists which
state allows what.

Each transition is a compare-and-swap update (`filter(pk, status__in=allowed).update(...)`) that
acts only when exactly one row changed, so two workers, the expiry job and the reconcile sweep can
race without harm: whoever loses gets `InvalidTransition` and does nothing. Each transition writes
a `DemoEvent`; one that hands the demo to background work numbers the next step and enqueues it
after commit (see `demos.engine.dispatch`).

Three modules, one layer:

- `table`: the table, `transition()`, and the one deadline (`deadline`) with its one message for a
  demo that missed it (`overdue_message`);
- `requests`: what people ask for (functions named `<verb>_demo`, called by views, the admin and
  commands), and what the scheduler decides on its own (expiry, reminders, admission, retention,
  sleep; waking is asked for by the gate when someone opens a sleeping demo);
- `outcomes`: the workers' side. The steps (`demos.engine.operations`) call the backend and
  report what they saw here; whether a demo is ready, failed, overdue or worth another look is
  decided there.

Everything is imported from this package, e.g. `lifecycle.start_demo`.
"""

from demos.engine.lifecycle.outcomes import (
    archive_location,
    archived_snapshot,
    begin_provisioning,
    fail_after_retries,
    fail_demo,
    fail_overdue,
    next_step,
    record_archive_delete,
    record_cleanup,
    record_delete,
    record_pause,
    record_resume,
    record_snapshot,
    record_start,
    record_transient,
)
from demos.engine.lifecycle.requests import (
    MIN_LIFETIME,
    admit_queued,
    archive_demo,
    archive_refusal,
    delete_demo,
    discard_kept,
    end_long_sleep,
    expire_demo,
    extend_demo,
    extension_refusal,
    pause_demo,
    restore_snapshot,
    resume_demo,
    retire_spare,
    retry_demo,
    sleep_demo,
    start_demo,
    start_spare,
    wake_demo,
    warn_of_expiry,
)
from demos.engine.lifecycle.table import (
    OPERATION_TIMEOUT,
    SCHEDULER,
    TRANSITIONS,
    WORK_FOR_STATUS,
    WORKER,
    Actor,
    Transition,
    deadline,
    is_overdue,
    overdue_message,
    publish_to_gate,
    record_event,
    refusal,
    states_for,
    transition,
)

__all__ = [
    "MIN_LIFETIME",
    "OPERATION_TIMEOUT",
    "SCHEDULER",
    "TRANSITIONS",
    "WORKER",
    "WORK_FOR_STATUS",
    "Actor",
    "Transition",
    "admit_queued",
    "archive_demo",
    "archive_location",
    "archive_refusal",
    "archived_snapshot",
    "begin_provisioning",
    "deadline",
    "delete_demo",
    "discard_kept",
    "end_long_sleep",
    "expire_demo",
    "extend_demo",
    "extension_refusal",
    "fail_after_retries",
    "fail_demo",
    "fail_overdue",
    "is_overdue",
    "next_step",
    "overdue_message",
    "pause_demo",
    "publish_to_gate",
    "record_archive_delete",
    "record_cleanup",
    "record_delete",
    "record_event",
    "record_pause",
    "record_resume",
    "record_snapshot",
    "record_start",
    "record_transient",
    "refusal",
    "restore_snapshot",
    "resume_demo",
    "retire_spare",
    "retry_demo",
    "sleep_demo",
    "start_demo",
    "start_spare",
    "states_for",
    "transition",
    "wake_demo",
    "warn_of_expiry",
]
