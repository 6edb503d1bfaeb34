"""Creates stay under the rate limit across processes; a 429 slows everyone down."""

import pytest
from django.core.cache import caches

from nanobanana_django.models import GeneratedImage
from nanobanana_django.ratelimit import CreateRateLimiter
from nanobanana_django.services import generate_image


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture(autouse=True)
def fresh_cache():
    caches["default"].clear()


def limiter(clock, per_minute=600):
    return CreateRateLimiter(per_minute, "default", clock=clock.time, sleep=clock.sleep)


def test_creates_are_spaced_so_no_minute_holds_more_than_the_limit():
    clock = Clock()
    first, second = limiter(clock, 60), limiter(clock, 60)  # two processes, one cache
    times = []
    for _ in range(150):
        for process in (first, second):
            process.acquire()
            times.append(clock.now)
    for start in times:
        assert sum(start <= t < start + 60 for t in times) <= 60
    assert times[-1] - times[0] >= 299 * 60 / 60  # 300 creates at 1/s


def test_an_idle_limiter_does_not_make_anyone_wait():
    clock = Clock()
    assert limiter(clock).acquire() < 0.2
    clock.now += 30
    assert limiter(clock).acquire() < 0.2


def test_a_429_pauses_every_process_for_the_time_asked():
    clock = Clock()
    first, second = limiter(clock), limiter(clock)
    first.acquire()
    first.pause(5)
    before = clock.now
    second.acquire()
    assert clock.now - before >= 5


@pytest.mark.django_db
def test_throttled_creates_are_waited_out_and_never_billed_twice(replicate_emulator, settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "REPLICATE_WAIT": 0,
        "POLL_INTERVAL": 0.05,
    }
    replicate_emulator.create_rate_limit = 2
    replicate_emulator.create_rate_window = 1.0
    rows = [generate_image(f"a lighthouse, take {i}") for i in range(5)]
    assert all(row.status == GeneratedImage.Status.SUCCEEDED for row in rows)
    assert replicate_emulator.created_count == 5
    assert replicate_emulator.counts["create_rejected"] >= 1  # we were throttled
    assert replicate_emulator.max_creates_in_window(1.0) <= 2


@pytest.mark.django_db
def test_a_database_cache_without_its_table_fails_the_row_readably(replicate_emulator, settings):
    """Before: a raw OperationalError, and the row left running so a retry was refused."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "never_created_cache_table",
        }
    }
    settings.NANOBANANA = {**settings.NANOBANANA, **replicate_emulator.settings()}
    from tests.testapp.models import Article

    article = Article.objects.create(title="Cache-less")
    from nanobanana_django.services import generate_for

    row = generate_for(article)  # does not raise

    assert row.status == GeneratedImage.Status.FAILED
    assert row.error_code == "cache_unavailable"
    assert "createcachetable" in row.error_message and "'default'" in row.error_message
    assert replicate_emulator.created_count == 0  # nothing was sent
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert generate_for(article).status == GeneratedImage.Status.SUCCEEDED  # not "in progress"
