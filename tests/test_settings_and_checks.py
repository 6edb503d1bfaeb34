"""Settings are read lazily; misconfiguration names the key and the fix."""

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from nanobanana_django.conf import app_settings, parse_duration
from tests.backends import sqlite_only


def check_ids(settings):
    return {message.id for message in run_checks(tags=["nanobanana"])}


def configure(settings, **values):
    settings.NANOBANANA = {**settings.NANOBANANA, **values}


def test_the_token_defaults_to_the_environment_variable(settings, monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_from_env")
    settings.NANOBANANA = {}
    assert app_settings.REPLICATE_API_TOKEN == "r8_from_env"
    assert app_settings.PROVIDER == "replicate"


def test_without_a_token_the_placeholder_is_the_default(settings, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    settings.NANOBANANA = {}
    assert app_settings.PROVIDER == "placeholder"
    # Said before deploying, not on every manage.py command (migrate, shell, runserver).
    assert "nanobanana.I001" not in check_ids(settings)
    assert "nanobanana.I001" in {
        m.id for m in run_checks(tags=["nanobanana"], include_deployment_checks=True)
    }


def test_the_base_url_defaults_to_the_environment_then_replicate(settings, monkeypatch):
    settings.NANOBANANA = {}
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
    assert app_settings.REPLICATE_BASE_URL == "https://api.replicate.com"
    monkeypatch.setenv("REPLICATE_BASE_URL", "http://127.0.0.1:9999/v1/")
    assert app_settings.REPLICATE_BASE_URL == "http://127.0.0.1:9999"


def test_override_settings_is_seen_at_once(settings):
    configure(settings, MODEL="google/nano-banana-pro")
    assert app_settings.MODEL == "google/nano-banana-pro"
    configure(settings, MODEL="google/nano-banana-2")
    assert app_settings.MODEL == "google/nano-banana-2"


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("REPLICATE_WAIT", 90, "1 to 60"),
        ("REPLICATE_WAIT", "60", "1 to 60"),
        ("CANCEL_AFTER", "soon", "'5m'"),
        ("CANCEL_AFTER", "2s", "minimum"),
        ("POLL_INTERVAL", 0, "positive"),
        ("MODEL", "nano-banana-2", "owner/name"),
        ("REPLICATE_BASE_URL", "api.replicate.com", "scheme"),
    ],
)
def test_a_bad_value_names_the_key_and_the_fix(settings, key, value, words):
    configure(settings, **{key: value})
    with pytest.raises(ImproperlyConfigured) as excinfo:
        getattr(app_settings, key)
    assert f"NANOBANANA['{key}']" in str(excinfo.value)
    assert words in str(excinfo.value)
    assert "nanobanana.E001" in check_ids(settings)


@pytest.mark.parametrize(
    "text, seconds",
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("45", 45), (90, 90), ("500ms", 0.5)],
)
def test_durations_are_read_like_replicate_does(text, seconds):
    assert parse_duration(text) == seconds


def test_cancel_after_accepts_seconds_and_sends_a_duration(settings):
    configure(settings, CANCEL_AFTER=300)
    assert app_settings.CANCEL_AFTER == "300s"


def test_check_replicate_without_a_token(settings, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    configure(settings, PROVIDER="replicate")
    messages = [m for m in run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E002"]
    assert messages and "REPLICATE_API_TOKEN" in messages[0].hint


def test_check_unknown_storage_alias(settings):
    configure(settings, STORAGE="s3-headers")
    assert "nanobanana.E003" in check_ids(settings)


def test_check_unknown_model(settings):
    configure(settings, MODEL="acme/painter")
    assert "nanobanana.E004" in check_ids(settings)


def test_check_default_input_that_the_model_refuses(settings):
    configure(settings, DEFAULT_INPUT={"resolution": "8K"})
    messages = [m for m in run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E005"]
    assert messages and "resolution" in messages[0].msg


@pytest.mark.parametrize(
    "models, words",
    [
        ({"testapp.Nope": {"title_field": "title", "image_field": "x"}}, "no installed model"),
        ({"testapp.Article": {"title_field": "title"}}, "'image_field'"),
        ({"testapp.Article": {"title_field": "title", "image_field": "hero"}}, "no field 'hero'"),
        ({"testapp.Article": {"title_field": "title", "image_field": "topic"}}, "ImageField"),
        ({"testapp.Article": {"title_field": "name", "image_field": "header_image"}}, "'name'"),
        (
            {"testapp.Article": {"title_field": "title", "image_field": "header_image", "x": 1}},
            "unknown keys",
        ),
    ],
)
def test_check_misconfigured_content_models_name_the_model_and_field(settings, models, words):
    configure(settings, MODELS=models)
    messages = [m for m in run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E006"]
    assert messages, "expected nanobanana.E006"
    assert words in messages[0].msg
    assert "NANOBANANA['MODELS']" in messages[0].msg


def test_the_shipped_test_settings_pass_the_checks(settings):
    errors = [m for m in run_checks(tags=["nanobanana"]) if m.is_serious()]
    assert errors == []


def messages_with(settings, check_id, **kwargs):
    return [m for m in run_checks(tags=["nanobanana"], **kwargs) if m.id == check_id]


def test_a_misspelt_top_level_key_is_an_error_that_suggests_the_right_one(settings):
    configure(settings, MODLES={"testapp.Article": {}})
    [message] = messages_with(settings, "nanobanana.E001")
    assert "NANOBANANA['MODLES']" in message.msg
    assert "Did you mean 'MODELS'?" in message.msg


@pytest.mark.parametrize(
    "key, value",
    [
        ("RATE_LIMIT", "600"),
        ("THROTTLE_TIMEOUT", -1),
        ("POLL_INTERVAL", "fast"),
        ("WEBHOOK_POLL_INTERVAL", "30s"),
        ("MAX_RETRIES", 2.5),
        ("CACHE", ""),
        ("UPLOAD_TO", 3),
    ],
)
def test_every_setting_is_checked(settings, key, value):
    configure(settings, **{key: value})
    messages = messages_with(settings, "nanobanana.E001")
    assert any(f"NANOBANANA['{key}']" in m.msg for m in messages), messages


def test_an_adapter_that_cannot_be_imported_is_reported(settings):
    configure(settings, ADAPTER="myproject.adapters.Missing")
    messages = messages_with(settings, "nanobanana.E001")
    assert any("cannot be imported" in m.msg for m in messages)


def test_w001_advice_is_about_tasks_that_submit_and_return(settings):
    settings.Q_CLUSTER = {"name": "t", "orm": "default", "timeout": 60, "retry": 90}
    configure(settings, TASK_RUNNER="django_q")
    [warning] = messages_with(settings, "nanobanana.W001")
    assert "never wait for the model" in warning.msg
    assert "THROTTLE_TIMEOUT" in warning.hint and "GENERATION_TIMEOUT" not in warning.hint
    settings.Q_CLUSTER["timeout"], settings.Q_CLUSTER["retry"] = 700, 760
    assert not messages_with(settings, "nanobanana.W001")


def sqlite_options(settings, options):
    from django.db import connections

    connections["default"].settings_dict["OPTIONS"] = options


@pytest.fixture
def restore_database_options():
    from django.db import connections

    saved = dict(connections["default"].settings_dict["OPTIONS"])
    yield
    connections["default"].settings_dict["OPTIONS"] = saved


@sqlite_only
def test_default_sqlite_settings_with_workers_are_warned_with_the_exact_fix(
    settings, restore_database_options
):
    import django

    configure(settings, TASK_RUNNER="django_q")
    sqlite_options(settings, {})
    [warning] = messages_with(settings, "nanobanana.W006")
    assert "database is locked" in warning.msg
    expected = '"transaction_mode": "IMMEDIATE"' if django.VERSION >= (5, 1) else '"timeout": 20'
    assert expected in warning.hint
    sqlite_options(
        settings,
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
        if django.VERSION >= (5, 1)
        else {"timeout": 20},
    )
    assert not messages_with(settings, "nanobanana.W006")
    sqlite_options(settings, {})
    configure(settings, TASK_RUNNER="immediate")  # one process: no contention
    assert not messages_with(settings, "nanobanana.W006")


@pytest.mark.django_db
def test_a_database_cache_without_its_table_is_reported(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "never_created_cache_table",
        }
    }
    [warning] = messages_with(settings, "nanobanana.W007")
    assert "never_created_cache_table" in warning.msg
    assert warning.hint == "Run: python manage.py createcachetable"


def test_images_on_local_disk_need_media_root(settings):
    settings.MEDIA_ROOT = ""
    [error] = messages_with(settings, "nanobanana.E009")
    assert "MEDIA_ROOT" in error.msg and "working directory" in error.msg
    assert "MEDIA_ROOT = BASE_DIR" in error.hint


@pytest.mark.parametrize("media_url", ["", "/"])
def test_a_media_url_that_would_collide_with_the_webhook_mount_is_reported(settings, media_url):
    settings.MEDIA_URL = media_url  # Django's default is ""
    [warning] = messages_with(settings, "nanobanana.W008")
    assert "/nanobanana/2026/01/image.jpg" in warning.msg
    assert 'MEDIA_URL = "/media/"' in warning.hint
    settings.MEDIA_URL = "/media/"
    assert not messages_with(settings, "nanobanana.W008")
