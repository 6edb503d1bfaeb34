"""Project policy: when an object counts as published, and what to ask the model for.

Subclass :class:`HeaderImageAdapter` and name it in ``NANOBANANA["ADAPTER"]`` to change
any of it without touching the rest of the app::

    class MyAdapter(HeaderImageAdapter):
        def build_prompt(self, obj, config):
            return f"{super().build_prompt(obj, config)} In our brand colours, teal and sand."
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils.module_loading import import_string

from .conf import app_settings
from .prompts import DEFAULT_PROMPT_TEMPLATE, render_prompt

if TYPE_CHECKING:
    from .registry import ContentConfig


class HeaderImageAdapter:
    """The default policy. Every method receives the object and its registration."""

    def is_published(self, obj: models.Model, config: ContentConfig) -> bool:
        """Whether ``obj`` is published now, by the registration's ``publish`` rule."""
        return config.publish is not None and config.publish.is_published(obj)

    def wants_image(self, obj: models.Model, config: ContentConfig) -> bool:
        """Whether publishing ``obj`` should start a generation."""
        return config.regenerate or not config.has_image(obj, fresh=False)

    def build_prompt(self, obj: models.Model, config: ContentConfig) -> str:
        """The prompt: the registration's template (or ours) rendered, as plain text."""
        source = config.prompt_template or app_settings.PROMPT_TEMPLATE or DEFAULT_PROMPT_TEMPLATE
        context = {
            "title": config.title_of(obj) or str(obj),
            "topic": config.topic_of(obj),
            "object": obj,
        }
        return render_prompt(source, context)

    def get_input(self, obj: models.Model, config: ContentConfig) -> dict[str, Any]:
        """Model inputs for ``obj`` on top of ``DEFAULT_INPUT`` (default: the registration's)."""
        return dict(config.input)


def get_adapter() -> HeaderImageAdapter:
    return _adapter(app_settings.ADAPTER)


@lru_cache(maxsize=8)
def _adapter(path: str) -> HeaderImageAdapter:
    try:
        adapter_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"NANOBANANA['ADAPTER'] {path!r} cannot be imported ({exc})."
        ) from None
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, HeaderImageAdapter)):
        raise ImproperlyConfigured(
            f"NANOBANANA['ADAPTER'] {path!r} is not a HeaderImageAdapter subclass."
        )
    return adapter_class()
