"""What the admin's pages share: links to admin views, breadcrumbs, thumbnails and badges,
the messages an action leaves, and the registered models."""

from __future__ import annotations

from typing import Any

import django
from django.contrib import admin, messages
from django.contrib.admin.sites import AdminSite
from django.contrib.admin.utils import quote
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext

from ..models import GeneratedImage
from ..registry import ContentConfig, registered_configs

#: Reasons named in one "Skipped" message; the rest are counted.
LISTED_REASONS = 10


def admin_url(site: AdminSite, opts: Any, view: str, *args: Any) -> str | None:
    """The URL of an admin view on ``site``, or None when that model is not registered there."""
    try:
        return reverse(
            f"{site.name}:{opts.app_label}_{opts.model_name}_{view}",
            args=[quote(arg) for arg in args],
        )
    except NoReverseMatch:
        return None


def breadcrumbs(site: AdminSite, opts: Any, *trail: tuple[str, str | None]) -> dict[str, Any]:
    """Context for ``includes/breadcrumbs.html``: Home, the app, the model, then ``trail``.

    Django 6 renders breadcrumbs as a list (``<ol>``), earlier versions as a ``<div>``.
    """
    crumbs = [
        (gettext("Home"), reverse(f"{site.name}:index")),
        (
            opts.app_config.verbose_name,
            reverse(f"{site.name}:app_list", kwargs={"app_label": opts.app_label}),
        ),
        (capfirst(opts.verbose_name_plural), admin_url(site, opts, "changelist")),
        *trail,
    ]
    return {"breadcrumbs": crumbs, "breadcrumbs_as_list": django.VERSION >= (6, 0)}


def object_label(obj: models.Model) -> str:
    """``Article “Ten quiet cafés”``, as the admin names objects in its messages."""
    return gettext("%(model)s “%(object)s”") % {
        "model": capfirst(obj._meta.verbose_name),
        "object": obj,
    }


def file_url(file: Any) -> str | None:
    if not file:
        return None
    try:
        return file.url
    except (ValueError, NotImplementedError):
        return None


def current_image_url(obj: models.Model, config: ContentConfig) -> str | None:
    value = getattr(obj, config.image_field)
    if isinstance(value, GeneratedImage):
        return file_url(value.image)
    return file_url(value)


def is_in_use(row: GeneratedImage, obj: models.Model | None) -> bool:
    """Whether ``row`` is the image ``obj`` shows now."""
    if obj is None or not row.image or not row.target_field:
        return False
    try:
        field = obj._meta.get_field(row.target_field)
    except FieldDoesNotExist:
        return False
    current = getattr(obj, field.attname)  # type: ignore[union-attr]
    if isinstance(field, models.ForeignKey):
        return current == row.pk
    return bool(current) and str(current) == row.image.name


def image_thumbnail(row: GeneratedImage, css_class: str = "nanobanana-thumb") -> str:
    url = file_url(row.image)
    if url is None:
        return "—"
    badge = placeholder_badge(row)
    return format_html(
        '<span class="{}"><img src="{}" alt="{}" loading="lazy">{}</span>',
        css_class,
        url,
        gettext("Generated image #%(pk)s") % {"pk": row.pk},
        badge,
    )


def placeholder_badge(row: GeneratedImage) -> str:
    if not row.is_placeholder:
        return ""
    return format_html(
        '<span class="nanobanana-badge nanobanana-placeholder" title="{}">{}</span>',
        gettext("Made offline by the placeholder provider, not by the model."),
        gettext("Placeholder"),
    )


def status_badge(row: GeneratedImage) -> str:
    return format_html(
        '<span class="nanobanana-status nanobanana-status-{}">{}</span>',
        row.status,
        row.get_status_display(),
    )


def report(
    modeladmin: admin.ModelAdmin, request: HttpRequest, done: str | None, skipped: list[str]
) -> None:
    """One message for what was done, one warning naming what was skipped and why."""
    if done:
        modeladmin.message_user(request, done, messages.SUCCESS)
    if skipped:
        reasons = "; ".join(skipped[:LISTED_REASONS])
        if len(skipped) > LISTED_REASONS:
            reasons += " " + gettext("and %(count)d more") % {
                "count": len(skipped) - LISTED_REASONS
            }
        modeladmin.message_user(
            request,
            gettext("Skipped %(count)d: %(reasons)s.")
            % {"count": len(skipped), "reasons": reasons},
            messages.WARNING,
        )


def content_configs() -> list[ContentConfig]:
    """The registered models; none while the setting is broken (the system checks say why)."""
    try:
        return registered_configs()
    except ImproperlyConfigured:
        return []
