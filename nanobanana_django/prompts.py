"""Building a prompt: the default template, compiling templates, and cleaning the text.

A prompt is a Django template rendered with ``title``, ``topic`` and ``object`` and sent
as plain text: autoescaping is off, tags are stripped and whitespace collapsed. The
registry checks templates with :func:`compile_template`; the adapter renders them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.template import Context, Engine
from django.utils.html import strip_tags

from .specs import MAX_PROMPT_LENGTH

DEFAULT_PROMPT_TEMPLATE = (
    "Editorial header image for an article titled “{{ title }}”"
    "{% if topic %}, about {{ topic }}{% endif %}. "
    "Photographic, natural light, one clear subject, with depth and calm negative space that "
    "suits a wide blog header. No text, letters, logos or watermarks in the image."
)


@lru_cache(maxsize=64)
def compile_template(source: str) -> Any:
    """A compiled prompt template; autoescaping is off because prompts are plain text."""
    return Engine(autoescape=False).from_string(source)


def render_prompt(source: str, context: dict[str, Any]) -> str:
    """``source`` rendered with ``context``, as clean plain text ("beginner's", not
    "beginner&#x27;s")."""
    return clean_prompt(compile_template(source).render(Context(context, autoescape=False)))


def clean_prompt(text: str) -> str:
    """Tags stripped, whitespace collapsed, cut at a word to the prompt length limit."""
    text = " ".join(strip_tags(text).split())
    if len(text) > MAX_PROMPT_LENGTH:
        text = text[:MAX_PROMPT_LENGTH].rsplit(" ", 1)[0]
    return text
