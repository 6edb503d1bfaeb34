"""The admin: a "Generate header image" action, each object's generation history, and
the ``GeneratedImage`` records with retry, cancel, regenerate and "use this image".

Every model in ``NANOBANANA["MODELS"]`` that has an admin gets the action and the history
without admin code: :func:`install_header_image_admin` adds them when the app is ready.
Admins on custom sites, or registered later, use :class:`HeaderImageAdminMixin` (or call
the function again). Nothing here generates inside a request: the services queue the
work, and the task runner decides where it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import django
from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.sites import AdminSite, all_sites
from django.contrib.admin.utils import model_ngettext, quote, unquote
from django.contrib.auth import get_permission_codename
from django.contrib.contenttypes.admin import GenericTabularInline
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import (
    FieldDoesNotExist,
    ImproperlyConfigured,
    PermissionDenied,
    ValidationError,
)
from django.db import models, transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .adapter import get_adapter
from .conf import app_settings
from .forms import GenerateHeaderImageForm
from .models import GeneratedImage
from .providers import get_provider_config
from .registry import ContentConfig, find_config, registered_configs
from .services import (
    AlreadyHasImage,
    GenerationInProgress,
    attach,
    cancel_generation,
    queue_generation,
    retry_generation,
)

Status = GeneratedImage.Status

ADMIN_MEDIA = forms.Media(css={"all": ["nanobanana_django/admin.css"]})

#: Objects listed on the action's page; the rest are counted.
LISTED_OBJECTS = 100
#: Reasons named in one "Skipped" message; the rest are counted.
LISTED_REASONS = 10


# Helpers ------------------------------------------------------------------------------


def _permission(model: type[models.Model], action: str) -> str:
    opts = model._meta
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


def _admin_url(site: AdminSite, opts: Any, view: str, *args: Any) -> str | None:
    """The URL of an admin view on ``site``, or None when that model is not registered there."""
    try:
        return reverse(
            f"{site.name}:{opts.app_label}_{opts.model_name}_{view}",
            args=[quote(arg) for arg in args],
        )
    except NoReverseMatch:
        return None


def _breadcrumbs(site: AdminSite, opts: Any, *trail: tuple[str, str | None]) -> dict[str, Any]:
    """Context for ``includes/breadcrumbs.html``: Home, the app, the model, then ``trail``.

    Django 6 renders breadcrumbs as a list (``<ol>``), earlier versions as a ``<div>``.
    """
    crumbs = [
        (gettext("Home"), reverse(f"{site.name}:index")),
        (
            opts.app_config.verbose_name,
            reverse(f"{site.name}:app_list", kwargs={"app_label": opts.app_label}),
        ),
        (capfirst(opts.verbose_name_plural), _admin_url(site, opts, "changelist")),
        *trail,
    ]
    return {"breadcrumbs": crumbs, "breadcrumbs_as_list": django.VERSION >= (6, 0)}


def _object_label(obj: models.Model) -> str:
    """``Article “Ten quiet cafés”``, as the admin names objects in its messages."""
    return gettext("%(model)s “%(object)s”") % {
        "model": capfirst(obj._meta.verbose_name),
        "object": obj,
    }


def _file_url(file: Any) -> str | None:
    if not file:
        return None
    try:
        return file.url
    except (ValueError, NotImplementedError):
        return None


def _current_image_url(obj: models.Model, config: ContentConfig) -> str | None:
    value = getattr(obj, config.image_field)
    if isinstance(value, GeneratedImage):
        return _file_url(value.image)
    return _file_url(value)


def _is_in_use(row: GeneratedImage, obj: models.Model | None) -> bool:
    """Whether ``row`` is the image ``obj`` shows now."""
    if obj is None or not row.image or not row.target_field:
        return False
    try:
        field = obj._meta.get_field(row.target_field)
    except FieldDoesNotExist:
        return False
    current = getattr(obj, field.attname)
    if isinstance(field, models.ForeignKey):
        return current == row.pk
    return bool(current) and str(current) == row.image.name


def _thumbnail(row: GeneratedImage, css_class: str = "nanobanana-thumb") -> str:
    url = _file_url(row.image)
    if url is None:
        return "—"
    badge = _placeholder_badge(row)
    return format_html(
        '<span class="{}"><img src="{}" alt="{}" loading="lazy">{}</span>',
        css_class,
        url,
        gettext("Generated image #%(pk)s") % {"pk": row.pk},
        badge,
    )


def _placeholder_badge(row: GeneratedImage) -> str:
    if not row.is_placeholder:
        return ""
    return format_html(
        '<span class="nanobanana-badge nanobanana-placeholder" title="{}">{}</span>',
        gettext("Made offline by the placeholder provider, not by the model."),
        gettext("Placeholder"),
    )


def _status_badge(row: GeneratedImage) -> str:
    return format_html(
        '<span class="nanobanana-status nanobanana-status-{}">{}</span>',
        row.status,
        row.get_status_display(),
    )


def _request_summary(row: GeneratedImage) -> str:
    """``16:9 · 1K · jpg``: the inputs an editor chooses."""
    params = row.input_params or {}
    values = [params.get(name) for name in ("aspect_ratio", "resolution", "output_format")]
    return " · ".join(str(value) for value in values if value) or "—"


def _report(
    modeladmin: admin.ModelAdmin, request: HttpRequest, done: str | None, skipped: list[str]
) -> None:
    """One message for what was done, one warning naming what was skipped and why."""
    if done:
        modeladmin.message_user(request, done, messages.SUCCESS)
    if skipped:
        reasons = "; ".join(skipped[:LISTED_REASONS])
        if len(skipped) > LISTED_REASONS:
            reasons += " " + gettext("and %(count)d more") % {
                "count": len(skipped) - LISTED_REASONS
            }
        modeladmin.message_user(
            request,
            gettext("Skipped %(count)d: %(reasons)s.")
            % {"count": len(skipped), "reasons": reasons},
            messages.WARNING,
        )


def _validation_messages(exc: ValidationError) -> Iterable[tuple[str | None, str]]:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            for error in errors:
                yield field, error
    else:
        for error in exc.messages:
            yield None, error


# The "Generate header image" action ---------------------------------------------------


@dataclass(frozen=True)
class _Selected:
    """One selected object, as the action's page shows it."""

    obj: models.Model
    change_url: str | None
    image_url: str | None
    has_image: bool
    in_progress: bool
    prompt: str


@admin.action(permissions=["change"], description=_("Generate header image"))
def generate_header_image(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: models.QuerySet
) -> HttpResponse | None:
    """Ask for the inputs on an intermediate page, then queue one generation per object."""
    if not modeladmin.has_change_permission(request):
        raise PermissionDenied
    opts = modeladmin.model._meta
    config = find_config(opts.label)
    if config is None:
        modeladmin.message_user(
            request,
            gettext("%(models)s are not registered for header images in NANOBANANA['MODELS'].")
            % {"models": capfirst(opts.verbose_name_plural)},
            messages.ERROR,
        )
        return None

    objects = list(queryset)
    several = len(objects) > 1
    form_options = {
        "spec": get_provider_config(config.provider).spec(),
        "defaults": {**app_settings.DEFAULT_INPUT, **config.input},
        "several": several,
        "initial": {} if several else {"prompt": get_adapter().build_prompt(objects[0], config)},
    }
    if not request.POST.get("post"):
        form = GenerateHeaderImageForm(**form_options)
    else:
        form = GenerateHeaderImageForm(request.POST, **form_options)
        if form.is_valid():
            try:
                # All or nothing: a rejected input rolls back the rows queued before it,
                # and their on_commit hand-over to the task runner with them.
                with transaction.atomic():
                    queued, skipped = _queue_generations(modeladmin, request, objects, form)
            except ValidationError as exc:
                for field, error in _validation_messages(exc):
                    if field in form.fields:
                        form.add_error(field, error)
                    else:
                        form.add_error(None, f"{field}: {error}" if field else error)
            else:
                done = (
                    ngettext(
                        "Queued %(count)d header image.", "Queued %(count)d header images.", queued
                    )
                    % {"count": queued}
                    if queued
                    else None
                )
                _report(modeladmin, request, done, skipped)
                return None
    return _generate_page(modeladmin, request, objects, config, form)


def _queue_generations(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: list[models.Model],
    form: GenerateHeaderImageForm,
) -> tuple[int, list[str]]:
    queued, skipped = 0, []
    for obj in objects:
        label = _object_label(obj)
        if not modeladmin.has_change_permission(request, obj):
            skipped.append(gettext("you may not change %(object)s") % {"object": label})
            continue
        try:
            queue_generation(
                obj,
                prompt=form.prompt_override(),
                input=form.model_input(),
                overwrite=form.cleaned_data["replace"],
            )
        except AlreadyHasImage:
            skipped.append(
                gettext("%(object)s already has an image (choose “Replace existing images”)")
                % {"object": label}
            )
        except GenerationInProgress:
            skipped.append(
                gettext("%(object)s already has a generation queued or running") % {"object": label}
            )
        else:
            queued += 1
    return queued, skipped


def _generate_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: list[models.Model],
    config: ContentConfig,
    form: GenerateHeaderImageForm,
) -> TemplateResponse:
    site = modeladmin.admin_site
    opts = modeladmin.model._meta
    several = len(objects) > 1
    adminform = helpers.AdminForm(
        form, [(_("Image"), {"fields": list(form.fields)})], {}, model_admin=modeladmin
    )
    title = gettext("Generate header images")
    context = {
        **site.each_context(request),
        **_breadcrumbs(site, opts, (title, None)),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "back_url": request.get_full_path(),
        "objects_name": model_ngettext(opts, len(objects)),
        "selected": [obj.pk for obj in objects],
        "listed": _describe(site, objects[:LISTED_OBJECTS], config, with_prompts=several),
        "unlisted": max(0, len(objects) - LISTED_OBJECTS),
        "several": several,
        "adminform": adminform,
        "form": form,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action_name": generate_header_image.__name__,
        "history_url": _admin_url(site, GeneratedImage._meta, "changelist"),
        "media": modeladmin.media + adminform.media + ADMIN_MEDIA,
    }
    request.current_app = site.name
    return TemplateResponse(
        request,
        [
            f"admin/{opts.app_label}/{opts.model_name}/generate_header_image.html",
            f"admin/{opts.app_label}/generate_header_image.html",
            "admin/nanobanana_django/generate_header_image.html",
        ],
        context,
    )


def _describe(
    site: AdminSite, objects: list[models.Model], config: ContentConfig, *, with_prompts: bool
) -> list[_Selected]:
    if not objects:
        return []
    busy = set(
        GeneratedImage.objects.unfinished()
        .filter(
            content_type=ContentType.objects.get_for_model(config.model),
            object_id__in=[str(obj.pk) for obj in objects],
        )
        .values_list("object_id", flat=True)
    )
    adapter = get_adapter()
    return [
        _Selected(
            obj=obj,
            change_url=_admin_url(site, obj._meta, "change", obj.pk),
            image_url=_current_image_url(obj, config),
            has_image=config.has_image(obj, fresh=False),
            in_progress=str(obj.pk) in busy,
            prompt=adapter.build_prompt(obj, config) if with_prompts else "",
        )
        for obj in objects
    ]


# Generation history on the content object's page ---------------------------------------


class GenerationHistoryInline(GenericTabularInline):
    """An object's generations, newest first; any succeeded one can be put back."""

    model = GeneratedImage
    ct_field = "content_type"
    ct_fk_field = "object_id"
    fields = ("preview", "status_label", "created_at", "request_summary", "use_link")
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
        return _thumbnail(row, "nanobanana-thumb nanobanana-thumb-large")

    @admin.display(description=_("status"))
    def status_label(self, row: GeneratedImage) -> str:
        if row.error_message:
            return format_html(
                '{}<div class="nanobanana-muted">{}</div>',
                _status_badge(row),
                Truncator(row.error_message).chars(160),
            )
        return _status_badge(row)

    @admin.display(description=_("inputs"))
    def request_summary(self, row: GeneratedImage) -> str:
        return _request_summary(row)

    @admin.display(description=_("header image"))
    def use_link(self, row: GeneratedImage) -> str:
        if _is_in_use(row, row.content_object):
            return format_html(
                '<span class="nanobanana-badge nanobanana-in-use">{}</span>', gettext("In use")
            )
        if (
            row.status != Status.SUCCEEDED
            or not row.image
            or not getattr(self, "can_attach", False)
        ):
            return "—"
        url = _admin_url(self.admin_site, GeneratedImage._meta, "use", row.pk)
        if url is None:
            return "—"
        return format_html(
            '<a role="button" class="button nanobanana-use-button" href="{}">{}</a>',
            url,
            gettext("Use this image"),
        )


# Adding the action and the history to admins --------------------------------------------


def add_header_image_admin(model_admin: admin.ModelAdmin) -> None:
    """Give one ``ModelAdmin`` the action and the generation history (idempotent).

    An admin with ``actions = None`` (actions turned off) gets only the history.
    """
    actions = model_admin.actions
    if actions is not None:
        names = {action if isinstance(action, str) else action.__name__ for action in actions}
        if generate_header_image.__name__ not in names:
            model_admin.actions = [*actions, generate_header_image]
    inlines = model_admin.inlines
    if not any(issubclass(inline, GenerationHistoryInline) for inline in inlines):
        model_admin.inlines = [*inlines, GenerationHistoryInline]


class HeaderImageAdminMixin:
    """Adds "Generate header image" and the generation history to a ``ModelAdmin``.

    Only needed for admins the app cannot find by itself: those on a site created after
    the app is ready (in ``urls.py``, say)::

        class ArticleAdmin(HeaderImageAdminMixin, admin.ModelAdmin):
            ...
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_header_image_admin(self)  # type: ignore[arg-type]


def install_header_image_admin(*sites: AdminSite) -> None:
    """Add the action and the history to the admin of every model in ``NANOBANANA["MODELS"]``.

    Without arguments, on every admin site that exists; ``NanoBananaConfig.ready()`` calls
    it so. Call it again with a site whose models are registered later.
    """
    if not sites:
        _autodiscover()
        sites = tuple(all_sites)
    for site in sites:
        for config in _configs():
            model_admin = site._registry.get(config.model)
            if model_admin is not None:
                add_header_image_admin(model_admin)


def _autodiscover() -> None:
    """Import every app's ``admin`` module, as ``django.contrib.admin`` does when it is ready.

    A no-op when it has done so already (it usually comes first in ``INSTALLED_APPS``);
    otherwise this app would be ready before the admins it adds to are registered.
    """
    if any(isinstance(config, AdminConfig) for config in apps.get_app_configs()):
        admin.autodiscover()


# The GeneratedImage records ---------------------------------------------------------------


@admin.register(GeneratedImage)
class GeneratedImageAdmin(admin.ModelAdmin):
    """Generations are records of what the provider did: read-only, with actions."""

    list_display = (
        "thumbnail",
        "status_label",
        "content_object_link",
        "request_label",
        "duration_label",
        "created_label",
    )
    list_filter = ("status", "provider", "model_name", "created_at")
    search_fields = ("prompt", "prediction_id", "=object_id")
    search_help_text = _("Search the prompt, the prediction id, or the title or id of the object.")
    date_hierarchy = "created_at"
    list_select_related = ("content_type",)
    actions = ("retry_generations", "cancel_generations", "regenerate", "use_images")
    fieldsets = (
        (None, {"fields": ("preview", "status_label", "content_object_link", "error")}),
        (
            _("Request"),
            {
                "fields": (
                    "prompt",
                    "parameters",
                    "model_name",
                    "provider_label",
                    "overwrite",
                    "target_field",
                )
            },
        ),
        (_("Result"), {"fields": ("image_facts", "prediction_id", "predict_time")}),
        (
            _("Timings"),
            {"fields": ("created_at", "started_at", "finished_at", "duration_label", "attempts")},
        ),
    )
    readonly_fields = (
        "preview",
        "status_label",
        "content_object_link",
        "error",
        "parameters",
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
        candidates = [GeneratedImage, *(config.model for config in _configs())]
        return any(user.has_perm(_permission(model, "change")) for model in candidates)

    def may_act_on(self, request: HttpRequest, row: GeneratedImage) -> bool:
        """Acting on a generation needs change permission on the object it is for."""
        if not row.content_type_id:
            return request.user.has_perm(_permission(GeneratedImage, "change"))
        model = row.content_type.model_class()
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
        return _thumbnail(row)

    @admin.display(description=_("image"))
    def preview(self, row: GeneratedImage) -> str:
        url = _file_url(row.image)
        if url is None:
            return "—"
        note = ""
        if row.is_placeholder:
            note = format_html(
                '<div class="nanobanana-muted">{} {}</div>',
                _placeholder_badge(row),
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
        return _status_badge(row)

    @admin.display(description=_("for"))
    def content_object_link(self, row: GeneratedImage) -> str:
        if not row.content_type_id:
            return "—"
        obj = row.content_object
        if obj is None:
            return gettext("%(model)s #%(id)s (deleted)") % {
                "model": capfirst(row.content_type.name),
                "id": row.object_id,
            }
        url = _admin_url(self.admin_site, obj._meta, "change", obj.pk)
        if url is None:
            return _object_label(obj)
        return format_html('<a href="{}">{}</a>', url, _object_label(obj))

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

    @admin.display(description=_("provider"))
    def provider_label(self, row: GeneratedImage) -> str:
        if row.is_placeholder:
            return format_html(
                "{} {}", _placeholder_badge(row), gettext("offline placeholder provider")
            )
        return row.provider

    @admin.display(description=_("image file"))
    def image_facts(self, row: GeneratedImage) -> str:
        url = _file_url(row.image)
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
        _report(self, request, message % {"count": done} if done else None, skipped)

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
        _report(self, request, message % {"count": done} if done else None, skipped)

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
        _report(self, request, message % {"count": done} if done else None, skipped)

    @admin.action(permissions=["generate"], description=_("Use this image for its object"))
    def use_images(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        used: set[tuple[int, str]] = set()

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
            attach(row, overwrite=True)
            return None

        # Newest first: of two images selected for one object, the newer one is used.
        done, skipped = self._apply(request, queryset.order_by("-created_at", "-pk"), use)
        message = ngettext("Used %(count)d image.", "Used %(count)d images.", done)
        _report(self, request, message % {"count": done} if done else None, skipped)

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

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/use/",
                view(self.use_image_view),
                name=f"{prefix}_use",
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
        return redirect(_admin_url(self.admin_site, self.opts, "change", unquote(object_id)))

    def use_image_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then make a succeeded generation the image of its object."""
        row = self.get_object(request, unquote(object_id))
        if row is None:
            raise Http404
        if not self.may_act_on(request, row):
            raise PermissionDenied
        row_url = _admin_url(self.admin_site, self.opts, "change", row.pk)
        reason = _why_not_attachable(row, gettext("image #%(pk)s") % {"pk": row.pk})
        if reason:
            self.message_user(request, capfirst(reason) + ".", messages.WARNING)
            return redirect(row_url)
        obj = row.content_object
        object_url = _admin_url(self.admin_site, obj._meta, "change", obj.pk)
        if request.method == "POST":
            attach(row, overwrite=True)
            self.message_user(
                request,
                gettext("%(object)s now uses image #%(pk)s.")
                % {"object": _object_label(obj), "pk": row.pk},
                messages.SUCCESS,
            )
            return redirect(object_url or row_url)
        config = find_config(obj._meta.label)
        title = gettext("Use this image?")
        if object_url:
            crumbs = _breadcrumbs(self.admin_site, obj._meta, (str(obj), object_url), (title, None))
        else:
            crumbs = _breadcrumbs(self.admin_site, self.opts, (str(row), row_url), (title, None))
        context = {
            **self.admin_site.each_context(request),
            **crumbs,
            "title": title,
            "subtitle": None,
            "back_url": object_url or row_url,
            "opts": self.opts,
            "object_label": _object_label(obj),
            "preview": _thumbnail(row, "nanobanana-thumb nanobanana-thumb-large"),
            "current_image_url": _current_image_url(obj, config) if config else None,
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
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "nanobanana_tools": tools}
        )

    def _tools(self, request: HttpRequest, row: GeneratedImage) -> list[dict[str, Any]]:
        """Buttons for what may be done with this row now."""
        if not (self.has_generate_permission(request) and self.may_act_on(request, row)):
            return []
        tools = []
        attachable = not _why_not_attachable(row, "")
        if attachable and not _is_in_use(row, row.content_object):
            url = _admin_url(self.admin_site, self.opts, "use", row.pk)
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
                url = _admin_url(self.admin_site, self.opts, operation, row.pk)
                tools.append({"label": labels[operation], "url": url, "post": True})
        return tools


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
    for config in _configs():
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


def _configs() -> list[ContentConfig]:
    """The registered models; none while the setting is broken (the system checks say why)."""
    try:
        return registered_configs()
    except ImproperlyConfigured:
        return []
