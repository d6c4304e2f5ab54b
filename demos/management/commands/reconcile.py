from django.core.management.base import BaseCommand

from demos.engine.reconcile import sweep


class Command(BaseCommand):
    help = "Run one reconcile sweep now and print what it did (the cron runs it periodically)."

    def handle(self, *args: object, **options: object) -> None:
        summary = sweep()
        self.stdout.write(f"Reconcile: {summary}")
        for name in summary.orphans_deleted:
            self.stdout.write(f"  deleted orphaned cluster {name}")
        for error in summary.errors:
            self.stderr.write(f"  error: {error}")
