"""The one way the portal reads YAML that people type in: small, plain, and refused early.

Template admins write chart values, credentials and vCluster overrides as YAML, and the portal
parses them on save and again on every start. Plain `yaml.safe_load` trusts its input too much
for that: a few hundred bytes of anchors and aliases (a "billion laughs") expand into megabytes
once anything walks or dumps the result, and deep nesting exhausts Python's stack. So this
loader refuses anchors and aliases outright (before anything is expanded), and caps the size of
the text, the number of values and the nesting depth.

    from demos.bounded_yaml import BoundedYAMLError, load_bounded

    try:
        data = load_bounded(text, field="Values of chart shop")
    except BoundedYAMLError as exc:
        ...  # str(exc) names the field and what to fix, with line and column for syntax errors

`load_bounded` returns what `yaml.safe_load` would (None for an empty text).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent

MAX_BYTES = 64 * 1024
MAX_NODES = 10_000
# Far deeper than any chart's values, and far from Python's recursion limit.
MAX_DEPTH = 64


class BoundedYAMLError(ValueError):
    """YAML that is invalid or over a limit. The message names the field and what to fix."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class _LimitReached(yaml.YAMLError):
    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that checks every node as it is composed, before anything is constructed."""

    max_nodes = MAX_NODES
    max_depth = MAX_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None):
            raise _LimitReached(
                "anchors and aliases (&name, *name, <<: *name) are not accepted; "
                "write each value out in full",
                event.start_mark,
            )
        self._nodes += 1
        if self._nodes > self.max_nodes:
            raise _LimitReached(
                f"more than {self.max_nodes:,} values; split it up or shorten it",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise _LimitReached(
                    f"nested more than {self.max_depth} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# Dates and times stay text as written: specs are JSON, and a chart gets the value it was given.
_BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_bounded(
    text: str, *, field: str, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES
) -> Any:
    """Parse one YAML document from `text` within the limits, or raise `BoundedYAMLError`.

    `field` is how the person who typed the text knows it ("Credentials", "Values of chart
    shop"); every message starts with it.
    """
    size = len(text.encode())
    if size > max_bytes:
        raise BoundedYAMLError(
            field, f"{size:,} bytes is more than the {max_bytes // 1024} KiB allowed."
        )
    if not text.strip():
        return None
    loader = _BoundedLoader(text)
    loader.max_nodes = max_nodes
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise BoundedYAMLError(field, _describe(exc)) from None
    finally:
        loader.dispose()


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, _LimitReached):
        return f"{problem}{f' ({where})' if where else ''}."
    return f"invalid YAML{f' at {where}' if where else ''}: {problem}."
