from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run an RQ worker for the portal's queues with the scheduler on (for expiry jobs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--burst", action="store_true", help="Stop when the queues are empty.")
        parser.add_argument("--name", default=None, help="Worker name (default: RQ's own).")

    def handle(self, *args: object, **options: object) -> None:
        extra = {"name": options["name"]} if options["name"] else {}
        call_command(
            "rqworker",
            *settings.RQ_QUEUE_NAMES,
            with_scheduler=True,
            burst=bool(options["burst"]),
            **extra,
        )
