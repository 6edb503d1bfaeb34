from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import GeneratedImage


@admin.register(GeneratedImage)
class GeneratedImageAdmin(admin.ModelAdmin):
    """Generations are records of what the provider did: read-only."""

    list_display = (
        "id",
        "thumbnail",
        "status",
        "content_object_link",
        "provider_label",
        "model_name",
        "created_at",
    )
    list_filter = ("status", "provider", "model_name", "created_at")
    search_fields = ("prompt", "prediction_id", "object_id")
    date_hierarchy = "created_at"
    list_select_related = ("content_type",)

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [f.name for f in self.model._meta.fields] + ["preview"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    @admin.display(description=_("image"))
    def thumbnail(self, obj: GeneratedImage) -> str:
        if not obj.image:
            return "—"
        return format_html(
            '<img src="{}" alt="" style="max-height:48px;max-width:96px">', obj.image.url
        )

    @admin.display(description=_("preview"))
    def preview(self, obj: GeneratedImage) -> str:
        if not obj.image:
            return "—"
        return format_html('<img src="{}" alt="" style="max-width:640px">', obj.image.url)

    @admin.display(description=_("for"))
    def content_object_link(self, obj: GeneratedImage) -> str:
        if obj.content_type_id is None:
            return "—"
        return f"{obj.content_type.name} {obj.object_id}"

    @admin.display(description=_("provider"), ordering="provider")
    def provider_label(self, obj: GeneratedImage) -> str:
        if obj.is_placeholder:
            return format_html("<strong>{}</strong>", _("placeholder (offline)"))
        return obj.provider
