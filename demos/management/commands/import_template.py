import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demos.studio.import_export import import_template
from demos.studio.versions import Actor


class Command(BaseCommand):
    help = (
        "Read a demo template from a YAML document (as `export_template` writes it), validated "
        "exactly like the template studio's editor. It becomes the draft of the template with "
        "its slug (or a new template); with --publish it is published at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The YAML file, or - for stdin.")
        parser.add_argument(
            "--publish", action="store_true", help="Publish it as a new version at once."
        )

    def handle(self, *args: object, **options: object) -> None:
        name = str(options["file"])
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {name}: {exc}") from None
        result = import_template(
            text, actor=Actor(label="import_template command"), publish=bool(options["publish"])
        )
        if not result.ok or result.template is None:
            raise CommandError(
                f"{name} was not imported:\n" + "\n".join(f"- {p}" for p in result.problems)
            )
        template = result.template
        if result.unchanged:
            self.stdout.write(
                f"{template.slug}: the same as version {template.version}; unchanged."
            )
        elif result.published is not None:
            self.stdout.write(f"{template.slug}: published as version {result.published.number}.")
        else:
            what = "created as a new draft" if result.created else "saved as its draft"
            self.stdout.write(f"{template.slug}: {what}; publish it in the template studio.")
