"""The pinned `helm` and `kubectl` that `make test` fetches (scripts/get-tools), and kustomize.

Tests of cluster behaviour need the real binaries; a missing one fails them instead of skipping.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


class ToolError(RuntimeError):
    """A tool is missing or refused its input; the message says which and why."""


def binary(name: str) -> str:
    """`name` from .tools/bin (pinned), else from PATH."""
    pinned = ROOT / ".tools" / "bin" / name
    if pinned.is_file():
        return str(pinned)
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name} is not installed: run scripts/get-tools (make setup)")
    return found


@cache
def kustomize(tree: str) -> tuple[Mapping[str, Any], ...]:
    """Every object `kubectl kustomize k8s/<tree>` renders, parsed (cached: do not change)."""
    result = subprocess.run(
        [binary("kubectl"), "kustomize", str(ROOT / "k8s" / tree)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise ToolError(f"kubectl kustomize k8s/{tree} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
