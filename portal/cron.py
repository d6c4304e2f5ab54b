"""The one cron schedule, run by exactly one `manage.py runcron` process.

RQ's CronScheduler takes no lock, so running two would double every periodic job. The jobs
themselves stay safe if that happens (they are compare-and-swap sweeps), but only one is needed.
"""

from django.conf import settings
from rq import cron

from demos.engine.jobs import flush_engagement_job, reconcile_job
from portal.health import HEARTBEAT_SECONDS, record_heartbeat

cron.register(record_heartbeat, "maintenance", interval=HEARTBEAT_SECONDS, name="heartbeat")
cron.register(
    reconcile_job,
    "maintenance",
    interval=settings.DEMO_RECONCILE_SECONDS,
    name="reconcile",
    job_timeout=300,
)
# Each minute, the gate's per-minute counts into Engagement rows. The job is stopped long before
# its lock runs out (demos.gate.engagement.LOCK_SECONDS), so two flushes never overlap.
cron.register(
    flush_engagement_job,
    "maintenance",
    interval=60,
    name="flush-engagement",
    job_timeout=120,
)
