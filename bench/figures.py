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
    name: str
    value: float | None
    unit: str
    target: str | None = None
    met: bool | None = None

    @classmethod
    def of(cls, name: str, value: float | None, unit: str, target: str | None = None) -> Figure:
        if isinstance(value, float):
            value = round(value, 3)
        return cls(name, value, unit, target, target_met(value, target))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ms(seconds: float) -> float:
    return seconds * 1000


def format_table(figures: Iterable[Figure], title: str = "") -> str:
    rows = [("figure", "value", "unit", "target", "met")]
    for figure in figures:
        value = "n/a" if figure.value is None else f"{figure.value:g}"
        met = {True: "yes", False: "NO", None: ""}[figure.met]
        rows.append((figure.name, value, figure.unit, figure.target or "", met))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [title] if title else []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1])]
        cells += [cell.ljust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def validate(document: Any) -> list[dict[str, Any]]:
    """Check the JSON shape runs are compared by; raise ValueError naming what is wrong."""
    if not isinstance(document, list):
        raise ValueError("results must be a list of figures")
    for index, item in enumerate(document):
        if not isinstance(item, dict) or set(item) != {"name", "value", "unit", "target", "met"}:
            raise ValueError(f"figure {index} must have exactly name, value, unit, target, met")
        if not isinstance(item["name"], str) or not item["name"]:
            raise ValueError(f"figure {index}: name must be a non-empty string")
        if item["value"] is not None and not isinstance(item["value"], int | float):
            raise ValueError(f"figure {item['name']}: value must be a number or null")
        if not isinstance(item["unit"], str):
            raise ValueError(f"figure {item['name']}: unit must be a string")
        if item["target"] is not None:
            target_met(0, item["target"])  # raises on a malformed target
        if item["met"] is not None and not isinstance(item["met"], bool):
            raise ValueError(f"figure {item['name']}: met must be true, false or null")
        if item["met"] != target_met(item["value"], item["target"]):
            raise ValueError(f"figure {item['name']}: met does not follow from value and target")
    return document


def write_results(
    figures: Sequence[Figure], stem: str, directory: Path = RESULTS_DIR, *, complete: bool = True
) -> tuple[Path, Path]:
    """Write `<stem>-latest.json` (or `latest.json`) and a timestamped copy under `runs/`.

    A run of only some phases or drills (`complete=False`) writes the timestamped copy alone, so
    the latest file always holds a whole run."""
    document = validate([figure.as_dict() for figure in figures])
    text = json.dumps(document, indent=2) + "\n"
    latest = directory / ("latest.json" if stem == "bench" else f"{stem}-latest.json")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = directory / "runs" / f"{stem}-{stamp}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    if complete:
        latest.write_text(text)
    kept.write_text(text)
    return (latest if complete else kept), kept


def report(
    figures: Sequence[Figure], title: str, stem: str, *, complete: bool = True
) -> tuple[Path, Path]:
    """Print the table and the targets missed, and write the JSON files (see `write_results`)."""
    print()
    print(format_table(figures, title))
    written = write_results(figures, stem, complete=complete)
    missed = [figure.name for figure in figures if figure.met is False]
    if missed:
        print("targets missed: " + "; ".join(missed))
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
