"""How big a run is: `BENCH_SCALE=small` for a one-minute smoke run, `full` (the default) for
the published figures. Every count can be overridden on its own with `BENCH_<NAME>=<value>`."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Scale:
    name: str
    web_workers: int  # gunicorn processes (gthread), as the production image runs them
    web_threads: int
    rq_workers: int  # `manage.py runworker` processes
    sequential_starts: int
    concurrent_starts: int
    double_submits: int  # of the concurrent starts, how many are also sent a second time
    concurrent_users: int
    pollers: int
    poll_seconds: float  # measuring time per view under the pollers
    sweep_rows: tuple[int, ...]
    sweep_due: int
    sweep_repeats: int
    pool_size: int
    claims: int  # warm-pool claims, and as many cold starts of the same template
    ready_timeout: float  # upper bound for any one wait on the portal
    # Provisioning fan-out: many starts on few workers at a real step time.
    fanout_starts: int
    fanout_rq_workers: int
    fanout_step_seconds: float  # simulated seconds per step (a start takes four)
    fanout_alone: int  # starts measured alone first (median), after one unmeasured
    fanout_users: int  # salespeople the starts come from
    fanout_timeout: float  # how long the fan-out may take before it is called a miss
    # Fault drills, at production intervals (sweep every 30 s, heartbeat every 10 s).
    drill_rounds: int  # of each of: worker killed at a seeded moment, connections dropped
    drill_strike_rounds: int  # strikes at named code points, one point per round
    drill_redis_rounds: int  # Redis down, then back empty
    drill_redis_down: float  # seconds Redis stays down in each of those rounds
    drill_demos: int  # demos in flight when a fault hits
    drill_error_rounds: int  # rounds under injected backend errors (twice as many demos each)
    drill_rq_workers: int
    drill_strike_timeout: float  # how long an armed point may wait to be reached
    drill_recover_timeout: float  # how long a round may take to recover after its fault
    # Pages at scale (bench/at_scale.py) on a data set of this size (bench/dataset.py).
    scale_demos: int  # historical demos, over a year
    scale_live: int  # running, starting, queued and paused demos
    scale_salespeople: int
    scale_managers: int
    scale_templates: int
    scale_clients: int  # concurrent clients per page
    scale_seconds: float  # measuring time per page and load, over all rounds
    scale_pace: float  # seconds between two requests of one paced client
    scale_job_round_trips: int  # no-op jobs for the floor
    # How many times each phase runs; every figure is the median of its runs.
    repeats: int


FULL = Scale(
    name="full",
    web_workers=2,
    web_threads=4,
    rq_workers=4,
    sequential_starts=100,
    concurrent_starts=200,
    double_submits=20,
    concurrent_users=20,
    pollers=50,
    poll_seconds=15.0,
    sweep_rows=(1_000, 10_000, 100_000),
    sweep_due=10,
    sweep_repeats=5,
    pool_size=5,
    claims=40,
    ready_timeout=180.0,
    fanout_starts=200,
    fanout_rq_workers=2,
    fanout_step_seconds=2.0,
    fanout_alone=3,
    fanout_users=20,
    fanout_timeout=900.0,
    drill_rounds=2,
    drill_strike_rounds=8,  # as many as demos.engine.faults names: each point once
    drill_redis_rounds=2,
    drill_redis_down=30.0,
    drill_demos=6,
    drill_error_rounds=1,
    drill_rq_workers=3,
    drill_strike_timeout=60.0,
    # A killed job is seen as lost after three missed heartbeats plus 5 s (35 s), the sweep
    # that re-enqueues it runs every 30 s, and an overdue scheduled job counts as lost after a
    # minute: four minutes leave room for the rest of the batch to finish after that.
    drill_recover_timeout=240.0,
    scale_demos=100_000,
    scale_live=5_000,
    scale_salespeople=200,
    scale_managers=10,
    scale_templates=20,
    scale_clients=20,
    scale_seconds=9.0,
    scale_pace=1.0,
    scale_job_round_trips=50,
    repeats=3,
)

SMALL = replace(
    FULL,
    name="small",
    sequential_starts=15,
    concurrent_starts=30,
    double_submits=5,
    concurrent_users=5,
    pollers=10,
    poll_seconds=3.0,
    sweep_rows=(1_000, 5_000),
    sweep_repeats=1,
    pool_size=2,
    claims=8,
    ready_timeout=60.0,
    fanout_starts=40,
    fanout_alone=1,
    fanout_users=5,
    fanout_timeout=300.0,
    drill_rounds=1,
    drill_strike_rounds=3,
    drill_redis_rounds=1,
    drill_demos=4,
    scale_demos=5_000,
    scale_live=500,
    scale_seconds=3.0,
    scale_job_round_trips=20,
    # A smoke run: once. Its figures say the harness works, not how fast the portal is.
    repeats=1,
)

SCALES = {"full": FULL, "small": SMALL}


def from_env(environ: dict[str, str] | None = None) -> Scale:
    """The scale named by BENCH_SCALE, with any BENCH_<FIELD> overrides applied."""
    environ = dict(os.environ) if environ is None else environ
    name = environ.get("BENCH_SCALE", "full").strip().lower() or "full"
    if name not in SCALES:
        raise SystemExit(f"BENCH_SCALE={name!r}: use one of {', '.join(SCALES)}.")
    scale = SCALES[name]
    overrides: dict[str, object] = {}
    for field in fields(Scale):
        raw = environ.get(f"BENCH_{field.name.upper()}")
        if raw is None or field.name == "name":
            continue
        try:
            if field.name == "sweep_rows":
                overrides[field.name] = tuple(int(part) for part in raw.split(",") if part)
            elif isinstance(getattr(scale, field.name), float):
                overrides[field.name] = float(raw)
            else:
                overrides[field.name] = int(raw)
        except ValueError:
            raise SystemExit(f"BENCH_{field.name.upper()}={raw!r} is not a number.") from None
    return replace(scale, **overrides)
