"""The benchmark harness's own pieces, at a tiny scale: no gunicorn, no worker processes."""

from __future__ import annotations

import json
import statistics
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import figures, scale
from bench.client import Browser, closed_loop, next_poll
from bench.figures import Figure
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
        full = scale.from_env({"BENCH_SWEEP_ROWS": "10,20", "BENCH_POLL_SECONDS": "0.5"})
        assert full.sweep_rows == (10, 20)
        assert full.poll_seconds == 0.5

    def test_it_refuses_unknown_scales_and_bad_numbers(self) -> None:
        with pytest.raises(SystemExit, match="BENCH_SCALE"):
            scale.from_env({"BENCH_SCALE": "huge"})
        with pytest.raises(SystemExit, match="BENCH_CLAIMS"):
            scale.from_env({"BENCH_CLAIMS": "many"})


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
