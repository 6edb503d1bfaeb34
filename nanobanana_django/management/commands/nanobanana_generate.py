"""Generate header images for many objects: queued to the workers, or in the foreground."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, OperationalError, models, router, transaction
from django.db.models import Count, Q

from ...adapter import HeaderImageAdapter, get_adapter
from ...checks import sqlite_locking_fix
from ...models import GeneratedImage
from ...registry import ContentConfig, get_config
from ...services import (
    AlreadyHasImage,
    GenerationInProgress,
    create_generation,
    queue_generation,
    run_generation,
)

Status = GeneratedImage.Status


class Command(BaseCommand):
    help = (
        "Generate header images for objects of a model registered in NANOBANANA['MODELS']: "
        "queued to the task workers with a progress bar, or one by one with --sync."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="The content model, as app_label.ModelName.")
        parser.add_argument(
            "--ids", nargs="+", metavar="ID", help="Only these primary keys (default: all)."
        )
        parser.add_argument(
            "--missing-only",
            action="store_true",
            help="Only objects without an image that are published by the model's publish rule.",
        )
        parser.add_argument(
            "--include-unpublished",
            action="store_true",
            help="With --missing-only: drafts and scheduled objects too (they are billed).",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Replace images objects already have (otherwise they are skipped).",
        )
        parser.add_argument("--limit", type=int, metavar="N", help="At most N objects.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List what would be generated and how many predictions that is; change nothing.",
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Generate in this process, one after another, without a task worker.",
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="Queue and return, instead of showing progress until all are done.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = get_config(options["model"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if options["missing_only"] and options["overwrite"]:
            raise CommandError("--missing-only and --overwrite contradict each other.")
        if options["include_unpublished"] and not options["missing_only"]:
            raise CommandError("--include-unpublished only goes with --missing-only.")
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")

        queryset = self.select(config, options)
        try:
            if options["dry_run"]:
                self.dry_run(config, queryset, options)
            elif options["sync"]:
                self.generate_here(config, queryset, options)
            else:
                self.queue(config, queryset, options)
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            alias = router.db_for_write(GeneratedImage)
            fix = sqlite_locking_fix(alias) or "Stop other processes writing to it, or wait."
            raise CommandError(
                f"The database {alias!r} answered 'database is locked': another process (the "
                f"task workers, the web server) was writing at the same time. {fix} What was "
                "queued stays queued; run the command again with --missing-only to go on."
            ) from None

    # Choosing objects --------------------------------------------------------------------

    def select(self, config: ContentConfig, options: dict[str, Any]) -> models.QuerySet:
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
            if not options["include_unpublished"]:
                queryset = self.published_only(config, queryset)
        if options["limit"]:
            queryset = queryset[: options["limit"]]
        return queryset

    def published_only(self, config: ContentConfig, queryset: models.QuerySet) -> models.QuerySet:
        """Only what the publish rule calls published (a model without one: everything)."""
        if config.publish is None:
            return queryset
        adapter = get_adapter()
        custom = type(adapter).is_published is not HeaderImageAdapter.is_published
        if config.publish.query is not None and not custom:
            published = queryset.filter(config.publish.query())
        else:  # a callable rule or the adapter's own: judged one object at a time
            pks = [obj.pk for obj in in_chunks(queryset) if adapter.is_published(obj, config)]
            published = queryset.filter(pk__in=pks)
        drafts = queryset.count() - published.count()
        if drafts:
            self.stdout.write(
                f"Skipping {drafts} unpublished object{'s' if drafts != 1 else ''} "
                f"({config.publish.description} is false); --include-unpublished includes them."
            )
        return published

    def dry_run(self, config: ContentConfig, queryset: models.QuerySet, options: dict) -> None:
        would, skipped = 0, 0
        for obj in in_chunks(queryset):
            if not options["overwrite"] and config.has_image(obj, fresh=False):
                skipped += 1
                continue
            would += 1
            if options["verbosity"] >= 2 or would <= 20:
                self.stdout.write(f"{config.label} {obj.pk}: {config.title_of(obj)}")
        if would > 20 and options["verbosity"] < 2:
            self.stdout.write(f"... and {would - 20} more (-v 2 lists them all)")
        plural = "s" if would != 1 else ""
        self.stdout.write(
            f"Dry run: {would} image{plural} would be generated, that is {would} "
            f"prediction{plural}; {skipped} skipped (already have an image). Nothing was changed."
        )

    # Queued to the workers --------------------------------------------------------------------

    def queue(self, config: ContentConfig, queryset: models.QuerySet, options: dict) -> None:
        queued: list[int] = []
        skipped: dict[str, int] = {}
        with stop_on_interrupt() as stop:
            for obj in in_chunks(queryset):
                if stop.requested:
                    break
                try:
                    with transaction.atomic():  # the row and its task, or neither
                        row = queue_generation(obj, overwrite=options["overwrite"])
                except (AlreadyHasImage, GenerationInProgress) as exc:
                    skipped[exc.code] = skipped.get(exc.code, 0) + 1
                    continue
                except ValidationError as exc:
                    raise CommandError(f"Invalid input: {'; '.join(exc.messages)}") from None
                queued.append(row.pk)
        reasons = {
            "already_has_image": "already have an image",
            "in_progress": "already being generated",
        }
        notes = ", ".join(f"{n} {reasons.get(code, code)}" for code, n in skipped.items())
        self.stdout.write(
            f"Queued {len(queued)} generation{'s' if len(queued) != 1 else ''}"
            + (f"; skipped {notes}" if notes else "")
            + (" (stopped early by Ctrl-C; nothing is half-done)" if stop.requested else "")
            + "."
        )
        if not queued or options["no_wait"] or stop.requested:
            return
        self.follow(queued)

    def follow(self, ids: list[int]) -> None:
        """Show done / failed / in flight, rate and ETA until every row has finished."""
        progress = Progress(self.stdout, total=len(ids))
        try:
            while True:
                counts = _count_by_status(ids)
                progress.show(counts)
                if counts["in_flight"] == 0:
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            progress.end()
            self.stdout.write(
                "Stopped watching. The queued generations go on in the background; "
                "run the command again with --missing-only to pick up anything left."
            )
            return
        progress.end()
        if counts["failed"]:
            raise CommandError(
                f"{counts['failed']} generation(s) failed; see the generated images in the "
                "admin for their messages."
            )

    # In the foreground ----------------------------------------------------------------------

    def generate_here(
        self, config: ContentConfig, queryset: models.QuerySet, options: dict
    ) -> None:
        counts = {"succeeded": 0, "failed": 0, "skipped": 0}
        with stop_on_interrupt() as stop:
            for obj in in_chunks(queryset):
                if stop.requested:
                    break
                try:
                    row = create_generation(obj, overwrite=options["overwrite"])
                except (AlreadyHasImage, GenerationInProgress) as exc:
                    counts["skipped"] += 1
                    self.stdout.write(f"{config.label} {obj.pk}: skipped: {exc}")
                    continue
                except ValidationError as exc:
                    raise CommandError(f"Invalid input: {'; '.join(exc.messages)}") from None
                try:
                    row = run_generation(row.pk)
                except DatabaseError as exc:
                    raise CommandError(
                        f"Database error while generating for {config.label} {obj.pk}: {exc}. "
                        "The generation is kept and resumes when run again."
                    ) from None
                self.report(config, obj, row, counts)
        summary = ", ".join(f"{n} {label}" for label, n in counts.items())
        self.stdout.write(f"Done: {summary}." + (" (stopped by Ctrl-C)" if stop.requested else ""))
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} generation(s) failed; see above.")

    def report(self, config: ContentConfig, obj: Any, row: GeneratedImage, counts: dict) -> None:
        if row.status == Status.SUCCEEDED:
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


def in_chunks(queryset: models.QuerySet, size: int = 500) -> Iterator[models.Model]:
    """The objects, loaded a chunk at a time without holding a cursor open meanwhile
    (a worker running in this process may close the connection between objects)."""
    pks = list(queryset.values_list("pk", flat=True))
    manager = queryset.model._default_manager
    for start in range(0, len(pks), size):
        chunk = pks[start : start + size]
        objects = manager.in_bulk(chunk)
        yield from (objects[pk] for pk in chunk if pk in objects)


class _Stop:
    requested = False


@contextmanager
def stop_on_interrupt() -> Iterator[_Stop]:
    """The first Ctrl-C asks the loop to stop after the current object; a second one
    interrupts at once (what is interrupted then is resumable, never lost)."""
    stop = _Stop()
    previous = signal.getsignal(signal.SIGINT)

    def request_stop(signum: int, frame: Any) -> None:
        stop.requested = True
        sys.stderr.write("\nStopping after the current object (Ctrl-C again to abort).\n")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        signal.signal(signal.SIGINT, request_stop)
    except ValueError:  # not the main thread: no signal handling to adjust
        yield stop
        return
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _count_by_status(ids: list[int]) -> dict[str, int]:
    counts = {"done": 0, "failed": 0, "in_flight": 0}
    for start in range(0, len(ids), 500):
        row = GeneratedImage.objects.filter(pk__in=ids[start : start + 500]).aggregate(
            done=Count("pk", filter=Q(status=Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status__in=[Status.FAILED, Status.CANCELED])),
            in_flight=Count("pk", filter=Q(status__in=Status.unfinished())),
        )
        for key in counts:
            counts[key] += row[key]
    return counts


class Progress:
    """One line, redrawn in place on a terminal; a line every 5 s elsewhere (logs, CI)."""

    WIDTH = 30

    def __init__(self, out: Any, total: int) -> None:
        self.out = out
        self.total = total
        self.started = time.monotonic()
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.last_line_at = 0.0
        self.line = ""

    def show(self, counts: dict[str, int]) -> None:
        elapsed = time.monotonic() - self.started
        finished = counts["done"] + counts["failed"]
        rate = finished / elapsed if elapsed > 0 else 0.0
        remaining = self.total - finished
        eta = f"{remaining / rate:.0f} s" if rate > 0 and remaining else "-"
        filled = int(self.WIDTH * finished / self.total) if self.total else self.WIDTH
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.line = (
            f"[{bar}] {counts['done']} done, {counts['failed']} failed, "
            f"{counts['in_flight']} in flight | {rate:.1f}/s | ETA {eta} | {elapsed:.0f} s"
        )
        now = time.monotonic()
        if self.tty:
            self.out.write("\r" + self.line, ending="")
            self.out.flush()
        elif now - self.last_line_at >= 5 or not counts["in_flight"]:
            self.out.write(self.line)
            self.last_line_at = now

    def end(self) -> None:
        if self.tty:
            self.out.write("")
