"""Figures, the printed table and the JSON files. Pure: no Django, no processes."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# A target is a comparison written the way a person reads it: "<= 200", ">= 0.7", "== 0".
_TARGET = re.compile(r"^(<=|>=|<|>|==)\s*(-?[0-9.]+)$")


def target_met(value: float | None, target: str | None) -> bool | None:
    """Whether `value` meets `target`; None when there is no target (an informational figure)."""
    if target is None:
        return None
    match = _TARGET.match(target.strip())
    if not match:
        raise ValueError(f"target {target!r} is not a comparison like '<= 200'")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    op, bound = match.group(1), float(match.group(2))
    return {
        "<=": value <= bound,
        ">=": value >= bound,
        "<": value < bound,
        ">": value > bound,
        "==": value == bound,
    }[op]


@dataclass(frozen=True)
class Figure:
    """One figure of one run of a phase. `floor` is what the same measure gave, in the same run,
    for something that does nothing (a trivial view, a no-op job): the physical floor beside
    it."""

    name: str
    value: float | None
    unit: str
    target: str | None = None
    met: bool | None = None
    floor: float | None = None

    @classmethod
    def of(
        cls,
        name: str,
        value: float | None,
        unit: str,
        target: str | None = None,
        *,
        floor: float | None = None,
    ) -> Figure:
        return cls(name, _rounded(value), unit, target, target_met(value, target), _rounded(floor))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if isinstance(value, float) else value


def ms(seconds: float) -> float:
    return seconds * 1000


@dataclass(frozen=True)
class Summary:
    """A figure over every run of its phase: the median, the spread, and each run's value. `met`
    follows from the median, so one lucky or unlucky run neither makes nor breaks a target."""

    name: str
    value: float | None  # the median of the runs that gave a value
    unit: str
    target: str | None
    met: bool | None
    floor: float | None  # the median of the runs' floors
    low: float | None
    high: float | None
    runs: tuple[float | None, ...]  # None: that run did not give this figure a value

    @property
    def spread_percent(self) -> float | None:
        """(max - min) as a percentage of the median; None without two values to compare."""
        if self.value in (None, 0) or self.low is None or self.high is None:
            return None
        if len([v for v in self.runs if v is not None]) < 2:
            return None
        return 100 * (self.high - self.low) / abs(self.value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            "floor": self.floor,
            "min": self.low,
            "max": self.high,
            "runs": list(self.runs),
        }


def _median(values: Sequence[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return _rounded(float(statistics.median(numbers))) if numbers else None


def summarise(runs: Sequence[Sequence[Figure]]) -> list[Summary]:
    """One summary per figure name, in the order figures first appeared, over `runs` (each the
    figures of one run of every phase)."""
    names: dict[str, Figure] = {}
    for figures in runs:
        for figure in figures:
            names.setdefault(figure.name, figure)
    by_run = [{figure.name: figure for figure in figures} for figures in runs]
    out = []
    for name, first in names.items():
        found = [run.get(name) for run in by_run]
        values = tuple(f.value if f is not None else None for f in found)
        numbers = [v for v in values if v is not None]
        value = _median(values)
        out.append(
            Summary(
                name=name,
                value=value,
                unit=first.unit,
                target=first.target,
                met=target_met(value, first.target),
                floor=_median([f.floor if f is not None else None for f in found]),
                low=min(numbers) if numbers else None,
                high=max(numbers) if numbers else None,
                runs=values,
            )
        )
    return out


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def format_table(summaries: Iterable[Summary], title: str = "") -> str:
    """figure, median (with its unit), spread over the runs, target, met, floor."""
    rows = [("figure", "median", "spread", "target", "met", "floor")]
    for item in summaries:
        spread = ""
        if item.spread_percent is not None:
            spread = f"{_number(item.low)}-{_number(item.high)} ({item.spread_percent:.0f}%)"
        met = {True: "yes", False: "NO", None: ""}[item.met]
        floor = "" if item.floor is None else f"{item.floor:g} {item.unit}"
        median = f"{_number(item.value)} {item.unit}"
        rows.append((item.name, median, spread, item.target or "", met, floor))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = [title] if title else []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2])]
        cells += [cell.ljust(width) for cell, width in zip(row[3:], widths[3:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


# What every results file says about where and when its figures were taken.
STAMP_FIELDS = {
    "commit": str,
    "dirty": bool,
    "python": str,
    "postgresql": str,
    "cpus": int,
    "load_average": list,
    "started_at": str,
    "repeats": int,
}
FIGURE_FIELDS = {"name", "value", "unit", "target", "met", "floor", "min", "max", "runs"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate(document: Any) -> dict[str, Any]:
    """Check the JSON shape runs are compared by; raise ValueError naming what is wrong."""
    if not isinstance(document, dict) or set(document) != {"run", "figures"}:
        raise ValueError("results must be an object with exactly run and figures")
    stamp = document["run"]
    if not isinstance(stamp, dict):
        raise ValueError("run must be an object")
    for key, kind in STAMP_FIELDS.items():
        if not isinstance(stamp.get(key), kind) or (kind is int and isinstance(stamp[key], bool)):
            raise ValueError(f"run.{key} must be a {kind.__name__}")
    if len(stamp["load_average"]) != 3 or not all(map(_is_number, stamp["load_average"])):
        raise ValueError("run.load_average must be the 1, 5 and 15 minute averages")
    if not isinstance(document["figures"], list):
        raise ValueError("figures must be a list")
    for index, item in enumerate(document["figures"]):
        if not isinstance(item, dict) or set(item) != FIGURE_FIELDS:
            raise ValueError(f"figure {index} must have exactly {', '.join(sorted(FIGURE_FIELDS))}")
        name = item["name"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"figure {index}: name must be a non-empty string")
        for key in ("value", "floor", "min", "max"):
            if item[key] is not None and not _is_number(item[key]):
                raise ValueError(f"figure {name}: {key} must be a number or null")
        if not isinstance(item["unit"], str):
            raise ValueError(f"figure {name}: unit must be a string")
        if not isinstance(item["runs"], list) or not item["runs"]:
            raise ValueError(f"figure {name}: runs must list each run's value")
        if not all(v is None or _is_number(v) for v in item["runs"]):
            raise ValueError(f"figure {name}: runs must be numbers or null")
        if item["target"] is not None:
            target_met(0, item["target"])  # raises on a malformed target
        if item["met"] is not None and not isinstance(item["met"], bool):
            raise ValueError(f"figure {name}: met must be true, false or null")
        if item["met"] != target_met(item["value"], item["target"]):
            raise ValueError(f"figure {name}: met does not follow from value and target")
        if item["value"] is not None and not (item["min"] <= item["value"] <= item["max"]):
            raise ValueError(f"figure {name}: the median must lie between min and max")
    return document


def write_results(
    summaries: Sequence[Summary],
    stamp: Mapping[str, Any],
    stem: str,
    directory: Path = RESULTS_DIR,
    *,
    complete: bool = True,
) -> tuple[Path, Path]:
    """Write `<stem>-latest.json` (or `latest.json`) and a timestamped copy under `runs/`: the
    run's stamp and its figures.

    A run of only some phases or drills (`complete=False`) writes the timestamped copy alone, so
    the latest file always holds a whole run."""
    document = validate(
        {"run": dict(stamp), "figures": [summary.as_dict() for summary in summaries]}
    )
    text = json.dumps(document, indent=2) + "\n"
    latest = directory / ("latest.json" if stem == "bench" else f"{stem}-latest.json")
    moment = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = directory / "runs" / f"{stem}-{moment}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    if complete:
        latest.write_text(text)
    kept.write_text(text)
    return (latest if complete else kept), kept


def report(
    runs: Sequence[Sequence[Figure]],
    stamp: Mapping[str, Any],
    title: str,
    stem: str,
    *,
    complete: bool = True,
) -> tuple[Path, Path]:
    """Print the table of medians and the targets missed, and write the JSON files (see
    `write_results`). `runs` holds the figures of each repeat."""
    summaries = summarise(runs)
    print()
    print(format_table(summaries, title))
    written = write_results(summaries, stamp, stem, complete=complete)
    missed = [item.name for item in summaries if item.met is False]
    if missed:
        print("targets missed (median of the runs): " + "; ".join(missed))
    return written


def sweep_figures(runs: list[dict[str, Any]], due: int) -> list[Figure]:
    """Flat means: the same number of queries at every size, and at most half as much time
    again as at the smallest size (plus 5 ms, below which timings are noise), for the whole
    sweep and for the database's share of it."""
    first = runs[0]

    def bound(seconds: float) -> str:
        return f"<= {round(ms(max(seconds * 1.5, seconds + 0.005)), 1)}"

    out = []
    for item in runs:
        label = f"reconcile sweep, {item['nominal_rows']:,} demos"
        baseline = item is first
        out += [
            Figure.of(
                f"{label}: time",
                ms(item["seconds"]),
                "ms",
                None if baseline else bound(first["seconds"]),
            ),
            Figure.of(
                f"{label}: database time",
                ms(item["db_seconds"]),
                "ms",
                None if baseline else bound(first["db_seconds"]),
            ),
            Figure.of(
                f"{label}: queries",
                item["queries"],
                "queries",
                None if baseline else f"== {first['queries']}",
            ),
            Figure.of(f"{label}: due demos expired", item["expired"], "demos", f"== {due}"),
        ]
    return out


def busy_share(
    before: Mapping[str, float], after: Mapping[str, float], workers: int, wall: float
) -> float:
    """The share (0 to 1) of `workers` times `wall` seconds the workers spent inside jobs, from
    their running totals of working time before and after. A worker that appeared meanwhile
    (a restart) counts from zero; one that vanished counts nothing. A job that ended just after
    the window is counted whole, so the share is capped at 1."""
    if workers <= 0 or wall <= 0:
        return 0.0
    spent = sum(max(0.0, total - before.get(name, 0.0)) for name, total in after.items())
    return min(1.0, spent / (workers * wall))


@dataclass(frozen=True)
class FanOut:
    """One provisioning fan-out: `starts` demos at once on `workers` workers."""

    starts: int
    workers: int
    step_seconds: float
    via: str  # how the starts were made: "HTTP" or "lifecycle"
    alone: Sequence[float]  # seconds from a lone start to its demo's ready_at
    all_ready: float | None  # seconds from the first start to the last ready_at; None: missed
    waited: float  # seconds from the first start until the wait ended
    ready: int  # demos ready when the wait ended
    failed: int
    answered: float  # seconds until every start had its answer
    start_errors: int
    busy: float  # busy share of the workers over the fan-out (0 to 1)
    jobs: int  # jobs the workers ended during the fan-out
    worker_cpu: float  # CPU seconds of the workers and their work horses during the fan-out
    machine_busy: float = 0.0  # cores the whole machine kept busy meanwhile (on average)

    @property
    def ratio(self) -> float | None:
        if self.all_ready is None or not self.alone:
            return None
        return self.all_ready / statistics.median(self.alone)


def fanout_figures(run: FanOut) -> list[Figure]:
    prefix = "provisioning fan-out"
    label = f"{prefix}: {run.starts} starts on {run.workers} workers, {run.step_seconds:g} s steps"
    alone = statistics.median(run.alone) if run.alone else None
    return [
        Figure.of(f"{label} / one start alone", run.ratio, "ratio", "<= 2"),
        Figure.of(f"{prefix}: worker busy share", 100 * run.busy, "%"),
        Figure.of(f"{prefix}: one start alone, to ready (median)", alone, "s"),
        Figure.of(f"{prefix}: all {run.starts} ready", run.all_ready, "s"),
        Figure.of(f"{prefix}: ready when the wait ended", run.ready, "demos", f"== {run.starts}"),
        Figure.of(f"{prefix}: waited", run.waited, "s"),
        Figure.of(f"{prefix}: failed", run.failed, "demos", "== 0"),
        Figure.of(f"{prefix}: every start answered ({run.via})", run.answered, "s"),
        Figure.of(f"{prefix}: start errors", run.start_errors, "starts", "== 0"),
        Figure.of(f"{prefix}: jobs run", run.jobs, "jobs"),
        Figure.of(
            f"{prefix}: jobs per demo", run.jobs / run.starts if run.starts else None, "jobs"
        ),
        Figure.of(
            f"{prefix}: worker CPU per job (work horses included)",
            ms(run.worker_cpu / run.jobs) if run.jobs else None,
            "ms",
        ),
        Figure.of(f"{prefix}: machine CPU busy", run.machine_busy, "cores"),
    ]
