"""``manage.py nanobanana_generate``."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from nanobanana_django.models import GeneratedImage
from tests.backends import sqlite_only
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db


def generate(*args):
    call_command("nanobanana_generate", "testapp.Article", *args)


def test_every_article_without_an_image_gets_one_and_the_rest_are_skipped(capsys):
    bare = Article.objects.create(title="Bare")
    kept = Article.objects.create(title="Kept", header_image="headers/kept.jpg")
    generate("--sync")
    assert Article.objects.get(pk=bare.pk).header_image.name.startswith("nanobanana/")
    assert Article.objects.get(pk=kept.pk).header_image.name == "headers/kept.jpg"
    out = capsys.readouterr().out
    assert f"testapp.Article {kept.pk}: skipped: " in out and "already has an image" in out
    assert "Done: 1 succeeded, 0 failed, 1 skipped." in out


def test_missing_only_does_not_even_look_at_articles_with_images(capsys):
    Article.objects.create(title="Kept", header_image="headers/kept.jpg")
    Article.objects.create(title="Bare")
    generate("--missing-only", "--sync")
    assert "Done: 1 succeeded, 0 failed, 0 skipped." in capsys.readouterr().out


def test_overwrite_replaces(capsys):
    kept = Article.objects.create(title="Kept", header_image="headers/kept.jpg")
    generate("--ids", str(kept.pk), "--overwrite", "--sync")
    assert Article.objects.get().header_image.name.startswith("nanobanana/")


def test_ids_limit_the_run():
    one, two = Article.objects.create(title="One"), Article.objects.create(title="Two")
    generate("--ids", str(two.pk), "--sync")
    assert not Article.objects.get(pk=one.pk).header_image
    assert GeneratedImage.objects.get().object_id == str(two.pk)


def test_unknown_ids_are_named():
    with pytest.raises(CommandError, match="No testapp.Article with id 404"):
        generate("--ids", "404", "--sync")


def test_an_unregistered_model_says_how_to_register_it():
    with pytest.raises(CommandError, match="NANOBANANA\\['MODELS'\\]"):
        call_command("nanobanana_generate", "auth.User", "--sync")


def test_contradicting_options_are_refused():
    with pytest.raises(CommandError, match="contradict"):
        generate("--missing-only", "--overwrite", "--sync")


# Queued to the workers (django-q2 runs tasks at once in the test settings) ----------------


@pytest.fixture
def queued(transactional_db):
    """Real commits, as when the command runs: each row's task is handed over on commit."""

    def run(*args):
        generate(*args)

    return run


def test_a_backfill_queues_every_missing_image_and_shows_progress(queued, capsys):
    for i in range(3):
        Article.objects.create(title=f"Old post {i}")
    Article.objects.create(title="Has one", header_image="headers/kept.jpg")
    queued("--missing-only")
    out = capsys.readouterr().out
    assert "Queued 3 generations." in out
    assert "3 done, 0 failed, 0 in flight" in out
    assert "/s | ETA" in out
    assert GeneratedImage.objects.filter(status="succeeded").count() == 3


def test_a_dry_run_says_how_many_predictions_and_changes_nothing(capsys):
    for i in range(3):
        Article.objects.create(title=f"Old post {i}")
    Article.objects.create(title="Has one", header_image="headers/kept.jpg")
    generate("--dry-run")
    out = capsys.readouterr().out
    assert "Old post 0" in out
    assert "3 images would be generated, that is 3 predictions; 1 skipped" in out
    assert not GeneratedImage.objects.exists()


def test_limit_caps_the_run(queued, capsys):
    for i in range(5):
        Article.objects.create(title=f"Old post {i}")
    queued("--missing-only", "--limit", "2")
    assert GeneratedImage.objects.count() == 2
    assert "Queued 2 generations." in capsys.readouterr().out


def test_no_wait_returns_after_queueing(queued, capsys):
    Article.objects.create(title="Quick")
    queued("--no-wait")
    out = capsys.readouterr().out
    assert "Queued 1 generation." in out and "in flight" not in out


def test_ctrl_c_stops_after_the_current_object_and_leaves_nothing_half_done(
    queued, capsys, monkeypatch
):
    import os
    import signal

    from nanobanana_django.management.commands import nanobanana_generate

    for i in range(5):
        Article.objects.create(title=f"Old post {i}")
    real_queue = nanobanana_generate.queue_generation
    calls = []

    def queue_then_interrupt(obj, **kwargs):
        calls.append(obj.pk)
        row = real_queue(obj, **kwargs)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C mid-run
        return row

    monkeypatch.setattr(nanobanana_generate, "queue_generation", queue_then_interrupt)
    queued()
    assert len(calls) == 2
    rows = GeneratedImage.objects.all()
    assert rows.count() == 2
    assert all(row.status == "succeeded" for row in rows)  # each queued row has its task
    assert "stopped early by Ctrl-C; nothing is half-done" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_limit_must_be_positive():
    with pytest.raises(CommandError, match="--limit"):
        generate("--limit", "0")


@sqlite_only
def test_a_locked_sqlite_database_ends_with_the_setting_to_change(monkeypatch, settings):
    """Before: a traceback. SQLite says "database is locked" when workers write at once."""
    from django.db import OperationalError, connections

    from nanobanana_django.management.commands import nanobanana_generate

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    Article.objects.create(title="Backfill me")
    monkeypatch.setattr(nanobanana_generate, "queue_generation", locked)
    options = connections["default"].settings_dict["OPTIONS"]
    monkeypatch.setitem(connections["default"].settings_dict, "OPTIONS", {})
    with pytest.raises(CommandError) as excinfo:
        generate("--no-wait")
    message = str(excinfo.value)
    assert "database is locked" in message and "DATABASES['default']" in message
    assert "--missing-only" in message
    assert options  # restored by monkeypatch
