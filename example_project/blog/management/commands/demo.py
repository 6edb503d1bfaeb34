"""One command for the whole demo: migrate, seed, run a django-q2 cluster, serve."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import BaseCommand
from PIL import Image, ImageDraw, ImageFont

from blog.models import Article
from nanobanana_django.models import GeneratedImage, ReferenceImage, ReferenceSet
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
        seed_brand_kit()
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


#: The demo's brand: a palette, a wordmark and a pattern, drawn here (no network).
BRAND_COLOURS = ["#12355b", "#2a7f8e", "#e8765c", "#f2c57c", "#f7f1e5"]


def seed_brand_kit():
    """The reference set ``brand`` that the built-in ``brand`` preset and the demo's
    ``house_style`` preset send with their prompts (docs/references.md)."""
    kit, created = ReferenceSet.objects.get_or_create(
        name="brand",
        defaults={
            "label": "Harbour Press brand kit",
            "description": "Palette, wordmark and pattern of the demo's magazine.",
        },
    )
    if not created and kit.images.exists():
        return
    for position, (caption, image) in enumerate(
        [("Palette", _palette()), ("Wordmark", _wordmark()), ("Pattern", _pattern())]
    ):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        reference = ReferenceImage(
            reference_set=kit, caption=caption, position=position, size_bytes=buffer.tell()
        )
        reference.image.save(f"{caption.lower()}.png", ContentFile(buffer.getvalue()), save=False)
        reference.save()


def _palette():
    image = Image.new("RGB", (1000, 600), BRAND_COLOURS[-1])
    draw = ImageDraw.Draw(image)
    width = 1000 // len(BRAND_COLOURS)
    for index, colour in enumerate(BRAND_COLOURS):
        draw.rectangle([index * width, 0, (index + 1) * width, 600], fill=colour)
    return image


def _wordmark():
    image = Image.new("RGB", (1000, 600), BRAND_COLOURS[-1])
    draw = ImageDraw.Draw(image)
    draw.ellipse([80, 200, 280, 400], fill=BRAND_COLOURS[2])
    draw.rectangle([80, 298, 280, 302], fill=BRAND_COLOURS[-1])
    font = ImageFont.load_default(size=96)
    draw.text((320, 240), "Harbour", font=font, fill=BRAND_COLOURS[0])
    draw.text((320, 340), "PRESS", font=ImageFont.load_default(size=48), fill=BRAND_COLOURS[1])
    return image


def _pattern():
    image = Image.new("RGB", (1000, 600), BRAND_COLOURS[0])
    draw = ImageDraw.Draw(image)
    for row, y in enumerate(range(-50, 650, 100)):
        for x in range(-50 + (row % 2) * 50, 1050, 100):
            colour = BRAND_COLOURS[1 + (x // 100 + row) % 3]
            draw.arc([x, y, x + 100, y + 100], 180, 360, fill=colour, width=14)
    return image
