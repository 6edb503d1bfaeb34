"""Settings of the demo site. Not for production: the secret key and DEBUG say so."""

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-a-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "nanobanana_django",
    "blog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", BASE_DIR / "db.sqlite3"),
        # The web server and the cluster's workers write at once: wait for the lock
        # instead of failing (IMMEDIATE transactions need Django 5.1+).
        # WAL lets readers go on while a worker writes: about 50 stored images a second on
        # two cores instead of 30 (docs/performance.md).
        "OPTIONS": {
            "timeout": 20,
            **(
                {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL"}
                if django.VERSION >= (5, 1)
                else {}
            ),
        },
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
MEDIA_URL = "media/"
MEDIA_ROOT = os.environ.get("DEMO_MEDIA_ROOT", BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-q2 runs generations in the background (ORM broker: no extra service).
# timeout covers the longest generation (GENERATION_TIMEOUT + submit + download), retry
# is just above it, and a task that crashes is retried twice (retries never bill twice).
Q_CLUSTER = {
    "name": "demo",
    "orm": "default",
    "workers": 2,
    "timeout": 720,
    "retry": 780,
    "max_attempts": 3,
    "ack_failures": False,
    "poll": 0.1,
}

# Shared by the web server and the cluster's workers: the create rate limit, the
# poller's lease and webhook deduplication live here. (LocMemCache is per process.)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "nanobanana_demo_cache",
    }
}

NANOBANANA = {
    # "replicate", "gemini" or "placeholder". Default: Replicate when REPLICATE_API_TOKEN is
    # set, otherwise offline placeholders.
    "PROVIDER": os.environ.get("NANOBANANA_PROVIDER", ""),
    "PROVIDERS": {
        # Google's Gemini API directly; GEMINI_BASE_URL is the API root (for an emulator),
        # GEMINI_CONCURRENCY the calls the dispatcher runs at once.
        "gemini": {
            "OPTIONS": {
                "api_key": os.environ.get("GEMINI_API_KEY", ""),
                "base_url": os.environ.get(
                    "GEMINI_BASE_URL", "https://generativelanguage.googleapis.com"
                ),
                "concurrency": int(os.environ.get("GEMINI_CONCURRENCY") or 20),
            }
        },
    },
    # Spending caps in CURRENCY (USD by default), e.g. NANOBANANA_DAILY_BUDGET=5.00.
    "DAILY_BUDGET": os.environ.get("NANOBANANA_DAILY_BUDGET") or None,
    "MONTHLY_BUDGET": os.environ.get("NANOBANANA_MONTHLY_BUDGET") or None,
    "REPLICATE_API_TOKEN": os.environ.get("REPLICATE_API_TOKEN", ""),
    "REPLICATE_BASE_URL": os.environ.get("REPLICATE_BASE_URL", "https://api.replicate.com"),
    # Where Replicate can reach this site; enables webhooks. Without it, the app polls.
    "PUBLIC_URL": os.environ.get("NANOBANANA_PUBLIC_URL", ""),
    # Without it, the secret is fetched once from Replicate and cached.
    "WEBHOOK_SECRET": os.environ.get("REPLICATE_WEBHOOK_SECRET", ""),
    # A site preset that sends the demo's brand kit (the reference set "brand", seeded by
    # `manage.py demo`); pick it on the admin's Generate header image page.
    "PRESETS": {
        "house_style": {
            "label": "House style (2K, 16:9, brand kit)",
            "input": {"resolution": "2K", "aspect_ratio": "16:9"},
            "prompt_guidance": "In the colours, shapes and mood of the brand references.",
            "references": "brand",
        },
    },
    "MODELS": {
        "blog.Article": {
            "title_field": "title",
            "topic_field": "topic",
            "image_field": "header_image",
            "publish": {"field": "status", "values": ["published"]},
        },
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"nanobanana_django": {"handlers": ["console"], "level": "INFO"}},
}
