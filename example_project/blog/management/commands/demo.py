"""One command for the whole demo: migrate, seed, generate, serve."""

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from blog.models import Article
from nanobanana_django.conf import app_settings

ARTICLES = [
    ("Ten quiet cafés in Lisbon worth the detour", "travel", "published"),
    ("How we cut our cloud bill by 40% without a rewrite", "engineering", "published"),
    ("A beginner's guide to sourdough in a small kitchen", "food", "published"),
    ("What the new cycling lanes mean for the city centre", "urban planning", "published"),
    ("Notes from the spring product launch", "company news", "draft"),
]


class Command(BaseCommand):
    help = "Set up and run the demo site (placeholder images when no Replicate token is set)."

    def add_arguments(self, parser):
        parser.add_argument("--no-server", action="store_true", help="Stop before runserver.")
        parser.add_argument("--addrport", default="127.0.0.1:8000")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.seed()
        provider = app_settings.PROVIDER
        if provider == "placeholder":
            self.stdout.write(
                self.style.WARNING(
                    "No REPLICATE_API_TOKEN: images are offline placeholders, not generations."
                )
            )
        else:
            self.stdout.write(f"Generating with {provider} ({app_settings.MODEL}).")
        published = Article.objects.filter(status=Article.Status.PUBLISHED)
        missing = [str(pk) for pk in published.filter(header_image="").values_list("pk", flat=True)]
        if missing:
            call_command("nanobanana_generate", "blog.Article", "--sync", "--ids", *missing)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: http://{options['addrport']}/admin/ (user admin, password admin)"
            )
        )
        if not options["no_server"]:
            call_command("runserver", options["addrport"], use_reloader=False)

    def seed(self):
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", "admin")
        for title, topic, status in ARTICLES:
            Article.objects.get_or_create(
                title=title,
                defaults={"topic": topic, "status": status, "body": f"An article about {topic}."},
            )
