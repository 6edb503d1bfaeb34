"""Reference sets (brand kits) in the admin: upload, thumbnails, order, and who uses a set."""

from __future__ import annotations

import os
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import UploadedFile
from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..models import GeneratedImage, ReferenceImage, ReferenceSet
from ..presets import get_presets
from ..references import ADVICE, check_image, read_upload
from .display import content_configs, file_url

#: Thumbnails shown per set in the list.
LISTED_THUMBNAILS = 8


class ReferenceImageForm(forms.ModelForm):
    """Checks an upload the way a request's references are checked: a real image within
    the caps, refused on the form (not at generation time)."""

    class Meta:
        model = ReferenceImage
        fields = ("image", "caption", "position")
        # The preview links to the file: no long "Currently: <path>" to widen the table.
        widgets = {"image": forms.FileInput(attrs={"accept": "image/*"})}

    def clean_image(self) -> Any:
        image = self.cleaned_data.get("image")
        if isinstance(image, UploadedFile):
            name = image.name or "the upload"
            info = check_image(read_upload(image, name), name)
            image.seek(0)
            self.instance.size_bytes = info.size_bytes
        return image

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        image = cleaned.get("image")
        if isinstance(image, UploadedFile) and not cleaned.get("caption"):
            cleaned["caption"] = os.path.splitext(os.path.basename(image.name or ""))[0][:200]
        return cleaned


def sent_references(row: GeneratedImage) -> str:
    """The references a generation sent, in order, as thumbnails with their set."""
    entries = row.reference_images or []
    if not entries:
        return "—"
    stored = ReferenceImage.objects.in_bulk([entry.get("id") for entry in entries])
    return format_html(
        '<span class="nanobanana-thumbs">{}</span>',
        format_html_join(
            "",
            '<span title="{}">{}</span>',
            (
                (
                    f"{entry.get('name')} ({entry.get('set') or gettext('this request')})",
                    thumbnail(stored[entry["id"]])
                    if entry.get("id") in stored
                    else gettext("%(name)s (deleted)") % {"name": entry.get("name")},
                )
                for entry in entries
            ),
        ),
    )


def thumbnail(reference: ReferenceImage, css_class: str = "nanobanana-thumb") -> str:
    url = file_url(reference.image)
    if url is None:
        return "—"
    return format_html(
        '<a href="{}" class="{}"><img src="{}" alt="{}" loading="lazy"></a>',
        url,
        css_class,
        url,
        str(reference),
    )


class ReferenceImageInline(admin.TabularInline):
    model = ReferenceImage
    form = ReferenceImageForm
    fields = ("thumbnail", "image", "caption", "position", "dimensions")
    readonly_fields = ("thumbnail", "dimensions")
    ordering = ("position", "pk")
    extra = 1

    @admin.display(description=_("preview"))
    def thumbnail(self, reference: ReferenceImage) -> str:
        if not reference.pk:
            return "—"
        return thumbnail(reference, "nanobanana-thumb nanobanana-thumb-large")

    @admin.display(description=_("size"))
    def dimensions(self, reference: ReferenceImage) -> str:
        if not reference.pk or not reference.width:
            return "—"
        size = f", {reference.size_bytes / 1024:,.0f} KiB" if reference.size_bytes else ""
        return f"{reference.width}×{reference.height}{size}"


def used_by(name: str) -> list[str]:
    """The presets and registered models that send the set ``name``."""
    users = [
        gettext("preset “%(name)s”") % {"name": preset.name}
        for preset in get_presets().values()
        if preset.references == name
    ]
    users.extend(config.label for config in content_configs() if config.references == name)
    return users


class ReferenceSetAdmin(admin.ModelAdmin):
    list_display = ("name", "label", "image_count", "thumbnails", "used_by_list")
    search_fields = ("name", "label", "description")
    prepopulated_fields = {"name": ("label",)}
    readonly_fields = ("used_by_list",)
    inlines = (ReferenceImageInline,)

    @property
    def media(self) -> forms.Media:
        return super().media + forms.Media(css={"all": ["nanobanana_django/admin.css"]})

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        limits = gettext(
            "Each request sends at most the model's limit of images in all (14 for Nano Banana "
            "2, counting the image being edited): the set's, by position, then the request's "
            "own. Each image is a JPEG, PNG or WebP of at most %(mib)d MiB."
        ) % {"mib": app_settings.MAX_REFERENCE_BYTES // (1024 * 1024)}
        return [
            (
                None,
                {
                    "fields": ("label", "name", "description", "used_by_list"),
                    "description": f"{ADVICE} {limits}",
                },
            )
        ]

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(image_total=models.Count("images"))
            .prefetch_related("images")
        )

    @admin.display(description=_("images"), ordering="image_total")
    def image_count(self, reference_set: ReferenceSet) -> int:
        return reference_set.image_total

    @admin.display(description=_("preview"))
    def thumbnails(self, reference_set: ReferenceSet) -> str:
        images = sorted(reference_set.images.all(), key=lambda image: (image.position, image.pk))
        return format_html(
            '<span class="nanobanana-thumbs">{}</span>',
            format_html_join(
                "", "{}", ((thumbnail(image),) for image in images[:LISTED_THUMBNAILS])
            ),
        )

    @admin.display(description=_("used by"))
    def used_by_list(self, reference_set: ReferenceSet) -> str:
        if reference_set.pk is None:
            return "—"
        try:
            users = used_by(reference_set.name)
        except ImproperlyConfigured:
            users = []
        if not users:
            return gettext(
                "Nothing yet: name it as 'references' in a preset or a model of "
                "NANOBANANA['MODELS'], or pick it on the Generate header image page."
            )
        return ", ".join(users)
