from django.contrib import admin
from django.utils.html import format_html

from .models import Article


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ("title", "topic", "status", "thumbnail", "created_at")
    list_filter = ("status",)
    search_fields = ("title", "topic")

    @admin.display(description="header image")
    def thumbnail(self, obj):
        if not obj.header_image:
            return "—"
        return format_html('<img src="{}" alt="" style="max-height:40px">', obj.header_image.url)
