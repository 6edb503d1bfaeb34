"""Scheduled posts: the sweep, its django-q2 schedule and command, and backfills of drafts."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from nanobanana_django import schedule
from nanobanana_django.models import GeneratedImage
from nanobanana_django.runners import SWEEP_SCHEDULE, install_sweep_schedule
from nanobanana_django.schedule import sweep, swept_configs
from nanobanana_django.tasks import sweep_task
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

Status = GeneratedImage.Status
ARTICLE = {"title_field": "title", "topic_field": "topic", "image_field": "header_image"}


def register(settings, **options):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {**ARTICLE, **options}},
    }


@pytest.fixture
def scheduled(settings):
    register(settings, publish={"field": "published_at"})


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run the block, then its on-commit callbacks, as a committed request would."""

    def run(block):
        with django_capture_on_commit_callbacks(execute=True):
            return block()

    return run


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def became_due(title, published_at, **fields):
    """An article saved while scheduled, whose publish date has since passed (time moved,
    no save: as the sweep finds it)."""
    later = timezone.now() + timedelta(days=1)
    article = Article.objects.create(title=title, published_at=later, **fields)
    Article.objects.filter(pk=article.pk).update(published_at=published_at)
    article.published_at = published_at
    return article


def failed_row(article, finished_at):
    return GeneratedImage.objects.create(
        content_object=article,
        target_field="header_image",
        provider="placeholder",
        prompt="p",
        status=Status.FAILED,
        finished_at=finished_at,
    )


# The sweep ----------------------------------------------------------------------------------


def test_an_article_scheduled_two_seconds_ahead_gets_its_image_after_the_sweep(
    settings, replicate_emulator, commit
):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "POLL_INTERVAL": 0.05,
        "REPLICATE_WAIT": 0,
        "MODELS": {"testapp.Article": {**ARTICLE, "publish": {"field": "published_at"}}},
    }
    due = timezone.now() + timedelta(seconds=2)
    article = commit(lambda: Article.objects.create(title="Night trains", published_at=due))
    assert not GeneratedImage.objects.exists()  # saved while scheduled: nothing to do yet
    assert commit(sweep).queued == []

    time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 0.1)
    result = commit(sweep)

    [row] = result.queued
    row.refresh_from_db()
    article.refresh_from_db()
    assert row.status == Status.SUCCEEDED
    assert article.header_image.name == row.image.name
    assert replicate_emulator.created_count == 1

    assert commit(sweep).queued == []  # a second sweep makes none
    assert replicate_emulator.created_count == 1
    assert GeneratedImage.objects.count() == 1


def test_two_sweeps_at_once_queue_one_generation(scheduled, monkeypatch):
    article = became_due("Due", ago(seconds=5))
    # Both sweeps read the due objects before either queues anything.
    seen = schedule.due_objects(swept_configs()[0])
    monkeypatch.setattr(schedule, "due_objects", lambda config: list(seen))

    first, second = sweep(), sweep()

    assert len(first.queued) == 1 and second.queued == []
    assert second.skipped == {"in_progress": 1}
    assert GeneratedImage.objects.for_object(article).count() == 1


def test_what_the_sweep_leaves_alone(scheduled):
    Article.objects.create(title="Draft")  # no publish date
    Article.objects.create(title="Tomorrow", published_at=timezone.now() + timedelta(days=1))
    became_due("Last year", ago(days=365))  # a backfill's job
    became_due("Has one", ago(minutes=5), header_image="h/x.jpg")
    due = became_due("Due", ago(minutes=5))

    assert [obj.pk for obj in sweep(dry_run=True).due] == [due.pk]
    assert not GeneratedImage.objects.exists()  # a dry run queues nothing


def test_the_window_is_a_setting(scheduled, settings):
    became_due("Two days ago", ago(days=2))
    assert sweep(dry_run=True).due == []
    settings.NANOBANANA = {**settings.NANOBANANA, "SWEEP_WINDOW": 3 * 86400}
    assert len(sweep(dry_run=True).due) == 1


def test_an_image_made_once_is_not_made_again_when_an_editor_removed_it(scheduled):
    article = became_due("Due", ago(minutes=5))
    assert len(sweep().queued) == 1
    GeneratedImage.objects.update(status=Status.SUCCEEDED, finished_at=timezone.now())
    assert sweep(dry_run=True).due == []  # awaiting review, rejected, or removed on purpose
    assert GeneratedImage.objects.for_object(article).count() == 1


def test_candidates_waiting_for_an_editors_pick_keep_the_sweep_away(scheduled):
    article = became_due("Due", ago(minutes=5))
    GeneratedImage.objects.create(
        content_object=article,
        target_field="header_image",
        provider="placeholder",
        prompt="p",
        kind=GeneratedImage.Kind.VARIANT,
        auto_attach=False,
        status=Status.SUCCEEDED,
        finished_at=ago(minutes=1),
    )
    assert sweep(dry_run=True).due == []


def test_a_failure_keeps_the_sweep_away_for_an_hour_and_three_for_good(scheduled):
    article = became_due("Due", ago(hours=20))
    failed_row(article, finished_at=ago(minutes=10))
    assert sweep(dry_run=True).due == []
    GeneratedImage.objects.update(finished_at=ago(hours=2))
    assert [obj.pk for obj in sweep(dry_run=True).due] == [article.pk]
    failed_row(article, finished_at=ago(hours=3))
    failed_row(article, finished_at=ago(hours=4))
    assert sweep(dry_run=True).due == []


def test_the_sweep_respects_the_budget_and_bills_nothing(settings, replicate_emulator, commit):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "PRICES": {"replicate": {"google/nano-banana-2": {"1K": "0.04"}}},
        "DAILY_BUDGET": "0.01",
        "MODELS": {"testapp.Article": {**ARTICLE, "publish": {"field": "published_at"}}},
    }
    became_due("Due", ago(minutes=1))
    [row] = commit(sweep).queued
    row.refresh_from_db()
    assert (row.status, row.error_code) == (Status.FAILED, "budget_exceeded")
    assert replicate_emulator.created_count == 0
    assert commit(sweep).queued == []  # not retried every minute


@pytest.mark.parametrize(
    "rule",
    [
        {"field": "status", "values": ["published"]},
        {"field": "is_live"},
        "tests.testapp.rules.is_published",
    ],
)
def test_only_date_rules_are_swept(settings, rule):
    register(settings, publish=rule)
    Article.objects.create(title="Live", status="published", is_live=True, published_at=ago(days=1))
    GeneratedImage.objects.all().delete()  # what the publish hook queued
    assert swept_configs() == []
    assert sweep().queued == []


# The schedule and the command --------------------------------------------------------------


def test_the_sweep_schedule_exists_after_migrate():
    from django_q.models import Schedule

    schedule_row = Schedule.objects.get(name=SWEEP_SCHEDULE)
    assert schedule_row.func == "nanobanana_django.tasks.sweep_task"
    assert schedule_row.minutes == 1


def test_the_schedule_follows_the_interval_and_zero_removes_it(settings):
    from django_q.models import Schedule

    settings.NANOBANANA = {**settings.NANOBANANA, "SWEEP_INTERVAL": 150}
    install_sweep_schedule()
    assert Schedule.objects.get(name=SWEEP_SCHEDULE).minutes == 3
    settings.NANOBANANA = {**settings.NANOBANANA, "SWEEP_INTERVAL": 0}
    install_sweep_schedule()
    assert not Schedule.objects.filter(name=SWEEP_SCHEDULE).exists()


def test_a_bad_interval_is_a_check_error(settings):
    from django.core import checks

    settings.NANOBANANA = {**settings.NANOBANANA, "SWEEP_INTERVAL": "1m"}
    errors = [m for m in checks.run_checks() if m.id == "nanobanana.E001"]
    assert any("SWEEP_INTERVAL" in m.msg for m in errors)


def test_the_task_sweeps(scheduled):
    became_due("Due", ago(minutes=1))
    assert sweep_task() == 1
    assert GeneratedImage.objects.get().status == Status.QUEUED


def test_the_command_runs_one_sweep_for_cron(scheduled, capsys, commit):
    became_due("Due one", ago(minutes=1))
    Article.objects.create(title="Not yet", published_at=timezone.now() + timedelta(hours=1))
    call_command("nanobanana_sweep", "--dry-run")
    out = capsys.readouterr().out
    assert "Due one" in out and "Not yet" not in out
    assert "1 due object would be queued (dry run)." in out
    assert not GeneratedImage.objects.exists()

    commit(lambda: call_command("nanobanana_sweep"))
    assert "1 due object queued." in capsys.readouterr().out
    assert GeneratedImage.objects.get().status == Status.SUCCEEDED  # placeholder, immediate


def test_the_command_says_when_there_is_nothing_to_sweep(capsys):
    call_command("nanobanana_sweep")
    assert "No registered model has a publish rule on a date field" in capsys.readouterr().out


# Backfills follow the publish rule --------------------------------------------------------


@pytest.mark.parametrize(
    "rule", [{"field": "status", "values": ["published"]}, "tests.testapp.rules.is_published"]
)
def test_missing_only_skips_drafts_unless_asked(settings, capsys, rule):
    register(settings, publish=rule)
    live = Article.objects.create(title="Live", status="published")
    draft = Article.objects.create(title="Draft")

    call_command("nanobanana_generate", "testapp.Article", "--missing-only", "--sync")
    out = capsys.readouterr().out
    assert "Skipping 1 unpublished object" in out and "--include-unpublished" in out
    assert [row.object_id for row in GeneratedImage.objects.all()] == [str(live.pk)]

    call_command(
        "nanobanana_generate",
        "testapp.Article",
        "--missing-only",
        "--include-unpublished",
        "--sync",
    )
    assert GeneratedImage.objects.for_object(draft).get().status == Status.SUCCEEDED


def test_a_model_without_a_publish_rule_backfills_everything(capsys):
    Article.objects.create(title="Any")
    call_command("nanobanana_generate", "testapp.Article", "--missing-only", "--sync")
    assert "Done: 1 succeeded" in capsys.readouterr().out


def test_include_unpublished_needs_missing_only():
    with pytest.raises(CommandError, match="--include-unpublished only goes with --missing-only"):
        call_command("nanobanana_generate", "testapp.Article", "--include-unpublished")
