"""One sweep for scheduled posts, for sites that run it from cron (docs/scheduled.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...registry import find_config
from ...schedule import sweep, swept_configs

REASONS = {
    "already_has_image": "got an image meanwhile",
    "in_progress": "already being generated",
    "not_wanted": "not wanted by the adapter",
    "invalid": "invalid input (see the log)",
    "error": "errors (see the log)",
}


class Command(BaseCommand):
    help = (
        "Queue header images for registered objects whose publish date has come (scheduled "
        "posts). The django-q2 schedule runs the same sweep every NANOBANANA['SWEEP_INTERVAL'] "
        "seconds; run this from cron with another task runner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List the due objects; queue nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not swept_configs():
            self.stdout.write(
                "No registered model has a publish rule on a date field; nothing to sweep."
            )
            return
        result = sweep(dry_run=options["dry_run"])
        for obj in result.due:
            config = find_config(obj._meta.label)
            title = config.title_of(obj) if config else str(obj)
            self.stdout.write(f"{obj._meta.label} {obj.pk}: {title}")
        count = len(result.due)
        plural = "s" if count != 1 else ""
        notes = ", ".join(f"{n} {REASONS.get(code, code)}" for code, n in result.skipped.items())
        verb = "would be queued (dry run)" if options["dry_run"] else "queued"
        self.stdout.write(
            f"{count} due object{plural} {verb}" + (f"; skipped {notes}" if notes else "") + "."
        )
