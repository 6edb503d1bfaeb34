import os
from pathlib import Path

import pytest

pytest_plugins = ["nanobanana_django.testing.pytest_plugin"]

SERVICES = ("NANOBANANA_TEST_DATABASE_URL", "NANOBANANA_TEST_REDIS_URL")


def services_running() -> bool:
    return all(os.environ.get(name) for name in SERVICES)


def pytest_collection_modifyitems(config, items):
    """Without PostgreSQL and Redis, tests marked ``services`` are left out of the run, unless
    they were asked for (``-m services`` or their file named): then they fail, saying why.
    Tests marked ``package`` (they build the wheel and install it) are left out unless asked
    for the same way: the nox session ``package`` runs them."""
    named = {Path(arg.split("::")[0]).resolve() for arg in config.args}
    markers = ["package"] if services_running() else ["services", "package"]
    kept, left_out = [], []
    for item in items:
        chosen = Path(item.fspath).resolve() in named
        unwanted = [
            marker
            for marker in markers
            if item.get_closest_marker(marker)
            and not chosen
            and marker not in (config.option.markexpr or "")
        ]
        (left_out if unwanted else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture
def services():
    """PostgreSQL and Redis, started by .ci/services (``nox -s postgres`` runs it)."""
    if not services_running():
        pytest.fail(
            f"this test needs PostgreSQL and Redis: {' and '.join(SERVICES)} are not set. "
            "Run it with `bash .ci/services python -m pytest ...` or `make test`.",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def fresh_services():
    """Redis outlives each test's transaction: start every test with an empty cache and queue,
    as the rolled-back database cache and ORM queue do on SQLite."""
    if services_running():
        from django.core.cache import caches

        from tests.backends import empty_queue

        caches["default"].clear()
        empty_queue()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Each test stores files in its own folder, so leftovers never leak between tests."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def replicate(settings, replicate_emulator):
    """The Replicate emulator as the site's provider, generations run in this process.

    A test module may define its own ``replicate`` on top of this one's settings."""
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "POLL_INTERVAL": 0.05,
        "REPLICATE_WAIT": 0,
    }
    return replicate_emulator


@pytest.fixture
def gemini(settings, gemini_emulator):
    """The Gemini emulator as the site's provider, generations run in this process (its
    rate limit and concurrency counters start empty)."""
    from django.core.cache import caches

    caches["default"].clear()
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **gemini_emulator.settings(),
        "TASK_RUNNER": "immediate",
    }
    return gemini_emulator


@pytest.fixture
def editor(django_user_model, client):
    """Log in a staff user who has only the permissions named (codenames)."""
    from django.contrib.auth.models import Permission

    def log_in(*codenames):
        user = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client.force_login(user)
        return client

    return log_in
