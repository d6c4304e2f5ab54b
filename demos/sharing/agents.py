"""Who visited a share link, in words a salesperson reads: "Chrome on macOS · 2 visits".

A raw user-agent string says little to a person and is long enough to push a page sideways. This
reads the common browsers and systems from it, and groups a link's visits by what it finds.
Anything else is "Unknown browser": the point is a glance, not an inventory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# In order: several browsers name others in their strings (Edge and Opera say "Chrome", Chrome
# says "Safari"), so the more specific mark is looked for first.
_BROWSERS = (
    ("Edge", re.compile(r"\bEdgA?/|\bEdgiOS/")),
    ("Opera", re.compile(r"\bOPR/|\bOpera\b")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Firefox", re.compile(r"\bFirefox/|\bFxiOS/")),
    ("Chrome", re.compile(r"\bChrome/|\bCriOS/|\bChromium/")),
    ("Safari", re.compile(r"\bVersion/[\d.]+.*\bSafari/")),
)
_SYSTEMS = (
    ("iOS", re.compile(r"\biPhone\b|\biPad\b|\biPod\b")),
    ("Android", re.compile(r"\bAndroid\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMacintosh\b|\bMac OS X\b")),
    ("Linux", re.compile(r"\bLinux\b")),
)
UNKNOWN_BROWSER = "Unknown browser"


def _first_match(patterns: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> str:
    return next((name for name, pattern in patterns if pattern.search(text)), "")


def describe(user_agent: str) -> str:
    """ "Chrome on macOS", "Firefox", "Unknown browser on Windows" or "Unknown browser"."""
    browser = _first_match(_BROWSERS, user_agent) or UNKNOWN_BROWSER
    system = _first_match(_SYSTEMS, user_agent)
    return f"{browser} on {system}" if system else browser


@dataclass(frozen=True)
class VisitGroup:
    """One person's visits from one browser and system, the latest first."""

    recipient: str
    device: str
    count: int
    last_at: datetime

    @property
    def summary(self) -> str:
        return f"{self.device} · {self.count} visit{'s' if self.count != 1 else ''}"


def group_visits(visits: Iterable[Any]) -> list[VisitGroup]:
    """Visits (newest first, each with `link.recipient`, `user_agent` and `visited_at`) grouped
    by recipient and device, in the order of each group's latest visit."""
    groups: dict[tuple[str, str], VisitGroup] = {}
    for visit in visits:
        key = (visit.link.recipient, describe(visit.user_agent))
        known = groups.get(key)
        if known is None:
            groups[key] = VisitGroup(key[0], key[1], 1, visit.visited_at)
        else:
            groups[key] = VisitGroup(
                key[0], key[1], known.count + 1, max(known.last_at, visit.visited_at)
            )
    return sorted(groups.values(), key=lambda group: group.last_at, reverse=True)
