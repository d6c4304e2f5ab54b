"""The one way the portal writes a duration, and the one percentile."""

from __future__ import annotations

from datetime import timedelta

import pytest

from demos.durations import format_duration, percentile


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (0, "0 s"),
            (0.9, "0 s"),
            (1, "1 s"),
            (59, "59 s"),
            (59.99, "59 s"),
            (60, "1 min"),
            (61, "1 min 1 s"),
            (185, "3 min 5 s"),
            (185.7, "3 min 5 s"),
            (3599, "59 min 59 s"),
            (3600, "1 h"),
            (3601, "1 h"),
            (3661, "1 h 1 min"),
            (7199, "1 h 59 min"),
            (86399, "23 h 59 min"),
            (86400, "1 day"),
            (90000, "1 day 1 h"),
            (90061, "1 day 1 h"),
            (172800, "2 days"),
            (259200, "3 days"),
            (7 * 86400 + 5 * 3600, "7 days 5 h"),
            (-5, "0 s"),
        ],
    )
    def test_it_writes_at_most_two_units_cut_to_whole_seconds(
        self, seconds: float, text: str
    ) -> None:
        assert format_duration(seconds) == text

    def test_it_reads_a_timedelta_like_its_seconds(self) -> None:
        assert format_duration(timedelta(hours=72)) == "3 days"
        assert format_duration(timedelta(seconds=185, microseconds=999_999)) == "3 min 5 s"
        assert format_duration(timedelta(seconds=-1)) == "0 s"

    def test_it_writes_a_dash_for_no_duration(self) -> None:
        assert format_duration(None) == "—"


class TestPercentile:
    def test_it_takes_timedeltas_as_well_as_seconds(self) -> None:
        assert percentile([timedelta(seconds=1), timedelta(seconds=4)], 50) == timedelta(
            seconds=2.5
        )
        assert percentile([1.0, 4.0], 50) == 2.5
