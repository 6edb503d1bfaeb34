"""Approval and variants in the admin: the review queue, the candidates side by side, the
bulk approve and reject actions, the count of waiting images, and the "Candidates" step of
the "Generate header image" action (what several candidates will be billed, said before
they are made).

The views hang off the ``GeneratedImage`` admin (its ``get_urls``): ``review/`` and
``variants/<batch>/``. Each change needs change permission on the image's object, as the
admin's other row actions do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..costs import money
from ..forms import GenerateHeaderImageForm
from ..models import GeneratedImage
from ..presets import get_presets
from ..providers import get_provider_config
from ..registry import ContentConfig
from ..review import awaiting_review, config_of
from ..services import (
    AlreadyHasImage,
    CannotReview,
    GenerationInProgress,
    approve_generation,
    choose_variant,
    queue_variants,
    reject_generation,
    retry_generation,
)
from ..variants import estimated_cost, is_chosen
from .display import admin_url, breadcrumbs, current_image_url, image_thumbnail, object_label

Status = GeneratedImage.Status
Review = GeneratedImage.Review

#: Images listed on one page of the review queue; the rest are counted.
QUEUE_PAGE = 50


# The count, the links and the buttons -------------------------------------------------------


def waiting_count() -> int:
    return awaiting_review().count()


def changelist_context(model_admin: admin.ModelAdmin) -> dict[str, Any]:
    """What the Generated images list shows of the queue: its link and how many wait."""
    return {
        "review_url": admin_url(model_admin.admin_site, model_admin.opts, "review"),
        "review_count": waiting_count(),
    }


def review_tools(model_admin: Any, request: HttpRequest, row: GeneratedImage) -> list[dict]:
    """Buttons for a generation's page: compare its candidates, review it."""
    tools = []
    site, opts = model_admin.admin_site, model_admin.opts
    if row.batch:
        url = admin_url(site, opts, "variants", row.batch)
        tools.append({"label": gettext("Compare candidates"), "url": url, "post": False})
    if row.review == Review.PENDING and row.status == Status.SUCCEEDED:
        tools.append(
            {
                "label": gettext("Review queue"),
                "url": admin_url(site, opts, "review"),
                "post": False,
            }
        )
    return tools


def review_urls(model_admin: Any) -> list[Any]:
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"
    view = model_admin.admin_site.admin_view
    return [
        path(
            "review/",
            view(lambda request: review_queue_view(model_admin, request)),
            name=f"{prefix}_review",
        ),
        path(
            "variants/<uuid:batch>/",
            view(lambda request, batch: variants_view(model_admin, request, batch)),
            name=f"{prefix}_variants",
        ),
    ]


# Bulk actions on the Generated images list ---------------------------------------------------


@admin.action(permissions=["generate"], description=_("Approve images awaiting review"))
def approve_generations(modeladmin: Any, request: HttpRequest, queryset: models.QuerySet) -> None:
    _approve(modeladmin, request, queryset)


@admin.action(permissions=["generate"], description=_("Reject images awaiting review"))
def reject_generations(modeladmin: Any, request: HttpRequest, queryset: models.QuerySet) -> None:
    _reject(modeladmin, request, queryset)


def _approve(
    model_admin: Any, request: HttpRequest, queryset: models.QuerySet, *, replace: bool = False
) -> None:
    chosen: set[uuid.UUID] = set()

    def approve(row: GeneratedImage, image: str) -> str | None:
        if row.batch and row.batch in chosen:
            return gettext("%(image)s is a candidate of a batch already chosen from") % {
                "image": image
            }
        reason = _attempt(lambda: approve_generation(row, replace=replace))
        if reason is None and row.batch:
            chosen.add(row.batch)
        return reason

    done, skipped = model_admin._apply(request, queryset.order_by("created_at", "pk"), approve)
    message = ngettext(
        "Approved %(count)d image: it is now its object's image.",
        "Approved %(count)d images: each is now its object's image.",
        done,
    )
    _report(model_admin, request, message % {"count": done} if done else None, skipped)


def _reject(model_admin: Any, request: HttpRequest, queryset: models.QuerySet) -> None:
    def reject(row: GeneratedImage, image: str) -> str | None:
        return _attempt(lambda: reject_generation(row))

    done, skipped = model_admin._apply(request, queryset, reject)
    message = ngettext(
        "Rejected %(count)d image; its object was left as it was.",
        "Rejected %(count)d images; their objects were left as they were.",
        done,
    )
    _report(model_admin, request, message % {"count": done} if done else None, skipped)


def _regenerate(model_admin: Any, request: HttpRequest, queryset: models.QuerySet) -> None:
    """Reject the image and ask for a new one for its object (which waits for review too)."""

    def again(row: GeneratedImage, image: str) -> str | None:
        if row.review != Review.PENDING:
            return gettext("%(image)s is not awaiting review") % {"image": image}
        try:
            with transaction.atomic():
                retry_generation(row)
                reject_generation(row)
        except GenerationInProgress:
            return gettext("the object of %(image)s already has a generation queued or running") % {
                "image": image
            }
        except AlreadyHasImage:
            return gettext("the object of %(image)s has an image now") % {"image": image}
        return None

    done, skipped = model_admin._apply(request, queryset, again)
    message = ngettext(
        "Queued %(count)d new image in place of the rejected one.",
        "Queued %(count)d new images in place of the rejected ones.",
        done,
    )
    _report(model_admin, request, message % {"count": done} if done else None, skipped)


def _attempt(operation: Callable[[], Any]) -> str | None:
    """Run a review operation; its refusal, as the reason an image was skipped."""
    try:
        operation()
    except (CannotReview, AlreadyHasImage) as exc:
        return exc.message  # it names the image
    return None


def _report(model_admin: Any, request: HttpRequest, done: str | None, skipped: list[str]) -> None:
    if done:
        model_admin.message_user(request, done, messages.SUCCESS)
    for reason in skipped[:10]:
        model_admin.message_user(request, capfirst(reason.rstrip(".")) + ".", messages.WARNING)
    if len(skipped) > 10:
        model_admin.message_user(
            request,
            gettext("…and %(count)d more skipped.") % {"count": len(skipped) - 10},
            messages.WARNING,
        )


# The review queue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Waiting:
    """One image in the queue, as the page shows it."""

    row: GeneratedImage
    thumbnail: str
    obj: models.Model | None
    object_url: str | None
    current_image_url: str | None
    blocked: bool  # the object has an image this row may not replace
    prompt: str
    change_url: str | None
    variants_url: str | None
    candidates: int


OPERATIONS = {
    "approve": lambda admin_, request, rows: _approve(admin_, request, rows),
    "replace": lambda admin_, request, rows: _approve(admin_, request, rows, replace=True),
    "reject": _reject,
    "regenerate": _regenerate,
}


def review_queue_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """Images awaiting review, oldest first, with approve / reject / regenerate / edit each
    and approve or reject for those selected."""
    site, opts = model_admin.admin_site, model_admin.opts
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    queue_url = admin_url(site, opts, "review") or request.path
    if request.method == "POST":
        if not model_admin.has_generate_permission(request):
            raise PermissionDenied
        operation, _sep, target = request.POST.get("do", "").partition(":")
        if operation not in OPERATIONS:
            return redirect(queue_url)
        ids = request.POST.getlist("selected") if target == "selected" else [target]
        rows = GeneratedImage.objects.filter(pk__in=[pk for pk in ids if pk.isdigit()])
        if not rows.exists():
            model_admin.message_user(
                request, gettext("Select the images to act on first."), messages.WARNING
            )
        else:
            OPERATIONS[operation](model_admin, request, rows)
        return redirect(queue_url)
    waiting = awaiting_review().select_related("content_type").prefetch_related("content_object")
    total = waiting.count()
    title = gettext("Images awaiting review")
    context = {
        **site.each_context(request),
        **breadcrumbs(site, opts, (title, None)),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "items": _describe_waiting(model_admin, list(waiting[:QUEUE_PAGE])),
        "total": total,
        "unlisted": max(0, total - QUEUE_PAGE),
        "may_act": model_admin.has_generate_permission(request),
        "history_url": admin_url(site, opts, "changelist"),
        "media": model_admin.media,
    }
    request.current_app = site.name
    return TemplateResponse(
        request, "admin/nanobanana_django/generatedimage/review_queue.html", context
    )


def _describe_waiting(model_admin: Any, rows: list[GeneratedImage]) -> list[_Waiting]:
    site, opts = model_admin.admin_site, model_admin.opts
    sizes = dict(
        GeneratedImage.objects.filter(batch__in={row.batch for row in rows if row.batch})
        .values("batch")
        .annotate(n=models.Count("pk"))
        .values_list("batch", "n")
    )
    items = []
    for row in rows:
        obj = row.content_object if row.content_type_id else None
        config = config_of(row)
        current = current_image_url(obj, config) if obj is not None and config else None
        has_image = bool(obj is not None and config and config.has_image(obj, fresh=False))
        items.append(
            _Waiting(
                row=row,
                thumbnail=image_thumbnail(row, "nanobanana-thumb nanobanana-thumb-large"),
                obj=obj,
                object_url=admin_url(site, obj._meta, "change", obj.pk) if obj else None,
                current_image_url=current,
                blocked=has_image and not row.overwrite and not row.batch,
                prompt=Truncator(row.prompt).chars(300),
                change_url=admin_url(site, opts, "change", row.pk),
                variants_url=admin_url(site, opts, "variants", row.batch) if row.batch else None,
                candidates=sizes.get(row.batch, 1) if row.batch else 1,
            )
        )
    return items


class ReviewFilter(admin.SimpleListFilter):
    """The list's review filter: "Awaiting review" lists what the review queue lists (made
    images waiting for an editor), not rows that failed or are still being made."""

    title = _("review")
    parameter_name = "review"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            (str(Review.PENDING), _("Awaiting review")),
            (str(Review.APPROVED), _("Approved")),
            (str(Review.REJECTED), _("Rejected")),
        ]

    def queryset(
        self, request: HttpRequest, queryset: models.QuerySet[GeneratedImage]
    ) -> models.QuerySet[GeneratedImage]:
        value = self.value()
        if value == Review.PENDING:
            return queryset.filter(pk__in=awaiting_review().values("pk"))
        if value in (Review.APPROVED, Review.REJECTED):
            return queryset.filter(review=value)
        return queryset


# Candidates side by side -------------------------------------------------------------------------


def variants_view(model_admin: Any, request: HttpRequest, batch: uuid.UUID) -> HttpResponse:
    """The candidates of one request side by side; the editor picks the one to attach."""
    site, opts = model_admin.admin_site, model_admin.opts
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    rows = list(GeneratedImage.objects.filter(batch=batch).order_by("pk"))
    if not rows:
        raise Http404
    here = admin_url(site, opts, "variants", batch) or request.path
    if request.method == "POST":
        picked = next((row for row in rows if str(row.pk) == request.POST.get("choose")), None)
        if picked is None:
            return redirect(here)
        if not (
            model_admin.has_generate_permission(request) and model_admin.may_act_on(request, picked)
        ):
            raise PermissionDenied
        try:
            attached = choose_variant(picked)
        except ValueError:
            attached = None
        if attached:
            model_admin.message_user(
                request,
                gettext("%(object)s now uses candidate #%(pk)s; the others stay in its history.")
                % {"object": object_label(picked.content_object), "pk": picked.pk},
                messages.SUCCESS,
            )
        else:
            model_admin.message_user(
                request,
                gettext(
                    "Candidate #%(pk)s could not be used: it has no image yet, or its "
                    "object was deleted."
                )
                % {"pk": picked.pk},
                messages.WARNING,
            )
        return redirect(here)
    first = rows[0]
    obj = first.content_object if first.content_type_id else None
    config = config_of(first)
    title = (
        gettext("Candidates for %(object)s") % {"object": object_label(obj)}
        if obj is not None
        else gettext("Candidates")
    )
    unfinished = any(row.status in Status.unfinished() for row in rows)
    may_choose = obj is not None and model_admin.has_generate_permission(request)
    if may_choose:
        may_choose = model_admin.may_act_on(request, first)
    context = {
        **site.each_context(request),
        **breadcrumbs(site, opts, (title, None)),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "candidates": [
            {
                "row": row,
                "thumbnail": image_thumbnail(row, "nanobanana-thumb nanobanana-candidate"),
                "chosen": is_chosen(row),
                "change_url": admin_url(site, opts, "change", row.pk),
                "cost": f"{money(row.cost)} {row.currency}".strip()
                if row.cost is not None
                else None,
            }
            for row in rows
        ],
        "object_url": admin_url(site, obj._meta, "change", obj.pk) if obj is not None else None,
        "current_image_url": current_image_url(obj, config) if obj is not None and config else None,
        "chosen_any": any(is_chosen(row) for row in rows),
        "may_choose": may_choose,
        "unfinished": unfinished,
        "media": model_admin.media,
    }
    request.current_app = site.name
    return TemplateResponse(
        request, "admin/nanobanana_django/generatedimage/variants.html", context
    )


# The "Candidates" step of the Generate header image action ----------------------------------------


def candidates_notice(
    form: GenerateHeaderImageForm,
    config: ContentConfig,
    objects: list[models.Model],
    *,
    uploads: bool = False,
) -> str | None:
    """What asking for several candidates will make and bill, said before it is done.

    ``uploads``: reference images were uploaded with the request, which a browser does not
    send again with the confirmation.
    """
    n = form.candidate_count()
    if n <= 1:
        return None
    presets = get_presets()
    picked = presets.get(form.preset_choice() or "")
    default = presets.get(config.preset or "")
    route = get_provider_config(
        (picked and picked.provider) or config.provider or (default and default.provider) or None
    )
    resolution = (
        form.model_input().get("resolution")
        or (picked and picked.input.get("resolution"))
        or form.cleaned_data.get("resolution")
    )
    images = n * len(objects)
    cost = estimated_cost(route.alias, route.model, resolution, images)
    price = (
        gettext("about %(amount)s %(currency)s")
        % {"amount": money(cost), "currency": app_settings.CURRENCY}
        if cost is not None
        else gettext("price unknown: add it to NANOBANANA['PRICES']")
    )
    if len(objects) == 1:
        notice = gettext(
            "%(n)d images will be made and billed %(n)d times (%(price)s). You then pick one "
            "to use; the others stay in the history."
        ) % {"n": n, "price": price}
    else:
        notice = gettext(
            "%(n)d images will be made for each of the %(objects)d selected objects: "
            "%(images)d images, billed %(images)d times (%(price)s). You then pick one for "
            "each object."
        ) % {"n": n, "objects": len(objects), "images": images, "price": price}
    if uploads:
        notice += " " + gettext(
            "The reference images you uploaded are not kept between the two steps: choose "
            "them again below."
        )
    return notice


def candidates_confirmed(request: HttpRequest, form: GenerateHeaderImageForm) -> bool:
    """Whether the editor confirmed the notice for this number of candidates."""
    return request.POST.get("candidates_confirmed") == str(form.candidate_count())


def queue_candidates(
    obj: models.Model, form: GenerateHeaderImageForm, references: Any = None
) -> list[GeneratedImage]:
    return queue_variants(
        obj,
        form.candidate_count(),
        prompt=form.prompt_override(),
        input=form.model_input(),
        preset=form.preset_choice(),
        grounding=form.grounding_choice(),
        references=references,
    )


def after_candidates(
    model_admin: Any, request: HttpRequest, batches: list[list[GeneratedImage]]
) -> HttpResponse | None:
    """One object: its candidates page; several: back to the list with a message."""
    if not batches:
        return None
    site = model_admin.admin_site
    images = sum(len(batch) for batch in batches)
    model_admin.message_user(
        request,
        ngettext(
            "Queued %(count)d candidate image: pick one once it is made.",
            "Queued %(count)d candidate images: pick one for each object once they are made.",
            images,
        )
        % {"count": images},
        messages.SUCCESS,
    )
    if len(batches) == 1:
        url = admin_url(site, GeneratedImage._meta, "variants", batches[0][0].batch)
        if url:
            return redirect(url)
    return None
