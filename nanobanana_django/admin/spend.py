"""What images cost: the spend page, the cost column, and the warning near a budget."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate, TruncMonth
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..costs import money
from ..models import GeneratedImage
from .display import breadcrumbs

DAYS_SHOWN = 14
MONTHS_SHOWN = 6


def budget_status(now: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """Each site-wide cap with what was spent against it and whether it nears its end."""
    today = timezone.localdate(now)
    rows = []
    for label, cap, start in (
        (_("Today"), app_settings.DAILY_BUDGET, today),
        (_("This month"), app_settings.MONTHLY_BUDGET, today.replace(day=1)),
    ):
        if cap is None:
            continue
        spent = _spent_since(start)
        share = float(spent / cap) if cap else 1.0
        rows.append(
            {
                "label": label,
                "cap": money(cap),
                "spent": money(spent),
                "left": money(max(cap - spent, Decimal(0))),
                "share": share,
                "percent": min(100, round(share * 100)),
                "warn": share >= app_settings.BUDGET_WARNING,
            }
        )
    return rows


def warn_near_budget(request: HttpRequest) -> None:
    """An admin warning once spend passes ``BUDGET_WARNING`` of a cap."""
    for status in budget_status():
        if status["warn"]:
            messages.warning(
                request,
                gettext(
                    "%(period)s, %(spent)s %(currency)s of the %(cap)s %(currency)s budget is "
                    "spent; generations that would pass it are refused."
                )
                % {
                    "period": status["label"],
                    "spent": status["spent"],
                    "cap": status["cap"],
                    "currency": app_settings.CURRENCY,
                },
            )


def spend_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """Spend per day and per month, per model and in total, against the budgets."""
    today = timezone.localdate()
    billed = GeneratedImage.objects.exclude(cost__isnull=True).exclude(cost=0)
    first_day = today - datetime.timedelta(days=DAYS_SHOWN - 1)
    first_month = (today.replace(day=1) - datetime.timedelta(days=31 * (MONTHS_SHOWN - 1))).replace(
        day=1
    )
    days = _table(billed.filter(created_at__date__gte=first_day), TruncDate("created_at"))
    months = _table(billed.filter(created_at__date__gte=first_month), TruncMonth("created_at"))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": gettext("Spend on generated images"),
        "currency": app_settings.CURRENCY,
        "budgets": budget_status(),
        "days": days,
        "months": months,
        "unpriced": GeneratedImage.objects.filter(
            cost__isnull=True, status=GeneratedImage.Status.SUCCEEDED
        ).count(),
        **breadcrumbs(model_admin.admin_site, model_admin.opts, (gettext("Spend"), None)),
    }
    return TemplateResponse(request, "admin/nanobanana_django/generatedimage/spend.html", context)


def _table(queryset: Any, period: Any) -> list[dict[str, Any]]:
    """Rows of (period, provider, model, images, cost), newest period first, with totals."""
    grouped = (
        queryset.annotate(period=period)
        .values("period", "provider", "model_name")
        .annotate(images=Count("pk"), cost=Sum("cost"))
        .order_by("-period", "provider", "model_name")
    )
    table: dict[Any, dict[str, Any]] = {}
    for entry in grouped:
        when = entry["period"]
        if isinstance(when, datetime.datetime):
            when = timezone.localtime(when).date() if timezone.is_aware(when) else when.date()
        bucket = table.setdefault(when, {"period": when, "lines": [], "images": 0, "cost": 0})
        bucket["lines"].append({**entry, "cost": money(entry["cost"])})
        bucket["images"] += entry["images"]
        bucket["cost"] += entry["cost"] or 0
    for bucket in table.values():
        bucket["cost"] = money(Decimal(bucket["cost"]))
    return list(table.values())


def _spent_since(start: datetime.date) -> Decimal:
    total = GeneratedImage.objects.filter(created_at__date__gte=start).aggregate(total=Sum("cost"))[
        "total"
    ]
    return total or Decimal(0)
