"""The admin: a "Generate header image" action, each object's generation history, and
the ``GeneratedImage`` records with retry, cancel, regenerate and "use this image", and the
reference sets (brand kits).

One module per feature: ``actions`` (the action and its page), ``history`` (the inline),
``generated_images`` (the records), ``references`` (the reference sets), ``integration``
(adding the first two to other apps' admins) and ``display`` (what their pages share).

Every model in ``NANOBANANA["MODELS"]`` that has an admin gets the action and the history
without admin code: :func:`install_header_image_admin` adds them when the app is ready,
unless ``NANOBANANA["ADMIN_INTEGRATION"]`` is False. Admins on custom sites, registered
later, or on a site with the integration off use :class:`HeaderImageAdminMixin` (or call
the function). Nothing here generates inside a request: the services queue the work, and
the task runner decides where it runs.
"""

from django.contrib import admin

from ..models import GeneratedImage, ReferenceSet
from .actions import generate_header_image
from .generated_images import GeneratedImageAdmin
from .history import GenerationHistoryInline
from .integration import (
    HeaderImageAdminMixin,
    add_header_image_admin,
    install_header_image_admin,
)
from .references import ReferenceSetAdmin

__all__ = [
    "GeneratedImageAdmin",
    "GenerationHistoryInline",
    "HeaderImageAdminMixin",
    "ReferenceSetAdmin",
    "add_header_image_admin",
    "generate_header_image",
    "install_header_image_admin",
]

admin.site.register(GeneratedImage, GeneratedImageAdmin)
admin.site.register(ReferenceSet, ReferenceSetAdmin)
