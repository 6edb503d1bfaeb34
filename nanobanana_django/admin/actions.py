"""The "Generate header image" action: a page asking for the inputs, then one queued
generation per selected object. Nothing is generated inside the request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.sites import AdminSite
from django.contrib.admin.utils import model_ngettext
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import grounding
from ..conf import app_settings
from ..forms import GenerateHeaderImageForm
from ..models import GeneratedImage
from ..presets import get_presets
from ..providers import get_provider_config
from ..references import store_uploads
from ..registry import ContentConfig, find_config
from ..services import AlreadyHasImage, GenerationInProgress, build_prompt, queue_generation
from ..steps import get_steps
from .display import admin_url, breadcrumbs, current_image_url, object_label, report
from .review import after_candidates, candidates_confirmed, candidates_notice, queue_candidates

ADMIN_MEDIA = forms.Media(css={"all": ["nanobanana_django/admin.css"]})

#: Objects listed on the action's page; the rest are counted.
LISTED_OBJECTS = 100


def _validation_messages(exc: ValidationError) -> Iterable[tuple[str | None, str]]:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            for error in errors:
                yield field, error
    else:
        for error in exc.messages:
            yield None, error


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
    presets = get_presets()
    default = presets.get(config.preset) if config.preset else None
    form_options: dict[str, Any] = {
        "spec": get_provider_config(config.provider or (default and default.provider)).spec(),  # type: ignore[arg-type]
        "defaults": {
            **app_settings.DEFAULT_INPUT,
            **(default.input if default else {}),
            **config.input,
        },
        "several": several,
        "presets": [(name, preset.label) for name, preset in presets.items()],
        "default_preset": config.preset,
        "grounding": grounding.configured(
            (app_settings.DEFAULT_INPUT, None),
            (default.input if default else None, default.grounding if default else None),
            (config.input, config.grounding),
        ),
        "initial": {} if several else {"prompt": build_prompt(objects[0])},
        "steps": [(name, step.label) for name, step in get_steps().items()],
        "default_steps": default.steps if default else (),
    }
    if not request.POST.get("post"):
        form = GenerateHeaderImageForm(**form_options)
    else:
        form = GenerateHeaderImageForm(request.POST, request.FILES, **form_options)
        notice = (
            candidates_notice(form, config, objects, uploads=bool(request.FILES))
            if form.is_valid()
            else None
        )
        if notice and not candidates_confirmed(request, form):
            return _generate_page(modeladmin, request, objects, config, form, notice)
        if form.is_valid():
            try:
                # All or nothing: a rejected input rolls back the rows queued before it,
                # and their on_commit hand-over to the task runner with them.
                with transaction.atomic():
                    queued, skipped, batches = _queue_generations(
                        modeladmin, request, objects, form
                    )
            except ValidationError as exc:
                for field, error in _validation_messages(exc):
                    if field in form.fields:
                        form.add_error(field, error)
                    else:
                        form.add_error(None, f"{field}: {error}" if field else error)
            else:
                if batches:
                    report(modeladmin, request, None, skipped)
                    return after_candidates(modeladmin, request, batches)
                done = (
                    ngettext(
                        "Queued %(count)d header image.", "Queued %(count)d header images.", queued
                    )
                    % {"count": queued}
                    if queued
                    else None
                )
                report(modeladmin, request, done, skipped)
                return None
    return _generate_page(modeladmin, request, objects, config, form)


def _queue_generations(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: list[models.Model],
    form: GenerateHeaderImageForm,
) -> tuple[int, list[str], list[list[GeneratedImage]]]:
    queued, skipped, batches = 0, [], []
    # Uploaded once, shared by every selected object's generation.
    own = store_uploads(form.reference_files()) if "references" in form.fields else []
    chosen = form.reference_set_choice() if "reference_set" in form.fields else None
    references = [*([chosen] if chosen else []), *own] or None
    for obj in objects:
        label = object_label(obj)
        if not modeladmin.has_change_permission(request, obj):
            skipped.append(gettext("you may not change %(object)s") % {"object": label})
            continue
        try:
            if form.candidate_count() > 1:
                batches.append(queue_candidates(obj, form, references))
                continue
            queue_generation(
                obj,
                prompt=form.prompt_override(),
                input=form.model_input(),
                overwrite=form.cleaned_data["replace"],
                preset=form.preset_choice(),
                grounding=form.grounding_choice(),
                references=references,
                steps=form.steps_choice(),
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
    return queued, skipped, batches


def _generate_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: list[models.Model],
    config: ContentConfig,
    form: GenerateHeaderImageForm,
    candidates_notice: str | None = None,
) -> TemplateResponse:
    site = modeladmin.admin_site
    opts = modeladmin.model._meta
    several = len(objects) > 1
    adminform = helpers.AdminForm(
        form,  # type: ignore[arg-type]  # a plain Form: AdminForm only reads its fields
        [(_("Image"), {"fields": list(form.fields)})],
        {},
        model_admin=modeladmin,
    )
    title = gettext("Generate header images")
    context = {
        **site.each_context(request),
        **breadcrumbs(site, opts, (title, None)),
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
        "history_url": admin_url(site, GeneratedImage._meta, "changelist"),
        "media": modeladmin.media + adminform.media + ADMIN_MEDIA,
        "candidates_notice": candidates_notice,
        "candidates": form.candidate_count() if candidates_notice else None,
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
    return [
        _Selected(
            obj=obj,
            change_url=admin_url(site, obj._meta, "change", obj.pk),
            image_url=current_image_url(obj, config),
            has_image=config.has_image(obj, fresh=False),
            in_progress=str(obj.pk) in busy,
            prompt=build_prompt(obj) if with_prompts else "",
        )
        for obj in objects
    ]
