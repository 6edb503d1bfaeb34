"""Named presets: a bundle of model inputs and prompt guidance for one kind of image.

The built-in presets follow the seed's project types; ``NANOBANANA["PRESETS"]`` adds a
site's own or replaces keys of a built-in one. A model's registration may name a
default preset (``"preset"``); a call may pick another (``preset=``). Where each input
comes from is documented in docs/presets.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template import TemplateSyntaxError

from . import grounding as grounding_
from .conf import app_settings
from .prompts import clean_prompt, compile_template

if TYPE_CHECKING:
    from .providers.config import ProviderConfig

MAX_NAME_LENGTH = 50
"""``GeneratedImage.preset`` holds the name."""


@dataclass(frozen=True)
class Preset:
    """Inputs, prompt guidance and optionally a provider for one kind of image."""

    name: str
    label: str
    input: Mapping[str, Any] = field(default_factory=dict)
    #: A sentence added to the end of a prompt the app builds.
    prompt_guidance: str = ""
    #: Replaces the prompt template (a Django template, like ``PROMPT_TEMPLATE``).
    prompt_template: str | None = None
    #: The provider alias this preset's images go to (default: the model's or the site's).
    provider: str | None = None
    #: ``"web"``, ``"image"`` or ``"off"`` (:mod:`nanobanana_django.grounding`), over ``input``.
    grounding: str | None = None
    #: The name of the reference set whose images go with every prompt (docs/references.md).
    references: str | None = None
    #: Post-processing steps run on its images, in order (``NANOBANANA["STEPS"]``).
    steps: tuple[str, ...] = ()

    def apply_guidance(self, prompt: str) -> str:
        if not self.prompt_guidance:
            return prompt
        return clean_prompt(f"{prompt} {self.prompt_guidance}")

    def problem_on(self, route: ProviderConfig) -> str | None:
        """Why ``route`` cannot take this preset's inputs, or ``None``."""
        try:
            route.validate("check", dict(self.input))
        except ValidationError as exc:
            details = " ".join(
                f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items()
            )
            return (
                f"The preset {self.name!r} cannot be used with {route.model} (provider "
                f"{route.alias!r}): {details} Pick another preset, or send this one to a provider "
                "whose model takes these inputs (the preset's 'provider')."
            )
        problem = grounding_.problem_on(self.grounding, route)
        if problem:
            return f"The preset {self.name!r} asks for grounding. {problem}"
        return None


BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    "social_post": {
        "label": "Social post (1K, 1:1)",
        "input": {"resolution": "1K", "aspect_ratio": "1:1"},
        "prompt_guidance": (
            "Bold, simple composition that reads at a glance on a phone screen, one strong "
            "subject, vivid colour."
        ),
    },
    "blog_header": {
        "label": "Blog header (2K, 16:9)",
        "input": {"resolution": "2K", "aspect_ratio": "16:9"},
        "prompt_guidance": "Wide composition with calm negative space for a headline.",
    },
    "product_mockup": {
        "label": "Product mockup (2K, 1:1)",
        "input": {"resolution": "2K", "aspect_ratio": "1:1"},
        "prompt_guidance": (
            "Product shot in soft studio light on a clean, uncluttered background, true "
            "colours and materials."
        ),
    },
    "event": {
        "label": "Event content (1K, 16:9, web search)",
        "input": {"resolution": "1K", "aspect_ratio": "16:9", "google_search": True},
        "prompt_guidance": (
            "Use current, accurate details of the event, its place and its date from a web search."
        ),
    },
    "brand": {
        "label": "Brand work (2K)",
        "input": {"resolution": "2K"},
        "prompt_guidance": "Consistent, on-brand style, colours and mood.",
        "references": "brand",
    },
    "print": {
        "label": "Print (4K, 4:3)",
        "input": {"resolution": "4K", "aspect_ratio": "4:3"},
        "prompt_guidance": "Fine detail and clean edges that hold up in print.",
    },
}


def get_presets() -> dict[str, Preset]:
    """Every preset by name: the built-in ones, then the site's."""
    return _presets()


def preset_names() -> list[str]:
    return list(_presets())


def get_preset(name: str) -> Preset:
    """The preset ``name``, or ``ValidationError`` naming the known ones."""
    presets = _presets()
    if name not in presets:
        raise ValidationError({"preset": [unknown_preset(name)]})
    return presets[name]


def unknown_preset(name: Any) -> str:
    return (
        f"There is no preset {name!r}. Use one of {', '.join(map(repr, _presets()))}, or add "
        f"{name!r} to NANOBANANA['PRESETS']."
    )


@lru_cache(maxsize=1)
def _presets() -> dict[str, Preset]:
    declared = {name: dict(entry) for name, entry in BUILTIN_PRESETS.items()}
    for name, entry in app_settings.PRESETS.items():
        declared[name] = {**declared.get(name, {}), **entry}
    return {name: _build(name, entry) for name, entry in declared.items()}


@receiver(setting_changed)
def _forget_presets(setting: str, **kwargs: Any) -> None:
    if setting == "NANOBANANA":
        _presets.cache_clear()


def _build(name: str, entry: dict[str, Any]) -> Preset:
    template = entry.get("prompt_template") or None
    if template is not None:
        try:
            compile_template(template)
        except (TemplateSyntaxError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"NANOBANANA['PRESETS'][{name!r}]['prompt_template'] is not valid: {exc}"
            ) from None
    return Preset(
        name=name,
        label=entry.get("label") or name.replace("_", " ").capitalize(),
        input=dict(entry.get("input") or {}),
        prompt_guidance=" ".join((entry.get("prompt_guidance") or "").split()),
        prompt_template=template,
        provider=entry.get("provider") or None,
        grounding=grounding_.setting_value(
            entry.get("grounding"), f"NANOBANANA['PRESETS'][{name!r}]['grounding']"
        ),
        references=entry.get("references") or None,
        steps=tuple(entry.get("steps") or ()),  # checked by nanobanana.E014
    )
