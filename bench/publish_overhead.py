"""What publishing an article costs the request, with and without nanobanana-django.

Measures, in one run, on the example project (SQLite file database, django-q2 ORM
broker, so queueing is a real INSERT into the task queue):

- a ``save()`` that publishes a draft (our work: detect the transition, record the
  ``GeneratedImage``, enqueue on commit), including its transaction's commit;
- a ``save()`` of an already published article (our work: notice there is nothing to do);
- a whole admin request that publishes an article (the change form POST).

"Without" disconnects the app's publish handlers; everything else is identical. A third
variant keeps the app but stubs the hand-off to django-q2, separating our own work from
the broker's (with the ORM broker: one more INSERT and commit after the request's own).
Rounds alternate between the variants so that drift on the machine hits all alike.

    python bench/publish_overhead.py [--articles 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(workdir: str) -> None:
    sys.path.insert(0, str(ROOT / "example_project"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    os.environ["DEMO_DATABASE"] = os.path.join(workdir, "bench.sqlite3")
    os.environ["DEMO_MEDIA_ROOT"] = os.path.join(workdir, "media")
    os.environ.pop("REPLICATE_API_TOKEN", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.LOGGING_CONFIG = None
    import logging

    # Per-save INFO lines would measure the terminal, not the code.
    logging.getLogger("nanobanana_django").setLevel(logging.WARNING)
    logging.getLogger("django-q").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)


def timed(function, items) -> float:
    """Median seconds of ``function(item)`` over ``items``."""
    samples = []
    for item in items:
        started = time.perf_counter()
        function(item)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=200, help="per round and variant")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        setup(workdir)
        run(args.articles, args.rounds)


def run(count: int, rounds: int) -> None:
    from blog.models import Article
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.test import Client
    from django_q.models import OrmQ

    from nanobanana_django.models import GeneratedImage
    from nanobanana_django.publishing import PublishedObjectRouter

    user = get_user_model().objects.create_superuser("bench", "b@example.com", "x")
    client = Client()
    client.force_login(user)
    hidden = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')

    def drafts(n):
        return [Article.objects.create(title=f"Draft {i}", topic="bench") for i in range(n)]

    def publish(article):
        with transaction.atomic():
            article.status = "published"
            article.save()

    def edit(article):
        with transaction.atomic():
            article.body += "."
            article.save()

    def publish_in_admin(article):
        url = f"/admin/blog/article/{article.pk}/change/"
        form = dict(hidden.findall(client.get(url).content.decode()))
        form.update(title=article.title, topic=article.topic, body="", status="published")
        started = time.perf_counter()
        response = client.post(url, form)
        elapsed = time.perf_counter() - started
        assert response.status_code == 302, response.content[:500]
        return elapsed

    import nanobanana_django.runners as runners

    real_enqueue = runners.enqueue_generation
    variants = ("without", "with", "no broker")
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for variant in variants:
            if variant == "without":
                PublishedObjectRouter.disconnect()
            else:
                PublishedObjectRouter.connect()
            runners.enqueue_generation = (
                real_enqueue if variant == "with" else (lambda image_id: None)
            )
            batch = drafts(count)
            results.setdefault(("publish", variant), []).append(timed(publish, batch))
            results.setdefault(("edit", variant), []).append(timed(edit, batch))
            requests = drafts(count // 4)
            admin_times = [publish_in_admin(article) for article in requests]
            results.setdefault(("admin", variant), []).append(statistics.median(admin_times))
    PublishedObjectRouter.connect()
    runners.enqueue_generation = real_enqueue

    queued = GeneratedImage.objects.count()
    enqueued = OrmQ.objects.count()
    expected = 2 * rounds * (count + count // 4)
    print(
        f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"Django {__import__('django').get_version()}, SQLite file database"
    )
    print(f"Rounds: {rounds}, {count} saves and {count // 4} admin requests per round and variant")
    print(
        f"Generations recorded with the app: {queued} (expected {expected}), tasks queued: "
        f"{enqueued} (expected {expected // 2})"
    )
    print()
    header = f"{'operation':<42}{'without':>10}{'with':>10}{'ratio':>8}{'added':>9}"
    print(f"{header}{'of which ours':>15}")
    labels = {
        "publish": "save() that publishes a draft (+commit)",
        "edit": "save() of an already published article",
        "admin": "admin change-form POST that publishes",
    }
    median = {key: statistics.median(values) for key, values in results.items()}
    for key, label in labels.items():
        without, with_app = median[(key, "without")], median[(key, "with")]
        ours = median[(key, "no broker")] - without
        print(
            f"{label:<42}{without * 1e3:>8.2f}ms{with_app * 1e3:>8.2f}ms"
            f"{with_app / without:>8.2f}{(with_app - without) * 1e3:>7.2f}ms{ours * 1e3:>13.2f}ms"
        )
    admin_without, admin_with = median[("admin", "without")], median[("admin", "with")]
    ours = median[("admin", "no broker")] - admin_without
    print()
    print(
        f"Publishing admin request: {(admin_with - admin_without) / admin_with:.1%} of it is "
        f"added by publishing with the app, {ours / admin_with:.1%} by our own code, the rest "
        "by the django-q2 enqueue."
    )
    if queued != expected or enqueued != expected // 2:
        raise SystemExit("expected one generation per published article, one task each")


if __name__ == "__main__":
    main()
