"""Figures, the printed table and the JSON files. Pure: no Django, no processes."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
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
    figures: Sequence[Figure], stem: str, directory: Path = RESULTS_DIR
) -> tuple[Path, Path]:
    """Write `<stem>-latest.json` (or `latest.json`) and a timestamped copy under `runs/`."""
    document = validate([figure.as_dict() for figure in figures])
    text = json.dumps(document, indent=2) + "\n"
    latest = directory / ("latest.json" if stem == "bench" else f"{stem}-latest.json")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = directory / "runs" / f"{stem}-{stamp}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    latest.write_text(text)
    kept.write_text(text)
    return latest, kept


def report(figures: Sequence[Figure], title: str, stem: str) -> tuple[Path, Path]:
    """Print the table and the targets missed, and write the JSON files (see `write_results`)."""
    print()
    print(format_table(figures, title))
    written = write_results(figures, stem)
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
