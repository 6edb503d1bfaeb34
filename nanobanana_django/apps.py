from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

from .conf import app_settings


class NanoBananaConfig(AppConfig):
    name = "nanobanana_django"
    label = "nanobanana_django"
    verbose_name = _("Header images")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            webhooks,  # noqa: F401  (registers checks nanobanana.W004, W005)
        )
        from .runners import install_sweep_schedule, install_watchdog_schedule
        from .triggers import connect_triggers

        connect_triggers()
        post_migrate.connect(install_watchdog_schedule, sender=self)
        post_migrate.connect(install_sweep_schedule, sender=self)
        if self.apps and self.apps.is_installed("django.contrib.admin") and _admin_integration():
            from .admin import install_header_image_admin

            install_header_image_admin()


def _admin_integration() -> bool:
    """``NANOBANANA["ADMIN_INTEGRATION"]``; a bad value installs nothing, and ``manage.py
    check`` names it instead of the app failing to start."""
    try:
        return app_settings.ADMIN_INTEGRATION
    except ImproperlyConfigured:
        return False
