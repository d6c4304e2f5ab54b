from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the portal's cron schedule (portal/cron.py). Run exactly one of these."

    def handle(self, *args: object, **options: object) -> None:
        call_command("rqcron", "portal.cron")
