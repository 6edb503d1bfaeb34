from django.core.files.storage import FileSystemStorage
from django.db import models

from nanobanana_django.storage import StorageAlias


class Article(models.Model):
    title = models.CharField(max_length=200)
    topic = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=20, default="draft")
    is_live = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    header_image = models.ImageField(upload_to="headers/", blank=True)
    header_image_alt = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.title


class Page(models.Model):
    """Points at the GeneratedImage itself instead of a file."""

    headline = models.CharField(max_length=200)
    image = models.ForeignKey(
        "nanobanana_django.GeneratedImage", null=True, blank=True, on_delete=models.SET_NULL
    )


other_storage = FileSystemStorage(location="/tmp/nanobanana-other-storage", base_url="/other/")


class Poster(models.Model):
    """Its image field lives in another storage than generated images."""

    name = models.CharField(max_length=200)
    picture = models.ImageField(storage=other_storage, blank=True)


class FeaturedArticle(Article):
    """A proxy registered on its own (the concrete Article may not be)."""

    class Meta:
        proxy = True


s3_media = StorageAlias("s3media")


def s3_media_storage():
    """The ``s3media`` alias, which tests/test_s3.py points at a bucket of its S3 server."""
    return s3_media


class Story(models.Model):
    """Its cover lives in the ``s3media`` storage; migrations record only the alias's callable."""

    title = models.CharField(max_length=200)
    cover = models.ImageField(
        storage=s3_media_storage,
        upload_to="covers/",
        width_field="cover_width",
        height_field="cover_height",
        blank=True,
    )
    cover_width = models.PositiveIntegerField(null=True, blank=True)
    cover_height = models.PositiveIntegerField(null=True, blank=True)
