"""One command for the whole demo: migrate, seed, run a django-q2 cluster, serve."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from blog.models import Article
from nanobanana_django.models import GeneratedImage
from nanobanana_django.providers import get_provider_config

MANAGE = Path(__file__).resolve().parents[3] / "manage.py"

ARTICLES = [
    ("Ten quiet cafés in Lisbon worth the detour", "travel", "published"),
    ("How we cut our cloud bill by 40% without a rewrite", "engineering", "published"),
    ("A beginner's guide to sourdough in a small kitchen", "food", "published"),
    ("What the new cycling lanes mean for the city centre", "urban planning", "published"),
    ("Notes from the spring product launch", "company news", "draft"),
]


class Command(BaseCommand):
    help = "Set up and run the demo site (placeholder images when no API key is set)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-server",
            action="store_true",
            help="Stop once the seeded articles have their images, instead of serving.",
        )
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--wait", type=float, default=300, help="Seconds to wait for images.")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        provider = get_provider_config()
        if provider.alias == "placeholder":
            self.stdout.write(
                self.style.WARNING(
                    "No REPLICATE_API_TOKEN (or NANOBANANA_PROVIDER=gemini with GEMINI_API_KEY): "
                    "images are offline placeholders, not generations."
                )
            )
        else:
            self.stdout.write(f"Generating with {provider.alias} ({provider.model}).")
        self.seed()  # publishing the seeded articles queues their generations

        cluster = subprocess.Popen(
            [sys.executable, str(MANAGE), "qcluster"], start_new_session=True, env=os.environ
        )
        try:
            self.wait_for_images(options["wait"])
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo ready: the blog at http://{options['addrport']}/, the admin at "
                    f"http://{options['addrport']}/admin/ (user admin, password admin). "
                    "Publish an article and its header image appears in a few seconds."
                )
            )
            if not options["no_server"]:
                call_command("runserver", options["addrport"], use_reloader=False)
        finally:
            self.stop(cluster)

    def stop(self, cluster):
        """Let the cluster finish its current tasks; an unfinished one resumes next time."""
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()

    def seed(self):
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", "admin")
        for title, topic, status in ARTICLES:
            Article.objects.get_or_create(
                title=title,
                defaults={"topic": topic, "status": status, "body": f"An article about {topic}."},
            )

    def wait_for_images(self, timeout):
        deadline = time.monotonic() + timeout
        reported = None
        while True:
            pending = GeneratedImage.objects.unfinished().count()
            done = GeneratedImage.objects.filter(status="succeeded").count()
            failed = GeneratedImage.objects.filter(status="failed").count()
            if (pending, done, failed) != reported:
                self.stdout.write(f"Header images: {done} done, {failed} failed, {pending} queued")
                reported = (pending, done, failed)
            if not pending:
                return
            if time.monotonic() > deadline:
                self.stderr.write(f"Still {pending} queued after {timeout:g} s; serving anyway.")
                return
            time.sleep(0.5)
