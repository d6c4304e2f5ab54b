from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demos.models import DemoTemplate, TemplateVersion
from demos.studio import documents
from demos.studio.import_export import DRAFT, ExportError, export_template


class Command(BaseCommand):
    help = (
        "Write a demo template as one YAML document (settings, charts, values): its published "
        "version unless told otherwise. `import_template` reads it back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The template's slug.")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--draft", action="store_true", help="Export its draft instead.")
        which.add_argument("--number", type=int, help="Export this version number instead.")
        parser.add_argument("-o", "--output", help="Write to this file instead of stdout.")

    def handle(self, *args: object, **options: object) -> None:
        slug = str(options["slug"])
        template = DemoTemplate.objects.filter(slug=slug).first()
        if template is None:
            raise CommandError(f"No template with slug “{slug}”.")
        try:
            if options["number"] is not None:
                version = TemplateVersion.objects.filter(
                    template=template, number=options["number"]
                ).first()
                if version is None:
                    raise ExportError(f"Template {slug} has no version {options['number']}.")
                text = documents.to_yaml(version.content)
            else:
                text = export_template(template, source=DRAFT if options["draft"] else "published")
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        if options["output"]:
            Path(str(options["output"])).write_text(text, encoding="utf-8")
        else:
            # As is: the file must be byte for byte what an import reads back.
            self.stdout.write(text, ending="")
