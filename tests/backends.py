"""What differs between the SQLite runs and the PostgreSQL+Redis job, for the tests that care."""

import pytest
from django.db import connection
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage


def queued_tasks() -> list[dict]:
    """The tasks handed to django-q2 and not taken by a cluster yet, oldest first."""
    if Conf.ORM:
        payloads = OrmQ.objects.order_by("pk").values_list("payload", flat=True)
    else:
        broker = get_broker()
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    return [SignedPackage.loads(payload) for payload in payloads]


def empty_queue() -> None:
    """Drop every queued task (the ORM's are rolled back with each test's transaction)."""
    if not Conf.ORM:
        get_broker().purge_queue()


sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="SQLite's own locking; PostgreSQL (the PostgreSQL+Redis job) has none",
)
