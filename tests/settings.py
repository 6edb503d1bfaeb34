"""Settings for the test suite. Each test gets its own MEDIA_ROOT (see conftest.py).

A django-q2 cluster started by a test (tests/test_qcluster.py) loads these settings
too, and is pointed at the test database and the emulator by environment variables.
"""

import json
import os
import tempfile

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
# the database cache; on their own, tests use the per-process memory cache.
if os.environ.get("NANOBANANA_TEST_SHARED_CACHE"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "nanobanana_test_cache",
        }
    }

Q_CLUSTER = {"name": "tests", "orm": "default", "sync": True, "timeout": 60, "retry": 120}
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
