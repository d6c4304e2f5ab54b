"""A readable diff of two template documents: their YAML exports, line by line."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from demos.studio.documents import to_yaml

CONTEXT_LINES = 3


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added", "removed", "context" or "hunk"
    text: str
    old_number: int | None = None
    new_number: int | None = None


def diff_documents(old: dict[str, Any], new: dict[str, Any]) -> list[DiffLine]:
    """A unified diff of the two documents' YAML; empty when they are the same."""
    old_lines = to_yaml(old).splitlines()
    new_lines = to_yaml(new).splitlines()
    lines: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        first, last = group[0], group[-1]
        lines.append(
            DiffLine("hunk", f"Lines {first[1] + 1} to {last[2]} → {first[3] + 1} to {last[4]}")
        )
        for tag, old_start, old_end, new_start, new_end in group:
            if tag == "equal":
                for offset in range(old_end - old_start):
                    lines.append(
                        DiffLine(
                            "context",
                            old_lines[old_start + offset],
                            old_start + offset + 1,
                            new_start + offset + 1,
                        )
                    )
                continue
            for index in range(old_start, old_end):
                lines.append(DiffLine("removed", old_lines[index], old_number=index + 1))
            for index in range(new_start, new_end):
                lines.append(DiffLine("added", new_lines[index], new_number=index + 1))
    return lines
