"""Grounding: the model searches the web (and images) before it draws.

With web search the model looks up current facts (an event's date and place, what a
new product looks like); with image search it also looks at reference pictures. Both
make a generation slower. On the models that can ground they are the inputs
``google_search`` and ``image_search`` (Replicate's names; the Gemini provider sends
them as ``tools``). This module is the one place that maps the ``grounding`` values
of a preset, a registered model and a call (``"web"``, ``"image"``, ``"off"``) to them.

A layer's ``grounding`` is applied on top of that layer's own inputs; the layers go,
lowest first: ``DEFAULT_INPUT``, the model's default preset, the registration, the
picked preset, the call's ``input``, the call's ``grounding=`` (docs/grounding.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from .providers.config import ProviderConfig
    from .specs import ModelSpec

OFF = "off"
WEB = "web"
IMAGE = "image"
VALUES = (OFF, WEB, IMAGE)

WEB_SEARCH = "google_search"
IMAGE_SEARCH = "image_search"

LABELS = {
    OFF: _("Off"),
    WEB: _("Web search"),
    IMAGE: _("Web and image search"),
}
HELP_TEXT = _(
    "Lets the model search before it draws: web search looks up current facts (an event's "
    "date and place, a new product), image search also looks at reference pictures. Useful "
    "for news and events; each search adds latency (seconds per image)."
)

_INPUTS = {
    OFF: {},
    WEB: {WEB_SEARCH: True},
    IMAGE: {WEB_SEARCH: True, IMAGE_SEARCH: True},
}


def setting_value(value: Any, where: str) -> str | None:
    """A ``grounding`` value from settings (a preset, a registration), or
    ``ImproperlyConfigured`` naming ``where``."""
    if value in (None, ""):
        return None
    if value not in VALUES:
        raise ImproperlyConfigured(f"{where} is {value!r}. {_allowed()}")
    return value


def call_value(value: Any) -> str | None:
    """A ``grounding=`` argument, or ``ValidationError`` on ``grounding``."""
    if value in (None, ""):
        return None
    if value not in VALUES:
        raise ValidationError({"grounding": [f"{value!r} is not a grounding. {_allowed()}"]})
    return value


def can_ground(spec: ModelSpec, value: str = WEB) -> bool:
    """Whether the model of ``spec`` takes the inputs ``value`` needs."""
    return set(_INPUTS.get(value, {})) <= set(spec.booleans)


def problem_on(value: str | None, route: ProviderConfig) -> str | None:
    """Why ``route`` cannot ground as ``value`` asks, naming the model and the fix, or None."""
    if value is None or can_ground(route.spec(), value):
        return None
    what = "web and image search" if value == IMAGE else "web search"
    return (
        f"Grounding ({what}) is not available on {route.model} (provider {route.alias!r}): "
        "that model cannot search before drawing. Use google/nano-banana-2 or "
        "google/nano-banana-pro on Replicate, or the Gemini API (provider 'gemini'), or "
        "turn grounding off."
    )


def apply(params: Mapping[str, Any], value: str | None, route: ProviderConfig) -> dict[str, Any]:
    """``params`` with ``value``'s search inputs (``None``: unchanged), or
    ``ValidationError`` on ``grounding`` where the route cannot ground."""
    params = dict(params)
    if value is None:
        return params
    problem = problem_on(value, route)
    if problem:
        raise ValidationError({"grounding": [problem]})
    params.pop(WEB_SEARCH, None)
    params.pop(IMAGE_SEARCH, None)
    params.update(_INPUTS[value])
    return params


def of_input(params: Mapping[str, Any] | None) -> str:
    """The grounding that model inputs ask for (what a row recorded)."""
    params = params or {}
    if params.get(IMAGE_SEARCH):
        return IMAGE  # image search turns web search on too
    if params.get(WEB_SEARCH):
        return WEB
    return OFF


def configured(*layers: tuple[Mapping[str, Any] | None, str | None]) -> str:
    """The grounding that ``(input, grounding)`` layers give, lowest first."""
    params: dict[str, Any] = {}
    for inputs, value in layers:
        params.update(inputs or {})
        if value is not None:
            params.pop(WEB_SEARCH, None)
            params.pop(IMAGE_SEARCH, None)
            params.update(_INPUTS[value])
    return of_input(params)


def label(value: str) -> str:
    return str(LABELS.get(value, value))


def _allowed() -> str:
    return "Use 'web' (web search), 'image' (web and image search) or 'off' (docs/grounding.md)."
