"""The benchmark harness's own pieces, at a tiny scale: no gunicorn, no worker processes."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from bench import drills, figures, floor, scale, stack, strikes
from bench.__main__ import chosen_phases
from bench.client import Browser, closed_loop, next_poll, paced_loop
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


def _stamp(**changes: Any) -> dict[str, Any]:
    stamp = {
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": False,
        "python": "3.13.0",
        "postgresql": "15.20",
        "cpus": 2,
        "load_average": [0.5, 0.4, 0.3],
        "started_at": "2026-12-03T13:03:00+00:00",
        "repeats": 3,
    }
    return {**stamp, **changes}


def _summary_dict(**changes: Any) -> dict[str, Any]:
    item = {
        "name": "x",
        "value": 1,
        "unit": "ms",
        "target": None,
        "met": None,
        "floor": None,
        "min": 1,
        "max": 1,
        "runs": [1],
    }
    return {**item, **changes}


class TestFigures:
    def test_it_decides_met_from_the_target(self) -> None:
        assert Figure.of("p95", 150.0, "ms", "<= 200").met is True
        assert Figure.of("p95", 250.0, "ms", "<= 200").met is False
        assert Figure.of("ratio", 0.7, "ratio", ">= 0.7").met is True
        assert Figure.of("lost", 0, "demos", "== 0").met is True
        assert Figure.of("claim", None, "ms", "< 100").met is False
        assert Figure.of("memory", 80.0, "MiB").met is None
        assert Figure.of("p95", 12.34567, "ms", floor=1.23456).floor == 1.235

    def test_it_writes_the_stamp_and_the_figures(self, tmp_path: Path) -> None:
        runs = [
            [
                Figure.of("start-to-ready overhead, p95", 123.4567, "ms", "<= 200", floor=20.0),
                Figure.of("peak memory (VmHWM): web worker", 77.3, "MiB"),
            ]
        ]
        summaries = figures.summarise(runs)
        latest, kept = figures.write_results(summaries, _stamp(), "bench", tmp_path)
        assert latest == tmp_path / "latest.json"
        assert kept.parent == tmp_path / "runs"
        document = json.loads(latest.read_text())
        assert json.loads(kept.read_text()) == document
        assert figures.validate(document) == document
        assert document["run"]["commit"] == _stamp()["commit"]
        assert document["figures"][0] == {
            "name": "start-to-ready overhead, p95",
            "value": 123.457,
            "unit": "ms",
            "target": "<= 200",
            "met": True,
            "floor": 20.0,
            "min": 123.457,
            "max": 123.457,
            "runs": [123.457],
        }
        drills, _ = figures.write_results(summaries, _stamp(), "drills", tmp_path)
        assert drills.name == "drills-latest.json"
        # A run of some phases only leaves the latest file alone.
        partial, kept = figures.write_results(
            summaries[:1], _stamp(), "bench", tmp_path, complete=False
        )
        assert partial == kept
        assert json.loads(latest.read_text()) == document

    @pytest.mark.parametrize(
        ("document", "complaint"),
        [
            ([_summary_dict()], "object with exactly run and figures"),
            ({"run": _stamp(), "figures": [], "extra": 1}, "exactly run and figures"),
            ({"run": _stamp(commit=None), "figures": []}, "run.commit"),
            ({"run": _stamp(dirty="no"), "figures": []}, "run.dirty"),
            ({"run": _stamp(cpus=True), "figures": []}, "run.cpus"),
            ({"run": _stamp(load_average=[1.0]), "figures": []}, "load_average"),
            ({"run": _stamp(), "figures": [{"name": "x"}]}, "exactly"),
            ({"run": _stamp(), "figures": [_summary_dict(value="fast")]}, "value must be a"),
            ({"run": _stamp(), "figures": [_summary_dict(runs=[])]}, "each run"),
            (
                {"run": _stamp(), "figures": [_summary_dict(target="about 2", met=False)]},
                "not a comparison",
            ),
            (
                {"run": _stamp(), "figures": [_summary_dict(value=300, target="<= 200", met=True)]},
                "does not follow",
            ),
            ({"run": _stamp(), "figures": [_summary_dict(value=5, max=4)]}, "between min and max"),
        ],
    )
    def test_it_rejects_documents_of_another_shape(self, document: object, complaint: str) -> None:
        with pytest.raises(ValueError, match=re.escape(complaint)):
            figures.validate(document)

    def test_the_table_shows_median_spread_target_met_and_floor(self) -> None:
        runs = [
            [Figure.of("a", 1.0, "ms", "<= 2", floor=0.5), Figure.of("b", 3.0, "ms", "<= 2")],
            [Figure.of("a", 1.5, "ms", "<= 2", floor=0.7), Figure.of("b", 2.5, "ms", "<= 2")],
            [Figure.of("a", 3.0, "ms", "<= 2", floor=0.6), Figure.of("b", 4.0, "ms", "<= 2")],
        ]
        lines = figures.format_table(figures.summarise(runs)).splitlines()
        assert lines[0].split() == ["figure", "median", "spread", "target", "met", "floor"]
        assert lines[2].split() == [
            "a",
            "1.5",
            "ms",
            "1-3",
            "(133%)",
            "<=",
            "2",
            "yes",
            "0.6",
            "ms",
        ]
        assert lines[3].split() == ["b", "3", "ms", "2.5-4", "(50%)", "<=", "2", "NO"]


class TestSummaries:
    def test_met_follows_the_median_not_the_best_or_worst_run(self) -> None:
        runs = [[Figure.of("p95", value, "ms", "<= 200")] for value in (150.0, 250.0, 190.0)]
        (summary,) = figures.summarise(runs)
        assert summary.value == 190.0
        assert summary.met is True
        assert (summary.low, summary.high) == (150.0, 250.0)
        assert summary.runs == (150.0, 250.0, 190.0)
        assert summary.spread_percent == pytest.approx(100 * 100 / 190)
        worse = [[Figure.of("p95", value, "ms", "<= 200")] for value in (150.0, 250.0, 210.0)]
        assert figures.summarise(worse)[0].met is False

    def test_a_run_without_the_figure_is_recorded_as_missing(self) -> None:
        runs = [
            [Figure.of("a", 1.0, "ms"), Figure.of("claim", None, "ms", "< 100")],
            [Figure.of("a", 2.0, "ms"), Figure.of("claim", 90.0, "ms", "< 100")],
            [Figure.of("a", 4.0, "ms")],
        ]
        first, claim = figures.summarise(runs)
        assert first.value == 2.0
        assert claim.runs == (None, 90.0, None)
        assert claim.value == 90.0
        assert claim.spread_percent is None  # one value: nothing to spread
        nothing = figures.summarise([[Figure.of("claim", None, "ms", "< 100")]])[0]
        assert nothing.value is None
        assert nothing.met is False

    def test_figures_keep_the_order_they_first_appeared_in(self) -> None:
        runs = [
            [Figure.of("b", 1.0, "ms"), Figure.of("a", 1.0, "ms")],
            [Figure.of("c", 1.0, "ms"), Figure.of("b", 1.0, "ms")],
        ]
        assert [s.name for s in figures.summarise(runs)] == ["b", "a", "c"]


class TestStamp:
    def test_every_results_file_says_where_and_when(self) -> None:
        stamp = stack.run_stamp("small", ["scale"], 1)
        commit, dirty = stack.source_commit()
        assert stamp["commit"] == commit
        assert re.fullmatch(r"[0-9a-f]{40}", commit)
        assert stamp["dirty"] is dirty
        assert stamp["cpus"] == os.cpu_count()
        assert stamp["python"] == platform.python_version()
        assert re.fullmatch(r"[0-9]+\.[0-9]+", stamp["postgresql"])
        assert len(stamp["load_average"]) == 3
        assert set(stamp["wake_up_round_trip_us"]) == {"after 1 ms", "after 50 ms"}
        figures.validate({"run": stamp, "figures": []})

    def test_how_quickly_a_waiting_process_answers_is_measured_not_assumed(self) -> None:
        """A real second process echoes each byte; its round trips take a measurable time, and
        it is gone afterwards."""
        children_before = _children()
        medians = floor.wake_up_round_trips(rounds=3)
        assert list(medians) == [f"after {pause} ms" for pause in floor.WAKE_PAUSES_MS]
        assert all(isinstance(us, int) and 0 < us < 1_000_000 for us in medians.values())
        assert _children() == children_before

    def test_a_machine_that_wakes_slowly_is_named_beside_the_figures(self) -> None:
        assert floor.wake_up_note({"after 1 ms": 60, "after 50 ms": 80}) is None
        note = floor.wake_up_note({"after 1 ms": 180, "after 50 ms": 860})
        assert note is not None
        assert "860 µs after a 50 ms wait" in note

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

    def test_full_runs_each_phase_three_times_and_small_once(self) -> None:
        assert scale.from_env({}).repeats == 3
        assert scale.from_env({"BENCH_SCALE": "small"}).repeats == 1
        assert scale.from_env({"BENCH_REPEATS": "5"}).repeats == 5
        assert scale.FULL.scale_demos == 100_000
        assert scale.SMALL.scale_demos < scale.FULL.scale_demos

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
        summaries = figures.summarise([list(by_name.values())])
        figures.validate({"run": _stamp(), "figures": [s.as_dict() for s in summaries]})

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
        assert chosen_phases({}) == ("sweep", "portal", "scale", "fanout")
        assert chosen_phases({"BENCH_PHASES": "fanout,scale"}) == ("scale", "fanout")
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


class TestPacedLoad:
    def test_each_browser_asks_once_per_interval(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        seen: list[int] = []
        try:
            port = server.server_address[1]
            browsers = [Browser(port) for _ in range(3)]
            result = paced_loop(
                browsers, lambda i: "/ok", 1.0, 0.25, observe=lambda r: seen.append(r.status)
            )
            for browser in browsers:
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
        # Four slots of 0.25 s in one second for each of three browsers, whatever the server's
        # speed: a closed loop would have sent hundreds.
        assert result.requests == len(seen) == 12
        assert result.errors == 0
        assert result.statuses == {200: 12}


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


class TestPollUrls:
    def test_it_finds_the_row_poll_of_one_demo_in_my_demos(self) -> None:
        from bench.at_scale import row_poll_url
        from bench.client import without_version

        page = (
            b'<li hx-get="/demos/aaaa/status/?fragment=row&amp;v=1"></li>'
            b'<li hx-get="/demos/bbbb/status/?fragment=row&amp;v=2"></li>'
            b'<section hx-get="/demos/bbbb/status/?since=3"></section>'
        )
        assert row_poll_url(page, "bbbb") == "/demos/bbbb/status/?fragment=row&v=2"
        assert row_poll_url(page, "cccc") == ""
        assert without_version("/demos/b/status/?since=3&v=ab") == "/demos/b/status/?since=3"


class TestPagesAtScaleFigures:
    def test_every_page_gets_the_figures_the_issue_names(self) -> None:
        from bench import at_scale
        from bench.client import LoadResult
        from bench.floor import JobFloor

        def measured(seconds: float, queries: int, *, no_content: bool = False) -> Any:
            result = LoadResult(requests=10, seconds=1.0, latencies=[seconds] * 10)
            result.statuses = {204 if no_content else 200: 10}
            paced = LoadResult(requests=5, seconds=1.0, latencies=[seconds / 2] * 5)
            return at_scale.Measured(result=result, paced=paced, web_cpu=0.05, queries=[queries])

        totals = {name: measured(0.04, 3) for name in at_scale.PAGES}
        totals[at_scale.POLL_204] = measured(0.01, 1, no_content=True)
        # The typical answer's count carries the target; a cache refill shows as the most.
        totals[at_scale.FLEET].queries = [9, 9, 12, 9]
        totals[at_scale.TRIVIAL] = measured(0.002, 0)
        totals[at_scale.TRIVIAL_SIGNED_IN] = measured(0.004, 0)
        by_name = {f.name: f for f in at_scale.results(totals, JobFloor(0.01, 0.02, 5))}
        for page in at_scale.PAGES:
            p95 = by_name[f"at scale: {page}: p95"]
            paced = 5.0 if page == at_scale.POLL_204 else 20.0  # half the closed loop's
            assert (p95.value, p95.target, p95.met) == (paced, "<= 50", True)
            assert p95.floor == 1.0  # the trivial view's, paced
            queries = by_name[f"at scale: {page}: queries per request"]
            assert queries.target == f"<= {at_scale.QUERY_TARGETS[page]}"
            assert f"at scale: {page}: queries per request, most" in by_name
            assert f"at scale: {page}: p50" in by_name
            assert by_name[f"at scale: {page}: web CPU per request"].value == 5.0
        assert by_name["at scale: fleet overview: queries per request"].value == 9
        assert by_name["at scale: fleet overview: queries per request, most"].value == 12
        assert by_name["at scale: status poll (204): answered 204"].value == 100
        ratio = by_name["status poll / trivial view (no session)"]
        assert (ratio.value, ratio.target, ratio.met) == (1.0, ">= 0.5", True)
        assert "status poll / trivial view (signed in)" in by_name
        assert by_name["at scale: floor: no-op job round trip, median"].value == 10.0
        assert set(at_scale.QUERY_TARGETS) == set(at_scale.PAGES)


@pytest.mark.django_db
class TestQueryCountMiddleware:
    MIDDLEWARE = ["bench.query_count.QueryCountMiddleware", *django_settings.MIDDLEWARE]

    def test_a_rendered_answer_carries_its_query_count(self, client: Any, alice: Any) -> None:
        from django.db import connection
        from django.test import override_settings
        from django.test.utils import CaptureQueriesContext

        client.force_login(alice)
        with (
            override_settings(MIDDLEWARE=self.MIDDLEWARE),
            CaptureQueriesContext(connection) as queries,
        ):
            response = client.get("/demos/")
        assert response.status_code == 200
        assert int(response["X-Bench-Queries"]) == len(queries.captured_queries) > 0

    def test_a_streamed_answer_leaves_its_count_in_the_cache(self, client: Any) -> None:
        from django.contrib.auth.models import User
        from django.core.cache import cache
        from django.db import connection
        from django.test import override_settings
        from django.test.utils import CaptureQueriesContext

        from bench.query_count import cache_key

        manager = User.objects.create_user("boss", is_superuser=True)
        client.force_login(manager)
        with (
            override_settings(MIDDLEWARE=self.MIDDLEWARE),
            CaptureQueriesContext(connection) as queries,
        ):
            response = client.get("/fleet/export/demos.csv", headers={"X-Bench-Request": "r1"})
            b"".join(response.streaming_content)
        assert "X-Bench-Queries" not in response
        assert cache.get(cache_key("r1")) == len(queries.captured_queries) > 0


@pytest.mark.django_db
class TestDataSet:
    """The data set builder at a tiny size: rows the models accept, states the sweep leaves
    alone, and pages that render on them."""

    SIZE = {"historical": 200, "live": 40, "salespeople": 8, "managers": 2, "templates": 5}

    @pytest.fixture
    def built(self) -> Any:
        from django.db import connection

        from bench import dataset

        if connection.vendor != "postgresql":
            pytest.skip("the data set is copied in with PostgreSQL's COPY")
        return dataset.build(dataset.Size(**self.SIZE, measured=3), seed=7)

    def test_it_builds_valid_rows_of_every_kind(self, built: Any) -> None:
        from django.utils import timezone

        from demos.engine.specs import Policy
        from demos.models import (
            ACTIVE,
            ENDED,
            KEPT,
            Demo,
            DemoEvent,
            ShareLink,
            ShareLinkVisit,
            SimulatedCluster,
            Snapshot,
            Status,
        )

        demos = list(Demo.objects.all())
        assert len(demos) == 200 + 40
        assert built.counts["demos"] == len(demos)
        for demo in demos:
            demo.full_clean()
            assert demo.spec["cluster_name"] == demo.cluster_name
            assert demo.spec["demo_id"] == str(demo.public_id)
            Policy.of(demo)  # the frozen policy reads back
            assert demo.events.exists()
        statuses = {demo.status for demo in demos}
        assert {Status.DELETED, Status.ARCHIVED, Status.FAILED, Status.READY} <= statuses
        assert {Status.PROVISIONING, Status.QUEUED, Status.PAUSED} <= statuses
        now = timezone.now()
        span = max(d.requested_at for d in demos) - min(d.requested_at for d in demos)
        assert span > timedelta(days=300)
        for demo in demos:
            if demo.status in ENDED:
                assert demo.ended_at is not None
                assert demo.ended_at < now
            if demo.status == Status.READY:
                assert demo.expires_at > now + timedelta(hours=1)
            if demo.status in KEPT and demo.keep_until is not None:
                assert demo.keep_until > now  # nothing is past its retention
        owning = {d.cluster_name for d in demos if d.status in ACTIVE | {Status.PAUSED}}
        assert set(SimulatedCluster.objects.values_list("name", flat=True)) == owning
        assert DemoEvent.objects.count() == built.counts["events"] > 5 * len(demos)
        kinds = set(DemoEvent.objects.values_list("kind", flat=True))
        assert {"requested", "admitted", "provisioning", "ready", "expired", "deleted"} <= kinds
        assert Snapshot.objects.count() == built.counts["snapshots"] > 0
        assert ShareLink.objects.count() == built.counts["share links"] > 0
        assert ShareLinkVisit.objects.count() == built.counts["share link visits"]
        # New rows continue after the copied ones.
        assert DemoEvent.objects.create(demo=demos[0], kind="x", message="x").pk > max(
            DemoEvent.objects.exclude(kind="x").values_list("pk", flat=True)
        )

    def test_the_sweep_finds_nothing_to_do(self, built: Any) -> None:
        from django.test import override_settings

        from bench import dataset
        from demos.engine import reconcile

        total = dataset.active_count()
        with override_settings(DEMO_MAX_ACTIVE_TOTAL=total, DEMO_MAX_ACTIVE_PER_USER=1000):
            summary = reconcile.sweep()
        assert (summary.expired, summary.warned, summary.timed_out) == (0, 0, 0)
        assert (summary.requeued, summary.admitted, summary.retention) == (0, 0, 0)
        assert summary.orphans_deleted == []

    def test_the_measured_pages_render_on_it(self, built: Any) -> None:
        from django.contrib.auth.models import User
        from django.test import Client

        from bench.at_scale import row_poll_url

        seller = Client()
        seller.force_login(User.objects.get(pk=built.typical[0]))
        boss = Client()
        boss.force_login(User.objects.get(pk=built.managers[0]))
        ready = built.ready_demo[built.typical[0]]
        starting = built.starting_demo[built.typical[0]]
        catalog = seller.get("/")
        assert catalog.status_code == 200
        assert "Web shop" in catalog.content.decode()  # the templates are offered
        listing = seller.get("/demos/")
        assert listing.status_code == 200
        assert ready in listing.content.decode()
        assert seller.get(f"/demos/{ready}/").status_code == 200
        page = seller.get(f"/demos/{starting}/")
        poll = next_poll(page.content, "")
        assert "v=" in poll
        assert seller.get(poll, headers={"HX-Request": "true"}).status_code == 204
        row = row_poll_url(listing.content, starting)
        assert row
        assert seller.get(row, headers={"HX-Request": "true"}).status_code in (200, 204)
        assert boss.get("/demos/").status_code == 200
        assert boss.get("/fleet/").status_code == 200
        export = boss.get("/fleet/export/demos.csv")
        assert export.status_code == 200
        lines = b"".join(export.streaming_content).decode().splitlines()
        assert len(lines) == 1 + 240
        prospect = Client().get(f"/p/{built.prospect_tokens[0]}/")
        assert prospect.status_code == 200


@pytest.mark.django_db(transaction=True)
class TestGateFigures:
    """The gate's figures measure the real check, served by the live server."""

    def test_a_check_with_the_bench_pass_is_allowed_without_queries(
        self, template: Any, alice: Any
    ) -> None:
        from bench import gate, portal_data

        headers, _link = gate.prospect_headers(portal_data.running_demo(template, alice))
        assert gate.queries_per_check(headers) == 0

    def test_revocation_to_blocked_is_timed_per_link(
        self, live_server: Any, template: Any, alice: Any, monkeypatch: Any
    ) -> None:
        from bench import gate

        monkeypatch.setattr(gate, "REVOCATION_TRIALS", 2)
        port = int(live_server.url.rsplit(":", 1)[1])
        delays = gate.revocation_to_blocked(port, template, alice)
        assert len(delays) == 2
        assert all(0 < delay < 5 for delay in delays)


def _children() -> set[str]:
    """This process's child processes, as the kernel lists them."""
    return {
        pid
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    }
