"""Settings for the test suite. Each test gets its own MEDIA_ROOT (see conftest.py).

A django-q2 cluster started by a test (tests/test_qcluster.py) loads these settings
too, and is pointed at the test database and the emulator by environment variables.
"""

import json
import os
import tempfile
from urllib.parse import unquote, urlsplit

import django

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "nanobanana_django",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# A file, not memory: a cluster process started by a test must see the same database.
_TEST_DATABASE = os.environ.get("NANOBANANA_TEST_DATABASE") or os.path.join(
    tempfile.gettempdir(), f"nanobanana-test-{os.getpid()}.sqlite3"
)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _TEST_DATABASE,
        "TEST": {"NAME": _TEST_DATABASE},
        # A test's cluster process writes at the same time as the test: wait for the lock.
        "OPTIONS": {
            "timeout": 30,
            **({"transaction_mode": "IMMEDIATE"} if django.VERSION >= (5, 1) else {}),
        },
    }
}

# The PostgreSQL+Redis job (.ci/services starts both and sets these): the same suite on the
# services a production site runs. A cluster process started by a test is handed the test
# database's name in NANOBANANA_TEST_DATABASE, as with SQLite.
POSTGRES_URL = os.environ.get("NANOBANANA_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("NANOBANANA_TEST_REDIS_URL", "").rstrip("/")
if POSTGRES_URL:
    _url = urlsplit(POSTGRES_URL)
    _name = _url.path.lstrip("/") or "nanobanana"
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("NANOBANANA_TEST_DATABASE") or _name,
            "USER": unquote(_url.username or ""),
            "PASSWORD": unquote(_url.password or ""),
            "HOST": _url.hostname or "",
            "PORT": str(_url.port or ""),
            "TEST": {"NAME": os.environ.get("NANOBANANA_TEST_DATABASE") or f"test_{_name}"},
        }
    }

MEDIA_ROOT = os.environ.get("NANOBANANA_TEST_MEDIA_ROOT") or tempfile.mkdtemp(
    prefix="nanobanana-media-"
)
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# A cluster process and the test share the rate limit and the poller's lease through
# the database cache (or Redis, in the PostgreSQL+Redis job); on their own, tests use the
# per-process memory cache. The cache and django-q2's broker use separate Redis databases:
# clearing the cache must not empty the queue.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"{REDIS_URL}/0",
        }
    }
elif os.environ.get("NANOBANANA_TEST_SHARED_CACHE"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "nanobanana_test_cache",
        }
    }

Q_CLUSTER = {"name": "tests", "orm": "default", "sync": True, "timeout": 60, "retry": 120}
if REDIS_URL:
    Q_CLUSTER = {"name": "tests", "redis": f"{REDIS_URL}/1", "sync": True, "timeout": 60}
if os.environ.get("NANOBANANA_TEST_CLUSTER"):
    Q_CLUSTER = json.loads(os.environ["NANOBANANA_TEST_CLUSTER"])

NANOBANANA = {
    "PROVIDER": "placeholder",
    "MODELS": {
        "testapp.Article": {
            "title_field": "title",
            "topic_field": "topic",
            "image_field": "header_image",
        },
        "testapp.Page": {"title_field": "headline", "image_field": "image"},
    },
}

if os.environ.get("NANOBANANA_TEST_SETTINGS"):
    NANOBANANA = {**NANOBANANA, **json.loads(os.environ["NANOBANANA_TEST_SETTINGS"])}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"nanobanana_django": {"handlers": ["null"], "level": "DEBUG"}},
}
