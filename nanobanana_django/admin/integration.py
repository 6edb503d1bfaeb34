"""Adding the action and the history to other apps' admins.

``NanoBananaConfig.ready()`` calls :func:`install_header_image_admin` unless
``NANOBANANA["ADMIN_INTEGRATION"]`` is False; a site that turns it off, or whose admins the
app cannot find by itself, uses :class:`HeaderImageAdminMixin` or calls the function.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.sites import AdminSite, all_sites

from .actions import generate_header_image
from .display import content_configs
from .history import GenerationHistoryInline


def add_header_image_admin(model_admin: admin.ModelAdmin) -> None:
    """Give one ``ModelAdmin`` the action and the generation history (idempotent).

    An admin with ``actions = None`` (actions turned off) gets only the history.
    """
    actions = model_admin.actions
    if actions is not None:
        names = {action if isinstance(action, str) else action.__name__ for action in actions}
        if generate_header_image.__name__ not in names:
            model_admin.actions = [*actions, generate_header_image]
    inlines = model_admin.inlines
    if not any(issubclass(inline, GenerationHistoryInline) for inline in inlines):
        model_admin.inlines = [*inlines, GenerationHistoryInline]  # type: ignore[misc]


class HeaderImageAdminMixin:
    """Adds "Generate header image" and the generation history to a ``ModelAdmin``.

    Needed for admins the app cannot find by itself (those on a site created after the
    app is ready, in ``urls.py`` say), and for every admin when
    ``NANOBANANA["ADMIN_INTEGRATION"]`` is False::

        class ArticleAdmin(HeaderImageAdminMixin, admin.ModelAdmin):
            ...
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_header_image_admin(self)  # type: ignore[arg-type]


def install_header_image_admin(*sites: AdminSite) -> None:
    """Add the action and the history to the admin of every model in ``NANOBANANA["MODELS"]``.

    Without arguments, on every admin site that exists; ``NanoBananaConfig.ready()`` calls
    it so unless ``NANOBANANA["ADMIN_INTEGRATION"]`` is False. Call it with a site whose
    models are registered later, or to install explicitly with the integration off.
    """
    if not sites:
        _autodiscover()
        sites = tuple(all_sites)
    for site in sites:
        for config in content_configs():
            model_admin = site._registry.get(config.model)
            if model_admin is not None:
                add_header_image_admin(model_admin)


def _autodiscover() -> None:
    """Import every app's ``admin`` module, as ``django.contrib.admin`` does when it is ready.

    A no-op when it has done so already (it usually comes first in ``INSTALLED_APPS``);
    otherwise this app would be ready before the admins it adds to are registered.
    """
    if any(isinstance(config, AdminConfig) for config in apps.get_app_configs()):
        admin.autodiscover()
