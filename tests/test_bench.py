"""The benchmark harness's own pieces, at a tiny scale: no gunicorn, no worker processes."""

from __future__ import annotations

import json
import statistics
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench import drills, figures, scale, stack, strikes
from bench.__main__ import chosen_phases
from bench.client import Browser, closed_loop, next_poll
from bench.figures import FanOut, Figure
from demos.durations import percentile


class TestPercentile:
    def test_it_interpolates_like_the_standard_library(self) -> None:
        samples = [float(n) for n in (7, 1, 3, 9, 4, 12, 2, 8, 5, 11)]
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        assert percentile(samples, 95) == pytest.approx(cuts[94])
        assert percentile(samples, 50) == pytest.approx(statistics.median(samples))

    def test_it_handles_the_ends_and_a_single_sample(self) -> None:
        assert percentile([3.0, 1.0, 2.0], 0) == 1.0
        assert percentile([3.0, 1.0, 2.0], 100) == 3.0
        assert percentile([42.0], 95) == 42.0

    def test_it_refuses_no_samples_and_bad_percentiles(self) -> None:
        with pytest.raises(ValueError, match="no samples"):
            percentile([], 95)
        with pytest.raises(ValueError, match="outside"):
            percentile([1.0], 101)


class TestFigures:
    def test_it_decides_met_from_the_target(self) -> None:
        assert Figure.of("p95", 150.0, "ms", "<= 200").met is True
        assert Figure.of("p95", 250.0, "ms", "<= 200").met is False
        assert Figure.of("ratio", 0.7, "ratio", ">= 0.7").met is True
        assert Figure.of("lost", 0, "demos", "== 0").met is True
        assert Figure.of("claim", None, "ms", "< 100").met is False
        assert Figure.of("memory", 80.0, "MiB").met is None

    def test_it_writes_the_json_shape_runs_are_compared_by(self, tmp_path: Path) -> None:
        written = [
            Figure.of("start-to-ready overhead, p95", 123.4567, "ms", "<= 200"),
            Figure.of("peak memory (VmHWM): web worker", 77.3, "MiB"),
        ]
        latest, kept = figures.write_results(written, "bench", tmp_path)
        assert latest == tmp_path / "latest.json"
        assert kept.parent == tmp_path / "runs"
        document = json.loads(latest.read_text())
        assert json.loads(kept.read_text()) == document
        assert figures.validate(document) == document
        assert document[0] == {
            "name": "start-to-ready overhead, p95",
            "value": 123.457,
            "unit": "ms",
            "target": "<= 200",
            "met": True,
        }
        drills, _ = figures.write_results(written, "drills", tmp_path)
        assert drills.name == "drills-latest.json"
        # A run of some phases only leaves the latest file alone.
        partial, kept = figures.write_results(written[:1], "bench", tmp_path, complete=False)
        assert partial == kept
        assert json.loads(latest.read_text()) == document

    @pytest.mark.parametrize(
        ("document", "complaint"),
        [
            ({"name": "x"}, "must be a list"),
            ([{"name": "x", "value": 1, "unit": "ms", "target": None}], "exactly"),
            (
                [{"name": "x", "value": "fast", "unit": "ms", "target": None, "met": None}],
                "value must be a number",
            ),
            (
                [{"name": "x", "value": 1, "unit": "ms", "target": "about 2", "met": False}],
                "not a comparison",
            ),
            (
                [{"name": "x", "value": 300, "unit": "ms", "target": "<= 200", "met": True}],
                "does not follow",
            ),
        ],
    )
    def test_it_rejects_documents_of_another_shape(self, document: object, complaint: str) -> None:
        with pytest.raises(ValueError, match=complaint):
            figures.validate(document)

    def test_the_table_marks_missed_targets(self) -> None:
        table = figures.format_table(
            [Figure.of("a", 1.0, "ms", "<= 2"), Figure.of("b", 3.0, "ms", "<= 2")]
        )
        lines = table.splitlines()
        assert lines[2].endswith("yes")
        assert lines[3].endswith("NO")

    def test_sweep_figures_call_growth_a_miss(self) -> None:
        runs = [
            {
                "nominal_rows": 1000,
                "seconds": 0.05,
                "db_seconds": 0.01,
                "queries": 60,
                "expired": 10,
            },
            {
                "nominal_rows": 100000,
                "seconds": 0.06,
                "db_seconds": 0.09,
                "queries": 61,
                "expired": 10,
            },
        ]
        by_name = {f.name: f for f in figures.sweep_figures(runs, due=10)}
        assert by_name["reconcile sweep, 100,000 demos: time"].met is True
        assert by_name["reconcile sweep, 100,000 demos: database time"].met is False
        assert by_name["reconcile sweep, 100,000 demos: queries"].met is False
        assert by_name["reconcile sweep, 1,000 demos: queries"].met is None


class TestScale:
    def test_small_is_smaller_and_counts_can_be_overridden(self) -> None:
        small = scale.from_env({"BENCH_SCALE": "small", "BENCH_POLLERS": "3"})
        assert small.name == "small"
        assert small.pollers == 3
        assert small.sequential_starts < scale.FULL.sequential_starts
        assert small.fanout_starts < scale.FULL.fanout_starts

    def test_the_full_fan_out_is_200_starts_on_2_workers_at_2_s_steps(self) -> None:
        assert (scale.FULL.fanout_starts, scale.FULL.fanout_rq_workers) == (200, 2)
        assert scale.FULL.fanout_step_seconds == 2.0
        full = scale.from_env({"BENCH_SWEEP_ROWS": "10,20", "BENCH_POLL_SECONDS": "0.5"})
        assert full.sweep_rows == (10, 20)
        assert full.poll_seconds == 0.5

    def test_it_refuses_unknown_scales_and_bad_numbers(self) -> None:
        with pytest.raises(SystemExit, match="BENCH_SCALE"):
            scale.from_env({"BENCH_SCALE": "huge"})
        with pytest.raises(SystemExit, match="BENCH_CLAIMS"):
            scale.from_env({"BENCH_CLAIMS": "many"})


def _fanout(**changes: object) -> FanOut:
    run = FanOut(
        starts=200,
        workers=2,
        step_seconds=2.0,
        via="HTTP",
        alone=[9.0, 8.0, 10.0],
        all_ready=18.0,
        waited=18.2,
        ready=200,
        failed=0,
        answered=8.0,
        start_errors=0,
        busy=0.5,
        jobs=500,
        worker_cpu=25.0,
    )
    return FanOut(**{**run.__dict__, **changes})


class TestFanOutFigures:
    def test_the_ratio_is_all_ready_over_the_median_lone_start(self) -> None:
        by_name = {f.name: f for f in figures.fanout_figures(_fanout())}
        ratio = by_name[
            "provisioning fan-out: 200 starts on 2 workers, 2 s steps / one start alone"
        ]
        assert ratio.value == 2.0
        assert ratio.met is True
        assert by_name["provisioning fan-out: worker busy share"].value == 50.0
        assert by_name["provisioning fan-out: jobs per demo"].value == 2.5
        assert (
            by_name["provisioning fan-out: worker CPU per job (work horses included)"].value == 50
        )
        slower = figures.fanout_figures(_fanout(all_ready=27.0))[0]
        assert slower.value == 3.0
        assert slower.met is False

    def test_a_fan_out_that_did_not_finish_misses_its_target(self) -> None:
        by_name = {f.name: f for f in figures.fanout_figures(_fanout(all_ready=None, ready=150))}
        ratio = by_name[
            "provisioning fan-out: 200 starts on 2 workers, 2 s steps / one start alone"
        ]
        assert ratio.value is None
        assert ratio.met is False
        assert by_name["provisioning fan-out: ready when the wait ended"].met is False
        figures.validate([f.as_dict() for f in by_name.values()])

    def test_the_busy_share_comes_from_the_workers_running_totals(self) -> None:
        before = {"w1": 100.0, "w2": 40.0}
        after = {"w1": 115.0, "w2": 45.0}
        assert figures.busy_share(before, after, workers=2, wall=20.0) == pytest.approx(0.5)
        # A worker restarted meanwhile registers under a new name and counts from zero; the
        # dead one's total no longer shows.
        restarted = {"w1": 115.0, "w3": 5.0}
        assert figures.busy_share(before, restarted, workers=2, wall=20.0) == pytest.approx(0.5)
        # A job that ended just after the window is counted whole: never more than all of it.
        assert figures.busy_share({}, {"w1": 50.0}, workers=1, wall=20.0) == 1.0
        assert figures.busy_share(before, after, workers=2, wall=0.0) == 0.0


class TestStrikes:
    POINTS = ("provision:after-begin", "observe:before-record", "pause:after-call", "delete:x")

    def test_the_seeded_sequence_is_reproducible_and_covers_every_point(self) -> None:
        first = strikes.point_sequence(42, 4, self.POINTS)
        assert first == strikes.point_sequence(42, 4, self.POINTS)
        assert sorted(first) == sorted(self.POINTS)
        longer = strikes.point_sequence(42, 10, self.POINTS)
        assert longer[:4] == first
        assert len(longer) == 10
        assert set(longer[4:8]) == set(self.POINTS)
        others = {tuple(strikes.point_sequence(seed, 4, self.POINTS)) for seed in range(20)}
        assert len(others) > 1
        assert strikes.point_sequence(42, 3, ()) == []

    def test_each_drill_draws_from_its_own_seeded_source(self) -> None:
        kill = [strikes.drill_rng(7, "kill").random() for _ in range(3)]
        assert kill == [strikes.drill_rng(7, "kill").random() for _ in range(3)]
        assert kill != [strikes.drill_rng(7, "redis").random() for _ in range(3)]

    def test_it_knows_what_reaches_each_point(self) -> None:
        assert strikes.operation_for("provision:after-apply") == "start"
        assert strikes.operation_for("ready:before-commit") == "start"
        assert strikes.operation_for("resume:after-call") == "resume"
        assert strikes.operation_for("archive:after-snapshot") == "archive"
        with pytest.raises(ValueError, match="no operation"):
            strikes.operation_for("teleport:before")

    def test_every_point_the_engine_names_can_be_reached(self) -> None:
        from demos.engine import faults

        for point in faults.POINTS:
            strikes.operation_for(point)

    def test_the_fault_file_is_armed_claimed_and_disarmed(self, tmp_path: Path) -> None:
        fault = strikes.FaultFile(tmp_path / "fault")
        fault.arm("pause:after-call")
        assert fault.path.read_text().strip() == "pause:after-call"
        assert fault.struck() is None
        # What demos.engine.faults.strike does in the process that reaches the point.
        fault.path.rename(fault.struck_path)
        assert fault.claimed()
        assert fault.struck() is None  # claimed, not yet written
        fault.struck_path.write_text("pause:after-call 4242\n")
        assert fault.struck() == strikes.Strike("pause:after-call", 4242)
        assert fault.disarm() is False  # too late: it struck
        fault.arm("delete:after-call")
        assert not fault.claimed()  # arming clears the last strike
        assert fault.disarm() is True
        assert not fault.path.exists()


class TestMisses:
    def test_a_wait_that_times_out_is_recorded_and_the_drill_goes_on(self) -> None:
        tally = drills.Tally("drill")
        assert drills.wait_or_miss(lambda: False, 0.05, "the impossible", tally, 0.01) is False
        assert drills.wait_or_miss(lambda: 1 / 0, 0.05, "a broken check", tally, 0.01) is False
        assert drills.wait_or_miss(lambda: True, 0.05, "the obvious", tally, 0.01) is True
        assert tally.misses == [
            "the impossible: not within 0.05 s",
            "a broken check: not within 0.05 s",
        ]
        by_name = {f.name: f for f in tally.figures()}
        assert by_name["drill: waits that timed out"].value == 2
        assert by_name["drill: waits that timed out"].met is False

    def test_failures_are_judged_except_where_they_are_provoked(self) -> None:
        census = drills.Census(
            missing=0,
            unsettled=0,
            failed=2,
            failed_silently=0,
            unexpected_deletes=0,
            wrong_state=0,
            orphans=0,
        )
        assert census.recovered
        judged, provoked = drills.Tally("kill"), drills.Tally("errors", failures_judged=False)
        for tally in (judged, provoked):
            tally.add_census(census)
        assert {f.name: f for f in judged.figures()}["kill: demos failed"].met is False
        assert {f.name: f for f in provoked.figures()}["errors: demos failed"].met is None

    def test_an_unreached_point_is_a_figure(self) -> None:
        tally = drills.Tally("strike")
        tally.note("points armed but never reached", 1, "points", "== 0")
        by_name = {f.name: f for f in tally.figures()}
        assert by_name["strike: points armed but never reached"].met is False


class TestRunChoices:
    def test_the_seed_comes_from_the_environment_or_is_drawn(self) -> None:
        assert drills.seed_from_env({"BENCH_DRILL_SEED": "1234"}) == 1234
        assert 0 <= drills.seed_from_env({}) < 1_000_000
        with pytest.raises(SystemExit, match="BENCH_DRILL_SEED"):
            drills.seed_from_env({"BENCH_DRILL_SEED": "lucky"})

    def test_drills_and_phases_can_be_chosen(self) -> None:
        assert drills.chosen_drills({"BENCH_DRILLS": "db, strike"}) == ["strike", "db"]
        assert drills.chosen_drills({}) == list(drills.DRILLS)
        with pytest.raises(SystemExit, match="unknown"):
            drills.chosen_drills({"BENCH_DRILLS": "flood"})
        assert chosen_phases({"BENCH_PHASES": "fanout"}) == ("fanout",)
        assert chosen_phases({}) == ("sweep", "portal", "fanout")
        with pytest.raises(SystemExit, match="unknown"):
            chosen_phases({"BENCH_PHASES": "everything"})

    def test_a_crashing_process_is_restarted_after_a_growing_back_off(self) -> None:
        delays = [stack.restart_delay(crashes) for crashes in range(1, 8)]
        assert delays[0] == stack.RESTART_FIRST_DELAY
        assert delays == sorted(delays)
        assert delays[-1] == stack.RESTART_MAX_DELAY


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 500)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class TestPollingLikeHtmx:
    def test_it_polls_the_url_the_last_answer_names(self) -> None:
        body = (
            b'<section id="status-panel" hx-get="/demos/1/status/?since=42&amp;x=1" '
            b'hx-trigger="every 2s"></section><section hx-get="/other/"></section>'
        )
        assert next_poll(body, "/demos/1/status/") == "/demos/1/status/?since=42&x=1"
        assert next_poll(b"<p>settled</p>", "/demos/1/status/") == "/demos/1/status/"


class TestLoadGenerator:
    def test_it_counts_answers_and_errors_within_its_time(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            browsers = [Browser(port) for _ in range(3)]
            result = closed_loop(browsers, lambda i: "/ok" if i else "/fail", 0.3)
            for browser in browsers:
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
        assert result.requests > 0
        assert result.errors > 0  # browser 0 asked for a path that answers 500
        assert len(result.latencies) == result.requests
        assert result.statuses[200] == result.requests
        assert 0.3 <= result.seconds < 5


@pytest.mark.django_db
class TestSweepScaling:
    def test_the_sweep_makes_as_many_queries_at_1000_demos_as_at_100(self) -> None:
        from bench import sweep

        table = sweep.setup_table()
        small = sweep.measure(table, 100, due=3)
        large = sweep.measure(table, 1000, due=3)
        assert small.expired == large.expired == 3
        assert large.rows == 1000
        assert large.queries == small.queries


@pytest.mark.django_db
class TestPortalData:
    def test_a_polled_demo_is_installing_with_no_look_due(self, django_user_model: Any) -> None:
        from django.utils import timezone

        from bench import portal_data
        from demos.models import Status

        owner = django_user_model.objects.create_user("poller")
        demo = portal_data.starting_demo(portal_data.template("polled"), owner)
        assert demo.status == Status.INSTALLING
        assert demo.next_step_at > timezone.now() + timedelta(minutes=50)
        kinds = list(demo.events.order_by("pk").values_list("kind", flat=True))
        assert kinds == ["requested", "admitted", "provisioning", "installing"]
