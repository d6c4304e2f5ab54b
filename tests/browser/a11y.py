"""The accessibility check: axe-core (vendored, see vendor/axe-core/README.md) run in a page.

The portal's Content-Security-Policy refuses inline scripts, so a `<script>` tag with axe's text
would be blocked. Playwright's `evaluate` runs through the browser's debugging protocol, which
the policy does not govern: axe goes in that way, and the page keeps the policy it has for real.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA.
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")
# What fails the check; "minor" and "moderate" findings are worth a look, not a red build.
FAILING_IMPACTS = frozenset({"serious", "critical"})


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    help_url: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        nodes = "\n".join(f"      {target}" for target in self.targets)
        return f"  - {self.rule} ({self.impact}): {self.help}\n    {self.help_url}\n{nodes}"


def _target(node: dict[str, Any]) -> str:
    """The CSS selector axe gives for a node, and what it found wrong there, briefly."""
    selector = " ".join(str(part) for part in node.get("target", []))
    summary = (node.get("failureSummary") or "").replace("\n", " ").strip()
    return f"{selector}  [{summary}]" if summary else selector


def axe_violations(page: Page) -> list[Violation]:
    """Every WCAG A/AA violation axe finds in the page as it is now, any impact."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    results = page.evaluate(
        """tags => axe.run(document, {
            runOnly: {type: "tag", values: tags},
            resultTypes: ["violations"],
        })""",
        list(WCAG_TAGS),
    )
    return [
        Violation(
            rule=found["id"],
            impact=found.get("impact") or "unknown",
            help=found["help"],
            help_url=found["helpUrl"],
            targets=tuple(_target(node) for node in found["nodes"]),
        )
        for found in results["violations"]
    ]


def serious_violations(page: Page) -> list[Violation]:
    """The violations that fail the check: serious or critical."""
    return [found for found in axe_violations(page) if found.impact in FAILING_IMPACTS]


def report(page_name: str, violations: list[Violation]) -> str:
    """What a failing check prints: each rule, its impact, what to do, and where."""
    return f"{page_name}:\n" + "\n".join(str(found) for found in violations)
