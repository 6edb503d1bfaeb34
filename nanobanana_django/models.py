from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import PLACEHOLDER
from .storage import generated_image_storage, generated_image_upload_to


class GeneratedImageQuerySet(models.QuerySet["GeneratedImage"]):
    def for_object(self, obj: models.Model) -> GeneratedImageQuerySet:
        """Every generation made for ``obj``, newest first."""
        return self.filter(
            content_type=ContentType.objects.get_for_model(obj),  # as content_object stores it
            object_id=str(obj.pk),
        ).order_by("-created_at", "-pk")

    def unfinished(self) -> GeneratedImageQuerySet:
        return self.filter(status__in=GeneratedImage.Status.unfinished())


class GeneratedImage(models.Model):
    """One image generation: what was asked, what the provider did, what was stored.

    Rows are the audit trail: a failed generation keeps its row with a readable
    ``error_message``; nothing here ever holds an API token.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELED = "canceled", _("Canceled")

        @classmethod
        def unfinished(cls) -> tuple[str, ...]:
            return (cls.QUEUED, cls.RUNNING)  # type: ignore[return-value]  # members are str

        @classmethod
        def finished(cls) -> tuple[str, ...]:
            return (cls.SUCCEEDED, cls.FAILED, cls.CANCELED)  # type: ignore[return-value]

    content_type = models.ForeignKey(
        ContentType,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        verbose_name=_("content type"),
    )
    object_id = models.CharField(_("object id"), max_length=255, blank=True, db_index=True)
    content_object = GenericForeignKey("content_type", "object_id")
    target_field = models.CharField(
        _("target field"),
        max_length=100,
        blank=True,
        help_text=_("Field of the content object the image is attached to."),
    )
    overwrite = models.BooleanField(
        _("replace an existing image"),
        default=False,
        help_text=_("Whether the result may replace an image the object already has."),
    )

    class Kind(models.TextChoices):
        GENERATE = "generate", _("Generation")
        EDIT = "edit", _("Edit")
        STEP = "step", _("Step")
        VARIANT = "variant", _("Variant")

    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    kind = models.CharField(
        _("kind"),
        max_length=20,
        choices=Kind.choices,
        default=Kind.GENERATE,
        help_text=_("A new image, an edit of the parent's, or a step run on the parent's."),
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("parent"),
        help_text=_("The generation this one edits or continues."),
    )
    provider = models.CharField(
        _("provider"),
        max_length=50,
        help_text=_("The alias in NANOBANANA['PROVIDERS'] that made it."),
    )
    model_name = models.CharField(_("model"), max_length=100)
    prompt = models.TextField(_("prompt"))
    input_params = models.JSONField(
        _("input parameters"),
        default=dict,
        blank=True,
        help_text=_("Model inputs sent with the prompt."),
    )
    prediction_id = models.CharField(_("prediction id"), max_length=100, blank=True, db_index=True)
    reference_images = models.JSONField(
        _("reference images"),
        default=list,
        blank=True,
        help_text=_("The reference images sent with the prompt, in order."),
    )
    preset = models.CharField(_("preset"), max_length=50, blank=True)

    class Review(models.TextChoices):
        NONE = "", _("Not needed")
        PENDING = "pending", _("Awaiting review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    auto_attach = models.BooleanField(
        _("attach when done"),
        default=True,
        help_text=_(
            "Attach the image to its object as soon as it is made. Edits and variants "
            "wait for an editor to choose them."
        ),
    )
    review = models.CharField(
        _("review"),
        max_length=20,
        choices=Review.choices,
        default=Review.NONE,
        blank=True,
        db_index=True,
        help_text=_("With approval on, an image waits for an editor before it is attached."),
    )
    batch = models.UUIDField(
        _("batch"),
        null=True,
        blank=True,
        db_index=True,
        help_text=_("Variants asked for together share a batch."),
    )
    step = models.CharField(
        _("step"),
        max_length=50,
        blank=True,
        help_text=_("The post-processing step this row ran on its parent's image (e.g. upscale)."),
    )
    next_steps = models.JSONField(
        _("next steps"),
        default=list,
        blank=True,
        help_text=_("Steps still to run on this image once it is made, in order."),
    )
    provider_state = models.JSONField(
        _("provider state"),
        default=dict,
        blank=True,
        help_text=_(
            "What the provider needs to continue from this image in an edit (for Gemini: "
            "the model's turn with its thought signature, without the image bytes)."
        ),
    )
    alt_text = models.TextField(
        _("alt text"),
        blank=True,
        help_text=_("A short description of the image for screen readers and search engines."),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )

    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    predict_time = models.FloatField(
        _("predict time (s)"),
        null=True,
        blank=True,
        help_text=_("Seconds the provider reports the model ran (what Replicate bills on)."),
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    cost = models.DecimalField(
        _("cost"),
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=_("What the image cost, in the currency beside it (empty when unknown)."),
    )
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    usage = models.JSONField(
        _("usage"),
        default=dict,
        blank=True,
        help_text=_("What the provider reports it billed, e.g. Gemini's token counts."),
    )

    image = models.FileField(
        _("image"),
        storage=generated_image_storage,
        upload_to=generated_image_upload_to,
        max_length=255,
        blank=True,
        db_index=True,  # the {% header_image %} tag finds a row by its file name
    )
    image_format = models.CharField(_("format"), max_length=10, blank=True)
    width = models.PositiveIntegerField(_("width"), null=True, blank=True)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    renditions = models.JSONField(
        _("renditions"),
        default=dict,
        blank=True,
        help_text=_("Smaller copies in the same storage: {width: file name}."),
    )

    error_code = models.CharField(_("error code"), max_length=50, blank=True)
    error_message = models.TextField(_("error"), blank=True)

    objects = GeneratedImageQuerySet.as_manager()

    class Meta:
        verbose_name = _("generated image")
        verbose_name_plural = _("generated images")
        ordering = ("-created_at", "-pk")
        indexes = [models.Index(fields=["content_type", "object_id"])]
        constraints = [
            # At most one generation in flight per object and image field: the database,
            # not a flag, stops a double publish from billing two predictions.
            models.UniqueConstraint(
                fields=["content_type", "object_id", "target_field"],
                # Edits and variants (auto_attach off) are an editor's explicit choice.
                condition=models.Q(
                    status__in=["queued", "running"], content_type__isnull=False, auto_attach=True
                ),
                name="nanobanana_one_unfinished_per_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()} image #{self.pk}"

    @property
    def is_placeholder(self) -> bool:
        """True when the offline placeholder provider made this image."""
        return self.provider == PLACEHOLDER

    @property
    def is_finished(self) -> bool:
        return self.status in self.Status.finished()

    @property
    def attaches_when_done(self) -> bool:
        """Whether success attaches the image at once (not an edit, a variant, a step
        awaiting its successor, or an image awaiting review)."""
        return (
            bool(self.content_type_id) and self.auto_attach and self.review != self.Review.PENDING
        )

    @property
    def duration(self) -> float | None:
        """Wall-clock seconds from start to finish, as the site saw it."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def record(self, **fields: Any) -> None:
        """Set ``fields`` and save only them."""
        for name, value in fields.items():
            setattr(self, name, value)
        self.save(update_fields=list(fields))


def reference_upload_to(instance: Any, filename: str) -> str:
    return generated_image_upload_to(instance, filename, folder="references")


class ReferenceSet(models.Model):
    """A named group of reference images (a brand kit) sent with every prompt that uses it.

    Presets and registered models name a set by ``name`` (``"references": "brand-kit"``).
    """

    name = models.SlugField(_("name"), max_length=50, unique=True)
    label = models.CharField(_("label"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("reference set")
        verbose_name_plural = _("reference sets")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.label or self.name


class ReferenceImage(models.Model):
    """One reference image: in a set, or uploaded for one request (no set)."""

    reference_set = models.ForeignKey(
        ReferenceSet,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="images",
        verbose_name=_("reference set"),
    )
    image = models.ImageField(
        _("image"),
        storage=generated_image_storage,
        upload_to=reference_upload_to,
        max_length=255,
        width_field="width",
        height_field="height",
    )
    caption = models.CharField(_("caption"), max_length=200, blank=True)
    position = models.PositiveIntegerField(_("position"), default=0)
    width = models.PositiveIntegerField(_("width"), null=True, blank=True, editable=False)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True, editable=False)
    size_bytes = models.PositiveBigIntegerField(
        _("size (bytes)"), null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("reference image")
        verbose_name_plural = _("reference images")
        ordering = ("reference_set", "position", "pk")

    def __str__(self) -> str:
        return self.caption or (self.image.name or "").rsplit("/", 1)[-1]


class Spend(models.Model):
    """Money reserved and spent in one budget period (``day:2026-11-30``,
    ``month:2026-11``, with ``:app.Model`` for a model's own cap). Budgets are checked and
    reserved here with one conditional UPDATE each, so that workers on any number of
    machines never pass a cap together."""

    period = models.CharField(_("period"), max_length=120, unique=True)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=4, default=0)

    class Meta:
        verbose_name = _("spend")
        verbose_name_plural = _("spend")

    def __str__(self) -> str:
        return f"{self.period}: {self.amount}"
