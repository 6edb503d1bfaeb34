from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...poller import run_poller


class Command(BaseCommand):
    help = (
        "Follow every in-flight prediction and finish it when it is done. Runs until "
        "stopped (Ctrl-C), or with --until-idle until nothing is in flight. Only one poller "
        "works at a time; without this command, one is started as a task when needed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--until-idle", action="store_true", help="Stop when nothing is in flight."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            finished = run_poller(forever=not options["until_idle"])
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
            return
        self.stdout.write(f"Finished {finished} generation(s).")
