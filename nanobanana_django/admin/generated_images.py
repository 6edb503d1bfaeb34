"""The read-only ``GeneratedImage`` records, with retry, cancel, regenerate and "use this
image" as list actions and as buttons on a generation's page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import models
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import grounding
from ..alttext import copy_to_object
from ..costs import money
from ..models import GeneratedImage
from ..registry import find_config
from ..services import (
    AlreadyHasImage,
    GenerationInProgress,
    cancel_generation,
    retry_generation,
    use_generation,
)
from .display import (
    admin_url,
    breadcrumbs,
    content_configs,
    current_image_url,
    file_url,
    image_thumbnail,
    is_in_use,
    object_label,
    placeholder_badge,
    report,
    status_badge,
)
from .edits import edit_view, thread_context
from .references import sent_references
from .review import (
    ReviewFilter,
    approve_generations,
    changelist_context,
    reject_generations,
    review_tools,
    review_urls,
)
from .spend import spend_view, warn_near_budget
from .steps import step_chain

Status = GeneratedImage.Status


def _permission(model: type[models.Model], action: str) -> str:
    opts = model._meta
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


class GeneratedImageAdmin(admin.ModelAdmin):
    """Generations are records of what the provider did: read-only, with actions."""

    list_display = (
        "thumbnail",
        "status_label",
        "content_object_link",
        "request_label",
        "duration_label",
        "cost_label",
        "created_label",
    )
    list_filter = ("status", ReviewFilter, "provider", "model_name", "created_at")
    search_fields = ("prompt", "prediction_id", "=object_id")
    search_help_text = _("Search the prompt, the prediction id, or the title or id of the object.")
    date_hierarchy = "created_at"
    list_select_related = ("content_type",)
    actions = (
        "retry_generations",
        "cancel_generations",
        "regenerate",
        "use_images",
        approve_generations,
        reject_generations,
    )
    fieldsets = (
        (
            None,
            {"fields": ("preview", "status_label", "content_object_link", "error", "steps_label")},
        ),
        (
            _("Request"),
            {
                "fields": (
                    "prompt",
                    "parameters",
                    "grounding_label",
                    "references_sent",
                    "model_name",
                    "provider_label",
                    "overwrite",
                    "target_field",
                )
            },
        ),
        (
            _("Result"),
            {"fields": ("image_facts", "prediction_id", "predict_time", "cost_label", "usage")},
        ),
        (
            _("Timings"),
            {"fields": ("created_at", "started_at", "finished_at", "duration_label", "attempts")},
        ),
    )
    readonly_fields = (
        "steps_label",
        "cost_label",
        "preview",
        "status_label",
        "content_object_link",
        "error",
        "parameters",
        "grounding_label",
        "references_sent",
        "provider_label",
        "image_facts",
        "duration_label",
    )

    class Media:
        css = {"all": ["nanobanana_django/admin.css"]}

    # Read-only records ----------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_generate_permission(self, request: HttpRequest) -> bool:
        """Whether to offer retry, cancel, regenerate and "use": for users who may change
        generated images or a registered model. Each row still checks its own object.
        """
        user = request.user
        candidates: list[Any] = [GeneratedImage, *(c.model for c in content_configs())]
        return any(user.has_perm(_permission(model, "change")) for model in candidates)

    def may_act_on(self, request: HttpRequest, row: GeneratedImage) -> bool:
        """Acting on a generation needs change permission on the object it is for."""
        if not row.content_type_id:
            return request.user.has_perm(_permission(GeneratedImage, "change"))
        model = row.content_type.model_class()  # type: ignore[union-attr]
        if model is None:
            return False
        model_admin = self.admin_site._registry.get(model)
        if model_admin is not None:
            return model_admin.has_change_permission(request, row.content_object)
        return request.user.has_perm(_permission(model, "change"))

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return super().get_queryset(request).prefetch_related("content_object")

    def get_search_results(
        self, request: HttpRequest, queryset: models.QuerySet, search_term: str
    ) -> tuple[models.QuerySet, bool]:
        """Also find generations by the title of their object."""
        filtered = queryset
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            for_objects = _objects_titled(term)
            if for_objects is not None:
                queryset = queryset | filtered.filter(for_objects)
        return queryset, may_have_duplicates

    # Columns and fields -----------------------------------------------------------------

    @admin.display(description=_("image"))
    def thumbnail(self, row: GeneratedImage) -> str:
        return image_thumbnail(row)

    @admin.display(description=_("image"))
    def preview(self, row: GeneratedImage) -> str:
        url = file_url(row.image)
        if url is None:
            return "—"
        note = ""
        if row.is_placeholder:
            note = format_html(
                '<div class="nanobanana-muted">{} {}</div>',
                placeholder_badge(row),
                gettext(
                    "This image was made offline by the placeholder provider, not by the "
                    "model. Set a Replicate API token to generate real images."
                ),
            )
        return format_html(
            '<a href="{}" class="nanobanana-preview"><img src="{}" alt="{}"></a>{}',
            url,
            url,
            gettext("Generated image #%(pk)s") % {"pk": row.pk},
            note,
        )

    @admin.display(description=_("status"), ordering="status")
    def status_label(self, row: GeneratedImage) -> str:
        return status_badge(row)

    @admin.display(description=_("for"))
    def content_object_link(self, row: GeneratedImage) -> str:
        if not row.content_type_id:
            return "—"
        obj = row.content_object
        if obj is None:
            return gettext("%(model)s #%(id)s (deleted)") % {
                "model": capfirst(row.content_type.name),  # type: ignore[union-attr]
                "id": row.object_id,
            }
        url = admin_url(self.admin_site, obj._meta, "change", obj.pk)
        if url is None:
            return object_label(obj)
        return format_html('<a href="{}">{}</a>', url, object_label(obj))

    @admin.display(description=_("request"), ordering="model_name")
    def request_label(self, row: GeneratedImage) -> str:
        """Aspect ratio, resolution and model in one column, so the list fits beside the
        admin's navigation and filters at 1400 px."""
        params = row.input_params or {}
        values = [params.get(name) for name in ("aspect_ratio", "resolution")]
        return format_html(
            '<span class="nanobanana-nowrap">{}</span><div class="nanobanana-muted">{}</div>',
            " · ".join(str(value) for value in values if value) or "—",
            row.model_name,
        )

    @admin.display(description=_("created"), ordering="created_at")
    def created_label(self, row: GeneratedImage) -> str:
        """Date over time: one line is the widest cell in the list."""
        created = timezone.localtime(row.created_at)
        return format_html(
            '<span class="nanobanana-nowrap">{}</span><br>'
            '<span class="nanobanana-nowrap">{}</span>',
            date_format(created),
            time_format(created),
        )

    @admin.display(description=_("duration"))
    def duration_label(self, row: GeneratedImage) -> str:
        seconds = row.duration
        if seconds is None:
            return "—"
        return gettext("%(seconds).1f s") % {"seconds": seconds}

    @admin.display(description=_("error"))
    def error(self, row: GeneratedImage) -> str:
        if not row.error_message:
            return "—"
        return format_html(
            '<p class="nanobanana-error">{}</p><div class="nanobanana-muted">{}</div>',
            row.error_message,
            gettext("Error code: %(code)s") % {"code": row.error_code or "—"},
        )

    @admin.display(description=_("reference images"))
    def references_sent(self, row: GeneratedImage) -> str:
        return sent_references(row)

    @admin.display(description=_("steps"))
    def steps_label(self, row: GeneratedImage) -> str:
        """The generation and the steps run on its image, linked (docs/steps.md)."""
        return step_chain(self.admin_site, row)

    @admin.display(description=_("input parameters"))
    def parameters(self, row: GeneratedImage) -> str:
        params = row.input_params or {}
        if not params:
            return "—"
        return format_html(
            '<dl class="nanobanana-parameters">{}</dl>',
            format_html_join(
                "",
                "<dt>{}</dt><dd>{}</dd>",
                (
                    (name, Truncator(str(value)).chars(200))
                    for name, value in sorted(params.items())
                ),
            ),
        )

    @admin.display(description=_("grounding"))
    def grounding_label(self, row: GeneratedImage) -> str:
        return grounding.label(grounding.of_input(row.input_params))

    @admin.display(description=_("provider"))
    def provider_label(self, row: GeneratedImage) -> str:
        if row.is_placeholder:
            return format_html(
                "{} {}", placeholder_badge(row), gettext("offline placeholder provider")
            )
        return row.provider

    @admin.display(description=_("image file"))
    def image_facts(self, row: GeneratedImage) -> str:
        url = file_url(row.image)
        if url is None:
            return "—"
        facts = gettext("%(format)s, %(width)s × %(height)s px, %(size)s") % {
            "format": row.image_format or "?",
            "width": row.width or "?",
            "height": row.height or "?",
            "size": filesizeformat(row.size_bytes or 0),
        }
        return format_html(
            '<a href="{}">{}</a><div class="nanobanana-muted">{}</div>', url, row.image.name, facts
        )

    # Actions ------------------------------------------------------------------------------

    @admin.action(permissions=["generate"], description=_("Retry failed generations"))
    def retry_generations(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        def retry(row: GeneratedImage, image: str) -> str | None:
            if row.status not in (Status.FAILED, Status.CANCELED):
                return gettext("%(image)s has not failed") % {"image": image}
            return _queue_again(row, image)

        done, skipped = self._apply(request, queryset, retry)
        message = ngettext("Queued %(count)d retry.", "Queued %(count)d retries.", done)
        report(self, request, message % {"count": done} if done else None, skipped)

    @admin.action(
        permissions=["generate"],
        description=_("Cancel queued or running generations (at the provider too)"),
    )
    def cancel_generations(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        def cancel(row: GeneratedImage, image: str) -> str | None:
            if row.status not in Status.unfinished() or not cancel_generation(row):
                return gettext("%(image)s had already finished") % {"image": image}
            return None

        done, skipped = self._apply(request, queryset, cancel)
        message = ngettext(
            "Canceled %(count)d generation.", "Canceled %(count)d generations.", done
        )
        report(self, request, message % {"count": done} if done else None, skipped)

    @admin.action(
        permissions=["generate"],
        description=_("Regenerate with the same prompt (replaces the image)"),
    )
    def regenerate(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        def again(row: GeneratedImage, image: str) -> str | None:
            if not row.is_finished:
                return gettext("%(image)s is still in progress") % {"image": image}
            return _queue_again(row, image, overwrite=True)

        done, skipped = self._apply(request, queryset, again)
        message = ngettext(
            "Queued %(count)d new generation.", "Queued %(count)d new generations.", done
        )
        report(self, request, message % {"count": done} if done else None, skipped)

    @admin.action(permissions=["generate"], description=_("Use this image for its object"))
    def use_images(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        used: set[tuple[int | None, str]] = set()

        def use(row: GeneratedImage, image: str) -> str | None:
            reason = _why_not_attachable(row, image)
            if reason:
                return reason
            key = (row.content_type_id, row.object_id)
            if key in used:
                return gettext("%(image)s is for the same object as a newer selected image") % {
                    "image": image
                }
            used.add(key)
            use_generation(row)
            return None

        # Newest first: of two images selected for one object, the newer one is used.
        done, skipped = self._apply(request, queryset.order_by("-created_at", "-pk"), use)
        message = ngettext("Used %(count)d image.", "Used %(count)d images.", done)
        report(self, request, message % {"count": done} if done else None, skipped)

    def _apply(
        self,
        request: HttpRequest,
        queryset: models.QuerySet,
        operation: Callable[[GeneratedImage, str], str | None],
    ) -> tuple[int, list[str]]:
        """Run ``operation`` on each row the user may act on; it returns why it skipped one."""
        done, skipped = 0, []
        for row in queryset:
            image = gettext("image #%(pk)s") % {"pk": row.pk}
            if not self.may_act_on(request, row):
                skipped.append(
                    gettext("you may not change the object of %(image)s") % {"image": image}
                )
                continue
            reason = operation(row, image)
            if reason:
                skipped.append(reason)
            else:
                done += 1
        return done, skipped

    # Views --------------------------------------------------------------------------------

    @admin.display(description=_("cost"), ordering="cost")
    def cost_label(self, row: GeneratedImage) -> str:
        if row.cost is None:
            return "—"
        return f"{money(row.cost)} {row.currency}".strip()

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        warn_near_budget(request)
        extra_context = {
            **(extra_context or {}),
            "spend_url": admin_url(self.admin_site, self.opts, "spend"),
            **changelist_context(self),
        }
        return super().changelist_view(request, extra_context)

    def spend_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return spend_view(self, request)

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("spend/", view(self.spend_view), name=f"{prefix}_spend"),
            *review_urls(self),
            path(
                "<path:object_id>/use/",
                view(self.use_image_view),
                name=f"{prefix}_use",
            ),
            path("<path:object_id>/edit/", view(self.edit_view), name=f"{prefix}_edit"),
            path(
                "<path:object_id>/alt-text/",
                view(self.alt_text_view),
                name=f"{prefix}_alt_text",
            ),
            *(
                path(
                    f"<path:object_id>/{operation}/",
                    view(self.row_action_view),
                    {"operation": operation},
                    name=f"{prefix}_{operation}",
                )
                for operation in ROW_ACTIONS
            ),
            *super().get_urls(),
        ]

    def row_action_view(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        """Retry, cancel or regenerate one generation from its page (POST only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_generate_permission(request):
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=unquote(object_id))
        if not queryset.exists():
            raise Http404
        getattr(self, ROW_ACTIONS[operation])(request, queryset)
        return redirect(admin_url(self.admin_site, self.opts, "change", unquote(object_id)))  # type: ignore[arg-type]

    def edit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Queue an edit of one generation from the form on its page (admin/edits.py)."""
        return edit_view(self, request, object_id)

    def use_image_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then make a succeeded generation the image of its object."""
        row = self.get_object(request, unquote(object_id))
        if row is None:
            raise Http404
        if not self.may_act_on(request, row):
            raise PermissionDenied
        row_url = admin_url(self.admin_site, self.opts, "change", row.pk)
        reason = _why_not_attachable(row, gettext("image #%(pk)s") % {"pk": row.pk})
        if reason:
            self.message_user(request, capfirst(reason) + ".", messages.WARNING)
            return redirect(row_url)  # type: ignore[arg-type]
        obj = row.content_object
        object_url = admin_url(self.admin_site, obj._meta, "change", obj.pk)
        if request.method == "POST":
            use_generation(row)
            self.message_user(
                request,
                gettext("%(object)s now uses image #%(pk)s.")
                % {"object": object_label(obj), "pk": row.pk},
                messages.SUCCESS,
            )
            return redirect(object_url or row_url)  # type: ignore[arg-type]
        config = find_config(obj._meta.label)
        title = gettext("Use this image?")
        if object_url:
            crumbs = breadcrumbs(self.admin_site, obj._meta, (str(obj), object_url), (title, None))
        else:
            crumbs = breadcrumbs(self.admin_site, self.opts, (str(row), row_url), (title, None))
        context = {
            **self.admin_site.each_context(request),
            **crumbs,
            "title": title,
            "subtitle": None,
            "back_url": object_url or row_url,
            "opts": self.opts,
            "object_label": object_label(obj),
            "preview": image_thumbnail(row, "nanobanana-thumb nanobanana-thumb-large"),
            "current_image_url": current_image_url(obj, config) if config else None,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/nanobanana_django/generatedimage/use_image.html", context
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        row = self.get_object(request, unquote(object_id))
        tools = self._tools(request, row) if row is not None else []
        thread = thread_context(self, request, row) if row is not None else None
        alt_text = self._alt_text_editor(request, row) if row is not None else None
        return super().change_view(
            request,
            object_id,
            form_url,
            {
                **(extra_context or {}),
                "nanobanana_tools": tools,
                "nanobanana_thread": thread,
                "nanobanana_alt_text": alt_text,
            },
        )

    def alt_text_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Save an editor's alt text on the row, and on the object that shows the image."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        row = self.get_object(request, unquote(object_id))
        if row is None:
            raise Http404
        if not (self.has_generate_permission(request) and self.may_act_on(request, row)):
            raise PermissionDenied
        row_url = admin_url(self.admin_site, self.opts, "change", row.pk)
        text = " ".join(request.POST.get("alt_text", "").split())
        if len(text) > MAX_ALT_TEXT:
            self.message_user(
                request,
                gettext("Alt text not saved: it has %(count)s characters; keep it under %(max)s.")
                % {"count": len(text), "max": MAX_ALT_TEXT},
                messages.ERROR,
            )
            return redirect(row_url)  # type: ignore[arg-type]
        row.record(alt_text=text)
        if copy_to_object(row):
            message = gettext("Alt text saved, on %(object)s too.") % {
                "object": object_label(row.content_object)
            }
        else:
            message = gettext("Alt text saved.")
        self.message_user(request, message, messages.SUCCESS)
        return redirect(row_url)  # type: ignore[arg-type]

    def _alt_text_editor(self, request: HttpRequest, row: GeneratedImage) -> dict[str, Any]:
        editable = self.has_generate_permission(request) and self.may_act_on(request, row)
        model = row.content_type.model_class() if row.content_type is not None else None
        config = find_config(model._meta.label) if model is not None else None
        return {
            "value": row.alt_text,
            "editable": editable,
            "url": admin_url(self.admin_site, self.opts, "alt_text", row.pk),
            "max_length": MAX_ALT_TEXT,
            "copied_to": config.alt_text_field if config and config.alt_text_field else "",
        }

    def _tools(self, request: HttpRequest, row: GeneratedImage) -> list[dict[str, Any]]:
        """Buttons for what may be done with this row now."""
        if not (self.has_generate_permission(request) and self.may_act_on(request, row)):
            return []
        tools = []
        attachable = not _why_not_attachable(row, "")
        if attachable and not is_in_use(row, row.content_object):
            url = admin_url(self.admin_site, self.opts, "use", row.pk)
            tools.append({"label": gettext("Use this image"), "url": url, "post": False})
        wanted = {
            "retry": row.status in (Status.FAILED, Status.CANCELED),
            "cancel": row.status in Status.unfinished(),
            "regenerate": row.status == Status.SUCCEEDED,
        }
        labels = {
            "retry": gettext("Retry"),
            "cancel": gettext("Cancel generation"),
            "regenerate": gettext("Regenerate"),
        }
        for operation, shown in wanted.items():
            if shown:
                url = admin_url(self.admin_site, self.opts, operation, row.pk)
                tools.append({"label": labels[operation], "url": url, "post": True})
        return tools + review_tools(self, request, row)


MAX_ALT_TEXT = 500
"""Longer is not alt text any more: a screen reader reads it in one go."""

#: Row operations with their own URL (``<pk>/<operation>/``) and the action they run.
ROW_ACTIONS = {
    "retry": "retry_generations",
    "cancel": "cancel_generations",
    "regenerate": "regenerate",
}


def _queue_again(row: GeneratedImage, image: str, *, overwrite: bool | None = None) -> str | None:
    """Queue ``row``'s request again; returns why it could not be."""
    try:
        retry_generation(row, overwrite=overwrite)
    except AlreadyHasImage:
        return gettext(
            "the object of %(image)s already has an image (use “Regenerate” to replace it)"
        ) % {"image": image}
    except GenerationInProgress:
        return gettext("the object of %(image)s already has a generation queued or running") % {
            "image": image
        }
    except ValidationError as exc:
        return gettext("%(image)s cannot be sent again: %(problem)s") % {
            "image": image,
            "problem": " ".join(exc.messages),
        }
    return None


def _why_not_attachable(row: GeneratedImage, image: str) -> str | None:
    if row.status != Status.SUCCEEDED or not row.image:
        return gettext("%(image)s has no image to use") % {"image": image}
    if not row.content_type_id:
        return gettext("%(image)s is not for an object") % {"image": image}
    if row.content_object is None:
        return gettext("the object of %(image)s was deleted") % {"image": image}
    return None


def _objects_titled(term: str) -> Q | None:
    """Generations for registered objects whose title field contains ``term``."""
    found = Q()
    for config in content_configs():
        try:
            field = config.model._meta.get_field(config.title_field)
        except FieldDoesNotExist:
            continue  # a dotted path or a method: not searchable in the database
        if not isinstance(field, (models.CharField, models.TextField)):
            continue
        ids = list(
            config.model._default_manager.filter(**{f"{field.name}__icontains": term}).values_list(
                "pk", flat=True
            )[:500]
        )
        if ids:
            found |= Q(
                content_type=ContentType.objects.get_for_model(config.model),
                object_id__in=[str(pk) for pk in ids],
            )
    return found or None
