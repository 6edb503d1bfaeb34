"""What the scheduled-posts sweep costs: idle, when articles come due, and right after.

Measures, in one run, on the example project (SQLite file database, django-q2's ORM
broker with no cluster running, so queueing is a real INSERT into the task queue and
no generation runs):

- an idle sweep over a site at steady state, at 200 and at ``--articles`` published
  articles: its median time and queries, against one plain ``count()`` of the articles
  published without an image (the least a sweep could ask the database);
- a sweep that finds ``--due`` articles just come due and queues them, per queued
  article, against ``services.queue_generation`` called for the same number of articles
  already in hand, each in its own transaction as the sweep does (the ratio is what
  finding them adds);
- the sweep right after it, when everything due is queued.

The example's ``blog.Article`` is published by a status rule, which the sweep leaves to
the publish hook; the benchmark registers it with a date rule on its ``created_at``
instead (``{"field": "created_at"}``, through ``override_settings``). Rounds alternate
the order of the two queueing variants so that drift on the machine hits both alike.

    python bench/sweep.py [--articles 2000] [--due 100] [--repeat 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

if __package__ in (None, ""):  # run as a script: make the "bench" package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import machine, run_main, setup_django, verdict, workspace  # noqa: E402

SMALL = 200
"""The smaller site: an idle sweep must make as many queries here as on the large one."""

SCHEDULED = 5
"""Articles scheduled for the coming days (not due) on the steady-state site."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000, help="published articles")
    parser.add_argument("--due", type=int, default=100, help="articles coming due at once")
    parser.add_argument("--repeat", type=int, default=30, help="idle sweeps timed per size")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --due articles")
    args = parser.parse_args()
    with workspace("nanobanana-sweep-") as workdir:
        setup_django(workdir)
        from django.conf import settings
        from django.test.utils import override_settings

        article = settings.NANOBANANA["MODELS"]["blog.Article"]
        nanobanana = {
            **settings.NANOBANANA,
            "TASK_RUNNER": "django_q",
            "MODELS": {"blog.Article": {**article, "publish": {"field": "created_at"}}},
        }
        with override_settings(NANOBANANA=nanobanana):
            run(args)


def counted(function: Callable[[], Any]) -> tuple[Any, float, int]:
    """``function()``'s result, seconds and queries on the default connection."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        value = function()
        elapsed = time.perf_counter() - started
    return value, elapsed, len(queries)


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def build_site(count: int) -> None:
    """A blog at steady state: ``count`` published articles, about three a day going back
    from two hours ago, each with its image and the generation that made it, except the
    oldest tenth (published before the app was installed: a backfill's business, older
    than ``SWEEP_WINDOW``); and ``SCHEDULED`` articles set for the coming days.

    Created in bulk: no publish hook runs, nothing is queued.
    """
    from blog.models import Article
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone
    from django_q.models import OrmQ

    from nanobanana_django.models import GeneratedImage

    GeneratedImage.objects.all().delete()
    OrmQ.objects.all().delete()
    Article.objects.all().delete()
    now = timezone.now()
    without = count // 10
    articles = [
        Article(
            title=f"Post {i}",
            topic="benchmarks",
            status="published",
            header_image="" if i >= count - without else f"headers/post-{i}.jpg",
        )
        for i in range(count)
    ]
    articles += [
        Article(title=f"Scheduled {i}", topic="benchmarks", status="published")
        for i in range(SCHEDULED)
    ]
    articles = Article.objects.bulk_create(articles, batch_size=500)
    for i, obj in enumerate(articles):  # auto_now_add set them all to now
        if i < count:
            obj.created_at = now - timedelta(hours=2 + 8 * i)
        else:
            obj.created_at = now + timedelta(days=1 + i - count)
    Article.objects.bulk_update(articles, ["created_at"], batch_size=500)
    content_type = ContentType.objects.get_for_model(Article)
    GeneratedImage.objects.bulk_create(
        (
            GeneratedImage(
                content_type=content_type,
                object_id=str(obj.pk),
                target_field="header_image",
                status=GeneratedImage.Status.SUCCEEDED,
                provider="placeholder",
                model_name="placeholder",
                prompt=f"A header image for {obj.title}",
                image=obj.header_image.name,
                created_at=obj.created_at,
                finished_at=obj.created_at,
            )
            for obj in articles
            if obj.header_image
        ),
        batch_size=500,
    )


def due_articles(count: int) -> list[int]:
    """``count`` articles whose publish date passed in the last minutes, without images."""
    from blog.models import Article
    from django.utils import timezone

    now = timezone.now()
    articles = Article.objects.bulk_create(
        Article(title=f"Due {i}", topic="benchmarks", status="published") for i in range(count)
    )
    for i, obj in enumerate(articles):
        obj.created_at = now - timedelta(seconds=30 + i)
    Article.objects.bulk_update(articles, ["created_at"])
    return [obj.pk for obj in articles]


def forget_queued(ids: list[int]) -> None:
    """Remove the generations queued for ``ids`` and the broker's tasks."""
    from django_q.models import OrmQ

    from nanobanana_django.models import GeneratedImage

    GeneratedImage.objects.filter(object_id__in=[str(pk) for pk in ids]).delete()
    OrmQ.objects.all().delete()


def run(args: argparse.Namespace) -> None:
    from blog.models import Article
    from django.db import transaction
    from django.utils import timezone
    from django_q.models import OrmQ

    from nanobanana_django.schedule import sweep
    from nanobanana_django.services import queue_generation

    print(machine())
    print(
        "Example project, SQLite file database, blog.Article registered with a date rule "
        "{'field': 'created_at'} (settings override); TASK_RUNNER django_q, ORM broker, "
        "no cluster (queueing inserts a task, nothing runs)"
    )
    problems: list[str] = []

    def plain_count() -> int:
        return Article.objects.filter(created_at__lte=timezone.now(), header_image="").count()

    # 1. Idle sweeps at two sizes.
    idle: dict[int, dict[str, Any]] = {}
    for size in sorted({SMALL, args.articles}):
        build_site(size)
        sweep()  # warm-up: the content type cache, the registry
        result, _, sweep_queries = counted(sweep)
        _, _, count_queries = counted(plain_count)
        if result.queued or result.due:
            problems.append(f"an idle sweep at {size} articles queued {len(result.queued)}")
        sweep_times, count_times = [], []
        for _ in range(args.repeat):
            sweep_times.append(timed(sweep))
            count_times.append(timed(plain_count))
        idle[size] = {
            "sweep": statistics.median(sweep_times),
            "count": statistics.median(count_times),
            "sweep_queries": sweep_queries,
            "count_queries": count_queries,
        }

    print(
        f"Steady-state site: published articles, 90 % with their image, the oldest 10 % "
        f"without (older than SWEEP_WINDOW), {SCHEDULED} scheduled for the coming days; "
        f"{args.repeat} idle sweeps timed per size"
    )
    print()
    print(f"{'idle sweep (nothing due)':<36}{'sweep':>10}{'queries':>9}{'count()':>10}{'ratio':>8}")
    for size, figures in idle.items():
        print(
            f"{f'{size} articles':<36}{figures['sweep'] * 1e3:>8.2f}ms"
            f"{figures['sweep_queries']:>9}{figures['count'] * 1e3:>8.2f}ms"
            f"{figures['sweep'] / figures['count']:>8.2f}"
        )

    # 2 and 3. Articles coming due, on the large site.
    def queue_directly(ids: list[int]) -> Callable[[], None]:
        objects = list(Article.objects.filter(pk__in=ids))

        def queue() -> None:
            for obj in objects:
                with transaction.atomic():
                    queue_generation(obj)

        return queue

    due = {"sweep": [], "direct": [], "after": []}
    queries = {"sweep": [], "direct": [], "after": []}
    for round_number in range(args.rounds):
        ids = due_articles(args.due)
        order = ("direct", "sweep") if round_number % 2 == 0 else ("sweep", "direct")
        for variant in order:
            forget_queued(ids)
            if variant == "direct":
                _, seconds, count = counted(queue_directly(ids))
            else:
                result, seconds, count = counted(sweep)
                if len(result.queued) != args.due:
                    problems.append(f"a sweep queued {len(result.queued)} of {args.due} due")
                after = []
                for _ in range(args.repeat):
                    again, after_seconds, after_queries = counted(sweep)
                    after.append(after_seconds)
                    if again.queued:
                        problems.append(f"the sweep after queued {len(again.queued)}")
                due["after"].append(statistics.median(after))
                queries["after"].append(after_queries)
            tasks = OrmQ.objects.count()
            if tasks != args.due:
                problems.append(f"{variant}: {tasks} tasks in the broker, expected {args.due}")
            due[variant].append(seconds / args.due)
            queries[variant].append(count / args.due)
        forget_queued(ids)
        Article.objects.filter(pk__in=ids).delete()

    median = {key: statistics.median(values) for key, values in due.items()}
    per_article = {key: max(values) for key, values in queries.items()}
    print()
    print(
        f"{args.due} articles come due at once on the {args.articles}-article site; median of "
        f"rounds: {args.rounds}; queries are statements, BEGIN, SAVEPOINT and COMMIT included"
    )
    print(f"{'per queued article':<36}{'time':>10}{'queries':>9}")
    print(
        f"{'queue_generation() directly':<36}{median['direct'] * 1e3:>8.2f}ms"
        f"{per_article['direct']:>9.2f}"
    )
    print(
        f"{'sweep() finding and queueing them':<36}{median['sweep'] * 1e3:>8.2f}ms"
        f"{per_article['sweep']:>9.2f}"
    )
    overhead = median["sweep"] - median["direct"]
    print(
        f"Sweep against queueing directly: {median['sweep'] / median['direct']:.2f}x, "
        f"{overhead * 1e3:+.2f} ms and "
        f"{per_article['sweep'] - per_article['direct']:+.2f} queries a queued article"
    )
    print(
        f"The sweep right after (all {args.due} queued, nothing due): "
        f"{median['after'] * 1e3:.2f} ms, {per_article['after']:.0f} queries "
        f"({args.repeat} sweeps a round)"
    )

    small, large = idle[SMALL]["sweep_queries"], idle[args.articles]["sweep_queries"]
    print()
    print(
        f"TARGET idle sweep queries at {SMALL} and {args.articles} articles: {small} and "
        f"{large}, the same: {verdict(small == large)}"
    )
    if problems:
        for problem in problems:
            print(f"FAILED: {problem}")
        raise SystemExit(1)


if __name__ == "__main__":
    run_main(main)
