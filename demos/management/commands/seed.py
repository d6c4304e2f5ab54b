import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demos.seed import seed_dev_users, seed_templates


class Command(BaseCommand):
    help = "Create the sample demo templates (and, with --dev-users, development accounts)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dev-users",
            action="store_true",
            help="Also create `admin` and `sales` with PORTAL_DEV_PASSWORD (DEBUG only).",
        )

    def handle(self, *args: object, **options: object) -> None:
        templates = seed_templates()
        self.stdout.write(f"Sample templates created: {len(templates)}")
        if options["dev_users"]:
            if not settings.DEBUG:
                raise CommandError("Development users are only created with DEBUG on.")
            users = seed_dev_users(os.environ.get("PORTAL_DEV_PASSWORD", "demo"))
            self.stdout.write(f"Development users created: {', '.join(users) or 'none'}")
