"""The chain of a generation and its steps, shown on each of their pages (docs/steps.md)."""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext

from ..models import GeneratedImage
from .display import admin_url, status_badge

Kind = GeneratedImage.Kind

MAX_CHAIN = 20
"""Links followed at most each way (a chain is a generation and a few steps)."""


def chain_of(row: GeneratedImage) -> list[GeneratedImage]:
    """The generation ``row`` belongs to and its steps, in order: of a retried step (it has
    several attempts) ``row`` if it is one, else the latest."""
    first = row
    for _ in range(MAX_CHAIN):
        if first.kind != Kind.STEP or first.parent is None:
            break
        first = first.parent
    chain = [first]
    for _ in range(MAX_CHAIN):
        last = chain[-1]
        if row.kind == Kind.STEP and row.parent_id == last.pk:
            following: GeneratedImage | None = row
        else:
            following = last.children.filter(kind=Kind.STEP).order_by("-pk").first()
        if following is None:
            break
        chain.append(following)
    return chain


def step_chain(site: AdminSite, row: GeneratedImage) -> str:
    """Each row of the chain with its link, what it did and its status; ``row`` in bold.
    Steps still to run after the last row are named at the end."""
    chain = chain_of(row)
    last = chain[-1]
    waiting = list(last.next_steps)
    if len(chain) == 1 and not chain[0].next_steps:
        return "—"
    opts = GeneratedImage._meta
    items = []
    for item in chain:
        what = item.step.capitalize() if item.kind == Kind.STEP else item.get_kind_display()
        label = format_html("#{} {}", item.pk, what)
        url = admin_url(site, opts, "change", item.pk)
        if item.pk == row.pk:
            label = format_html("<strong>{}</strong>", label)
        elif url is not None:
            label = format_html('<a href="{}">{}</a>', url, label)
        items.append((label, status_badge(item)))
    stopped = last.status in (GeneratedImage.Status.FAILED, GeneratedImage.Status.CANCELED)
    if waiting and stopped:
        note = gettext("not run: %(steps)s") % {"steps": ", ".join(waiting)}
    elif waiting:
        note = gettext("then: %(steps)s") % {"steps": ", ".join(waiting)}
    else:
        note = ""
    return format_html(
        '<ol class="nanobanana-steps">{}</ol>{}',
        format_html_join("", "<li>{} {}</li>", items),
        format_html('<div class="nanobanana-muted">{}</div>', note) if note else "",
    )
