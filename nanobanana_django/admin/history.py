"""The generation history on a content object's change page, from which any succeeded
image can be put back."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline
from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import GeneratedImage
from .display import admin_url, image_thumbnail, is_in_use, status_badge

Status = GeneratedImage.Status


def _request_summary(row: GeneratedImage) -> str:
    """``16:9 · 1K · jpg``: the inputs an editor chooses."""
    params = row.input_params or {}
    values = [params.get(name) for name in ("aspect_ratio", "resolution", "output_format")]
    return " · ".join(str(value) for value in values if value) or "—"


class GenerationHistoryInline(GenericTabularInline):
    """An object's generations, newest first; any succeeded one can be put back."""

    model = GeneratedImage
    ct_field = "content_type"
    ct_fk_field = "object_id"
    fields = ("preview", "status_label", "created_at", "request_summary", "use_link", "edit_link")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = _("header image generation")
    verbose_name_plural = _("header image history")
    template = "admin/nanobanana_django/edit_inline/history.html"
    #: Shown instead of an empty table when the object has no generations yet.
    empty_text = _(
        "No header image has been generated for this object yet. To make one, select it in "
        "the list and choose the “Generate header image” action; publishing it also makes "
        "one when your site generates images on publishing. Every generation then appears "
        "here, and any of them can be put back as the header image."
    )

    class Media:
        css = {"all": ["nanobanana_django/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        # Not the inline's own permission check, which cannot tell the add page from the
        # change page: whoever may see the object sees its history (see has_view_permission).
        return GeneratedImage.objects.prefetch_related("content_object")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # Inline instances live for one request: remember whether it may attach images.
        parent = self._parent_admin()
        self.can_attach = bool(
            obj is not None and parent and parent.has_change_permission(request, obj)
        )
        return super().get_formset(request, obj, **kwargs)

    def _parent_admin(self) -> admin.ModelAdmin | None:
        return self.admin_site._registry.get(self.parent_model)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Seen by whoever may see the object; hidden on the add page, which has no history.
        parent = self._parent_admin()
        return obj is not None and bool(
            parent and parent.has_view_or_change_permission(request, obj)
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("image"))
    def preview(self, row: GeneratedImage) -> str:
        return image_thumbnail(row, "nanobanana-thumb nanobanana-thumb-large")

    @admin.display(description=_("status"))
    def status_label(self, row: GeneratedImage) -> str:
        if row.error_message:
            return format_html(
                '{}<div class="nanobanana-muted">{}</div>',
                status_badge(row),
                Truncator(row.error_message).chars(160),
            )
        return status_badge(row)

    @admin.display(description=_("inputs"))
    def request_summary(self, row: GeneratedImage) -> str:
        return _request_summary(row)

    def _may_change_image(self, row: GeneratedImage) -> bool:
        """A made image, shown to someone who may put images on the object."""
        return (
            row.status == Status.SUCCEEDED
            and bool(row.image)
            and getattr(self, "can_attach", False)
        )

    @admin.display(description=_("header image"))
    def use_link(self, row: GeneratedImage) -> str:
        if is_in_use(row, row.content_object):
            return format_html(
                '<span class="nanobanana-badge nanobanana-in-use">{}</span>', gettext("In use")
            )
        if not self._may_change_image(row):
            return "—"
        url = admin_url(self.admin_site, GeneratedImage._meta, "use", row.pk)
        if url is None:
            return "—"
        return format_html(
            '<a role="button" class="button nanobanana-use-button" href="{}">{}</a>',
            url,
            gettext("Use this image"),
        )

    @admin.display(description=_("edit"))
    def edit_link(self, row: GeneratedImage) -> str:
        """To the version's page, where its "Edit this image" form and thread are."""
        if not self._may_change_image(row):
            return "—"
        url = admin_url(self.admin_site, GeneratedImage._meta, "change", row.pk)
        if url is None:
            return "—"
        return format_html(
            '<a class="nanobanana-edit-link" href="{}#nanobanana-edit">{}</a>', url, gettext("Edit")
        )
