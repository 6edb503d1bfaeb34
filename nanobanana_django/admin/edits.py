"""The "Edit this image" form and the thread of versions on a generation's page.

An editor writes an instruction; it is queued as an edit of the version on the page
(:func:`nanobanana_django.services.queue_edit`) and appears in the thread: every version
of the chain as a thumbnail with its instruction and status, the one the object shows
marked, and "Use this image" on the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..exceptions import GenerationInProgress
from ..models import GeneratedImage
from ..services import queue_edit, thread_of
from .display import admin_url, image_thumbnail, is_in_use, status_badge

if TYPE_CHECKING:
    from .generated_images import GeneratedImageAdmin

Status = GeneratedImage.Status
Kind = GeneratedImage.Kind

#: Where the form and the thread sit on the page (the history's "Edit" link goes there).
ANCHOR = "nanobanana-edit"
MAX_INSTRUCTION = 2000


class EditForm(forms.Form):
    instruction = forms.CharField(
        label=_("Instruction"),
        max_length=MAX_INSTRUCTION,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_(
            "Say what to change in this image, e.g. “make the background a rooftop at "
            "sunset”. The edit becomes a new version in the thread; the image in use stays "
            "until you choose “Use this image” on another version."
        ),
    )


def may_edit(model_admin: GeneratedImageAdmin, request: HttpRequest, row: GeneratedImage) -> bool:
    """As for retry and regenerate: the generate permission and a right to the object."""
    return model_admin.has_generate_permission(request) and model_admin.may_act_on(request, row)


def edit_view(
    model_admin: GeneratedImageAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    """Queue an edit of the version on the page, then go back to it (POST only)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    row = model_admin.get_object(request, unquote(object_id))
    if row is None:
        raise Http404
    if not may_edit(model_admin, request, row):
        raise PermissionDenied
    back = (admin_url(model_admin.admin_site, model_admin.opts, "change", row.pk) or "") + (
        f"#{ANCHOR}"
    )
    form = EditForm(request.POST)
    if not form.is_valid():
        for problem in form.errors.get("instruction", []):
            model_admin.message_user(request, str(problem), messages.ERROR)
        return redirect(back)
    try:
        child = queue_edit(
            row, form.cleaned_data["instruction"], requested_by=_user_or_none(request)
        )
    except ValidationError as exc:
        model_admin.message_user(request, " ".join(exc.messages), messages.ERROR)
    except (ValueError, ImproperlyConfigured, GenerationInProgress) as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
    else:
        model_admin.message_user(
            request,
            gettext("Edit queued as image #%(pk)s; it appears in the thread below.")
            % {"pk": child.pk},
            messages.SUCCESS,
        )
    return redirect(back)


def thread_context(
    model_admin: GeneratedImageAdmin, request: HttpRequest, row: GeneratedImage
) -> dict[str, Any]:
    """The thread of ``row``'s versions and, when it may be edited, the form."""
    versions = thread_of(row)
    obj = row.content_object if row.content_type_id else None
    editable = may_edit(model_admin, request, row)
    site, opts = model_admin.admin_site, model_admin.opts
    shown = []
    for number, version in enumerate(versions, start=1):
        in_use = is_in_use(version, obj)
        succeeded = version.status == Status.SUCCEEDED and bool(version.image)
        shown.append(
            {
                "row": version,
                "number": number,
                "thumbnail": image_thumbnail(version, "nanobanana-thumb nanobanana-thumb-large"),
                "status": status_badge(version),
                "label": _instruction(version),
                "error": Truncator(version.error_message).chars(200),
                "url": admin_url(site, opts, "change", version.pk),
                "is_current": version.pk == row.pk,
                "in_use": in_use,
                "use_url": (
                    admin_url(site, opts, "use", version.pk)
                    if editable and succeeded and obj is not None and not in_use
                    else None
                ),
                "parent_number": next(
                    (n for n, v in enumerate(versions, 1) if v.pk == version.parent_id), None
                ),
            }
        )
    can_edit = editable and row.status == Status.SUCCEEDED and bool(row.image)
    return {
        "anchor": ANCHOR,
        "versions": shown if len(shown) > 1 or can_edit else [],
        "refresh": any(v.status in Status.unfinished() for v in versions),
        "form": EditForm() if can_edit else None,
        "form_url": admin_url(site, opts, "edit", row.pk) if can_edit else None,
    }


def _instruction(version: GeneratedImage) -> str:
    if version.kind == Kind.EDIT:
        return version.prompt
    if version.kind == Kind.STEP:  # docs/steps.md: a step has no prompt of its own
        return gettext("Step: %(step)s of the version before") % {"step": version.step}
    return gettext("Original: %(prompt)s") % {"prompt": Truncator(version.prompt).chars(140)}


def _user_or_none(request: HttpRequest) -> Any:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None
