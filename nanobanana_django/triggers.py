"""What starts a generation: triggers, configured in ``NANOBANANA["TRIGGERS"]``.

A trigger connects itself to whatever event means "this object should get an image" and
calls :func:`nanobanana_django.services.queue_generation` when it happens. The built-in
one, :class:`nanobanana_django.publishing.PublishedObjectRouter`, watches model signals for
objects that become published by their registration's rule. Another source of events,
such as a CMS's own "page published" signal, is a class of your own added to
``TRIGGERS``; nothing else in the pipeline changes::

    class PagePublishedTrigger(Trigger):
        @classmethod
        def connect(cls):
            page_published.connect(cls.published, dispatch_uid="nanobanana-pages")

        @classmethod
        def disconnect(cls):
            page_published.disconnect(dispatch_uid="nanobanana-pages")

        @staticmethod
        def published(sender, instance, **kwargs):
            transaction.on_commit(lambda: queue_generation(instance.specific))
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .conf import app_settings


class Trigger:
    """Connects to the events that start generations, and disconnects again."""

    @classmethod
    def connect(cls) -> None:
        raise NotImplementedError

    @classmethod
    def disconnect(cls) -> None:
        raise NotImplementedError


_connected: list[type[Trigger]] = []


def connect_triggers() -> None:
    """Connect every trigger of ``NANOBANANA["TRIGGERS"]`` (after disconnecting the last)."""
    disconnect_triggers()
    try:
        paths = app_settings.TRIGGERS
    except ImproperlyConfigured:
        return  # the system checks say what is wrong
    for path in paths:
        try:
            trigger = _import(path)
        except ImproperlyConfigured:
            continue  # reported by manage.py check (nanobanana.E001), not a crash at start
        trigger.connect()
        _connected.append(trigger)


def disconnect_triggers() -> None:
    while _connected:
        _connected.pop().disconnect()


def _import(path: str) -> type[Trigger]:
    try:
        trigger = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"NANOBANANA['TRIGGERS'] names {path!r}, which cannot be imported ({exc})."
        ) from None
    if not (isinstance(trigger, type) and issubclass(trigger, Trigger)):
        raise ImproperlyConfigured(
            f"NANOBANANA['TRIGGERS'] names {path!r}, which is not a Trigger subclass."
        )
    return trigger


def check_triggers() -> list[str]:
    """Problems with ``TRIGGERS``, for the system checks."""
    problems = []
    try:
        paths = app_settings.TRIGGERS
    except ImproperlyConfigured:
        return []  # reported as the setting's own E001
    for path in paths:
        try:
            _import(path)
        except ImproperlyConfigured as exc:
            problems.append(str(exc))
    return problems


@receiver(setting_changed)
def _reconnect(setting: str, **kwargs: Any) -> None:
    if setting == "NANOBANANA":
        connect_triggers()
