"""Settings for the benchmarks: the example project's, plus knobs from the environment.

The benchmarks run the example project as separate processes (a django-q2 cluster, and
a web server to receive webhooks) on a temporary SQLite file, so everything a process
must agree on comes through environment variables:

- the example project's own: ``DEMO_DATABASE``, ``DEMO_MEDIA_ROOT``,
  ``REPLICATE_API_TOKEN``, ``REPLICATE_BASE_URL``, ``NANOBANANA_PUBLIC_URL``,
  ``REPLICATE_WEBHOOK_SECRET``;
- ``BENCH_NANOBANANA``: JSON merged into ``NANOBANANA`` (say ``{"REPLICATE_WAIT": 0}``);
- ``BENCH_Q_CLUSTER``: JSON merged into ``Q_CLUSTER`` (say ``{"poll": 0.2}``);
- ``BENCH_LOG_LEVEL``: level of the app's and django-q2's loggers (default INFO; the
  benchmarks send each process's output to a log file, kept for investigation).

Nothing else differs from the example project, except ``DEBUG = False``, as in
production (no query log kept in memory, no debug pages).
"""

import json
import os

from example_project.settings import *  # noqa: F403
from example_project.settings import NANOBANANA, Q_CLUSTER

DEBUG = False

NANOBANANA = {**NANOBANANA, **json.loads(os.environ.get("BENCH_NANOBANANA") or "{}")}
Q_CLUSTER = {**Q_CLUSTER, **json.loads(os.environ.get("BENCH_Q_CLUSTER") or "{}")}

_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # Milliseconds and the process: the logs are read to see where time goes.
        "timed": {"format": "%(asctime)s.%(msecs)03d %(processName)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "timed"}},
    "loggers": {
        "nanobanana_django": {"handlers": ["console"], "level": _LEVEL, "propagate": False},
        "django-q": {"handlers": ["console"], "level": _LEVEL, "propagate": False},
    },
}
