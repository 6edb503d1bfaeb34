from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


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
        from .runners import install_watchdog_schedule
        from .triggers import connect_triggers

        connect_triggers()
        post_migrate.connect(install_watchdog_schedule, sender=self)
        if self.apps.is_installed("django.contrib.admin"):
            from .admin import install_header_image_admin

            install_header_image_admin()
