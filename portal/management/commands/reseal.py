"""Re-encrypt every sealed kubeconfig with the primary sealing key: the middle step of a rotation.

Rotation: put the new key first in SEALING_KEYS and keep the old one after it, restart the
portal's processes, run this, then remove the old key. Rows no configured key can read are
reported and left as they are, and the run goes on; running it again is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from demos.models import Demo
from portal.sealing import SealingError, reseal


@dataclass
class ResealSummary:
    resealed: int = 0
    # Rewritten or cleared by a worker while this ran: the worker's value is kept.
    changed_meanwhile: int = 0
    # Cluster names of the demos whose sealed kubeconfig no configured key opens.
    unreadable: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"Resealed {self.resealed} kubeconfig{'s' if self.resealed != 1 else ''}"]
        if self.changed_meanwhile:
            parts.append(f"{self.changed_meanwhile} changed meanwhile (kept as the worker left it)")
        parts.append(f"{len(self.unreadable)} unreadable (left as they are)")
        return "; ".join(parts) + "."


def reseal_kubeconfigs(*, batch_size: int = 200) -> ResealSummary:
    """Re-encrypt every non-empty `Demo.kubeconfig_sealed` with the primary key, batch by batch.

    Each row is written only if it still holds the value that was read, so a kubeconfig a worker
    stores (or clears) meanwhile is never overwritten with an older one.
    """
    summary = ResealSummary()
    after = 0
    while True:
        batch = list(
            Demo.objects.exclude(kubeconfig_sealed="")
            .filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", "cluster_name", "kubeconfig_sealed")[:batch_size]
        )
        if not batch:
            return summary
        with transaction.atomic():
            for pk, cluster_name, token in batch:
                try:
                    fresh = reseal(token)
                except SealingError:
                    summary.unreadable.append(cluster_name)
                    continue
                written = Demo.objects.filter(pk=pk, kubeconfig_sealed=token).update(
                    kubeconfig_sealed=fresh
                )
                if written:
                    summary.resealed += 1
                else:
                    summary.changed_meanwhile += 1
        after = batch[-1][0]


class Command(BaseCommand):
    help = (
        "Re-encrypt every sealed kubeconfig with the first key in SEALING_KEYS (run after adding "
        "a new key first, before removing the old one)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=200, help="Rows per transaction (default 200)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        summary = reseal_kubeconfigs(batch_size=max(1, options["batch_size"]))
        for cluster_name in summary.unreadable:
            self.stderr.write(
                f"Cannot read the sealed kubeconfig of demo {cluster_name}: no key in "
                "SEALING_KEYS opens it (sealed with a key removed since, or altered). Its "
                "prospects are told the download is not available."
            )
        self.stdout.write(str(summary))
