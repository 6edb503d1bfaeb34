from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ...models import GeneratedImage
from ...registry import get_config
from ...services import AlreadyHasImage, create_generation, run_generation


class Command(BaseCommand):
    help = "Generate header images for objects of a model registered in NANOBANANA['MODELS']."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="The content model, as app_label.ModelName.")
        parser.add_argument(
            "--ids", nargs="+", metavar="ID", help="Only these primary keys (default: all)."
        )
        parser.add_argument(
            "--missing-only",
            action="store_true",
            help="Skip objects that already have an image.",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Replace images objects already have (otherwise they are skipped).",
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Generate in this process, one after another, without a task worker.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["sync"]:
            raise CommandError(
                "Queueing to a worker is not available yet; pass --sync to generate in the "
                "foreground."
            )
        try:
            config = get_config(options["model"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if options["missing_only"] and options["overwrite"]:
            raise CommandError("--missing-only and --overwrite contradict each other.")

        queryset = config.model._default_manager.order_by("pk")
        if options["ids"]:
            pk_field = config.model._meta.pk
            for value in options["ids"]:
                try:
                    pk_field.to_python(value)
                except ValidationError:
                    raise CommandError(f"{value!r} is not a valid {config.label} id.") from None
            queryset = queryset.filter(pk__in=options["ids"])
            found = {str(pk) for pk in queryset.values_list("pk", flat=True)}
            missing = [pk for pk in options["ids"] if pk not in found]
            if missing:
                raise CommandError(f"No {config.label} with id {', '.join(missing)}.")
        if options["missing_only"]:
            queryset = config.without_image(queryset)

        counts = {"succeeded": 0, "failed": 0, "skipped": 0}
        for obj in queryset.iterator():
            try:
                row = create_generation(obj, overwrite=options["overwrite"])
            except AlreadyHasImage:
                counts["skipped"] += 1
                self.stdout.write(f"{config.label} {obj.pk}: already has an image, skipped")
                continue
            except ValidationError as exc:
                raise CommandError(f"Invalid generation input: {'; '.join(exc.messages)}") from None
            try:
                row = run_generation(row.pk)
            except DatabaseError as exc:
                raise CommandError(
                    f"Database error while generating for {config.label} {obj.pk}: {exc}. "
                    "The generation is kept and resumes when run again."
                ) from None
            if row.status == GeneratedImage.Status.SUCCEEDED:
                counts["succeeded"] += 1
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{config.label} {obj.pk}: {row.image.name} "
                        f"({row.width}x{row.height} {row.image_format})"
                    )
                )
            else:
                counts["failed"] += 1
                self.stderr.write(
                    self.style.ERROR(f"{config.label} {obj.pk}: failed: {row.error_message}")
                )
        summary = ", ".join(f"{n} {label}" for label, n in counts.items())
        self.stdout.write(f"Done: {summary}.")
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} generation(s) failed; see above.")
