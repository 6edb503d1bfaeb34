"""What generations cost, and the budgets that stop a runaway backfill (docs/costs.md).

Every row records its ``cost`` in the site's ``CURRENCY``: an estimate from the price table
(``NANOBANANA["PRICES"]`` over the documented defaults) when its request is about to be sent,
and what the provider reports it billed once it answers, where it reports anything (Gemini's
``usageMetadata`` token counts).

Budgets are caps per day and per month, for the whole site (``DAILY_BUDGET``,
``MONTHLY_BUDGET``) and per registered model (``daily_budget`` / ``monthly_budget`` in its
``MODELS`` entry). Before a request that bills, its estimate is reserved in the ledger
(:class:`~nanobanana_django.models.Spend`) with one conditional UPDATE per cap, all in one
transaction: of many workers on many machines, those whose image would pass a cap are
refused, atomically, and nothing is sent for them (``budget_exceeded``). A request that
turns out not to bill (refused by the provider) gives its reservation back.

Before that, :data:`~nanobanana_django.signals.pre_generation` is sent: a receiver raising
:class:`CancelGeneration` stops the request with its own message (per-author quotas,
business hours).
"""

from __future__ import annotations

import calendar
import datetime
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from .conf import app_settings
from .exceptions import NanoBananaError
from .models import GeneratedImage, Spend
from .signals import pre_generation

if TYPE_CHECKING:
    from .providers import Provider

logger = logging.getLogger(__name__)

WILDCARD = "*"
DEFAULT_PRICES: dict[str, dict[str, dict[str, str]]] = {
    # Google's reported prices for Nano Banana 2 on the Gemini API, in USD (PROVIDERS.md):
    # image output billed as tokens at $60 per million, 1120 / 1680 / 2520 tokens.
    "gemini": {WILDCARD: {"512": "0.045", "1K": "0.067", "2K": "0.101", "4K": "0.151"}},
    "placeholder": {WILDCARD: {WILDCARD: "0"}},
}
"""Used only when ``CURRENCY`` is ``"USD"``. Replicate's price for nano-banana-2 is not
published in a form we can rely on: set it in ``PRICES``."""


class BudgetExceeded(NanoBananaError):
    """The image would pass a spending cap; nothing was sent."""

    code = "budget_exceeded"


class CancelGeneration(NanoBananaError):
    """Raised by a :data:`pre_generation` receiver to stop a request before it is sent.

    Its message is recorded on the row (code ``canceled_by_policy`` unless given)."""

    code = "canceled_by_policy"


@dataclass(frozen=True)
class Cap:
    label: str
    period: str
    limit: Decimal
    resets: datetime.datetime


# Prices ---------------------------------------------------------------------------------------


def price_of(alias: str, model: str, resolution: str | None) -> Decimal | None:
    """The price of one image, from ``PRICES`` (then the defaults), or ``None`` if unknown."""
    tables = [app_settings.PRICES]
    if app_settings.CURRENCY == "USD":
        tables.append(DEFAULT_PRICES)
    for table in tables:
        by_model = table.get(alias) or {}
        for model_key in (model, WILDCARD):
            by_resolution = by_model.get(model_key)
            if by_resolution is None:
                continue
            for resolution_key in (resolution or "1K", WILDCARD):
                if resolution_key in by_resolution:
                    return Decimal(str(by_resolution[resolution_key]))
    return None


def estimate(row: GeneratedImage) -> Decimal | None:
    return price_of(row.provider, row.model_name, row.input_params.get("resolution"))


# Budgets ---------------------------------------------------------------------------------------


def caps_for(row: GeneratedImage, now: datetime.datetime | None = None) -> list[Cap]:
    """The caps that apply to ``row``: the site's, then its model's."""
    now = now or timezone.now()
    today = (timezone.localtime(now) if timezone.is_aware(now) else now).date()
    tomorrow = _midnight(today + datetime.timedelta(days=1))
    last_day = calendar.monthrange(today.year, today.month)[1]
    next_month = _midnight(today.replace(day=last_day) + datetime.timedelta(days=1))
    scopes: list[tuple[str, str, Any, Any]] = [
        ("", "", app_settings.DAILY_BUDGET, app_settings.MONTHLY_BUDGET)
    ]
    model = _registered_label(row)
    if model:
        from .registry import find_config

        config = find_config(model)
        if config is not None:
            scopes.append(
                (
                    f":{config.label}",
                    f" for {config.label}",
                    config.daily_budget,
                    config.monthly_budget,
                )
            )
    caps = []
    for suffix, where, daily, monthly in scopes:
        if daily is not None:
            caps.append(Cap(f"daily budget{where}", f"day:{today}{suffix}", daily, tomorrow))
        if monthly is not None:
            caps.append(
                Cap(f"monthly budget{where}", f"month:{today:%Y-%m}{suffix}", monthly, next_month)
            )
    return caps


def before_billed_request(row: GeneratedImage, provider: Provider) -> None:
    """Ask the site's policy, then reserve the image's estimated cost under every cap.

    Raises :class:`CancelGeneration` or :class:`BudgetExceeded`; nothing is sent then.
    """
    amount = estimate(row)
    sender, instance = _sender_of(row)
    pre_generation.send(
        sender=sender,
        instance=instance,
        generated_image=row,
        provider=provider.alias,
        estimated_cost=amount,
    )
    if amount is None:
        return  # unknown price: not counted (check nanobanana.W009 says so)
    caps = caps_for(row)
    with transaction.atomic():
        for cap in caps:
            _ensure_period(cap.period)
            reserved = Spend.objects.filter(period=cap.period, amount__lte=cap.limit - amount)
            if not reserved.update(amount=F("amount") + amount):
                raise BudgetExceeded(_refusal(cap, amount))
        GeneratedImage.objects.filter(pk=row.pk).update(cost=amount, currency=app_settings.CURRENCY)
    row.cost, row.currency = amount, app_settings.CURRENCY


def settle(row: GeneratedImage, actual: Decimal | None) -> None:
    """The provider reported what it billed: correct the reservation to it."""
    if actual is None or row.cost is None or actual == row.cost:
        return
    _adjust(row, actual - row.cost)
    GeneratedImage.objects.filter(pk=row.pk).update(cost=actual)
    row.cost = actual


def release(row: GeneratedImage) -> None:
    """Nothing was billed after all (the provider refused the request): give it back."""
    if row.cost is None:
        return
    _adjust(row, -row.cost)
    GeneratedImage.objects.filter(pk=row.pk).update(cost=Decimal(0))
    row.cost = Decimal(0)


def money(amount: Decimal | None) -> str:
    """``amount`` as people write it: two decimals, more only where there are cents' parts
    (0.08, 0.1008, 12.50)."""
    if amount is None:
        return "—"
    cents = amount.quantize(Decimal("0.01"))
    return f"{cents:f}" if cents == amount else f"{amount.normalize():f}"


def spend(start: datetime.date, end: datetime.date) -> Decimal:
    """What generations created from ``start`` to ``end`` (inclusive, local dates) cost."""
    total = GeneratedImage.objects.filter(
        created_at__date__gte=start, created_at__date__lte=end
    ).aggregate(total=models.Sum("cost"))["total"]
    return total or Decimal(0)


def _adjust(row: GeneratedImage, delta: Decimal) -> None:
    created = timezone.localtime(row.started_at or row.created_at)
    with transaction.atomic():
        for cap in caps_for(row, created):
            Spend.objects.filter(period=cap.period).update(amount=F("amount") + delta)


def _ensure_period(period: str) -> None:
    if Spend.objects.filter(period=period).exists():
        return
    try:
        with transaction.atomic():
            Spend.objects.create(period=period)
    except IntegrityError:
        pass  # another worker created it a moment ago


def _refusal(cap: Cap, amount: Decimal) -> str:
    currency = app_settings.CURRENCY
    resets = timezone.localtime(cap.resets).strftime("%Y-%m-%d %H:%M %Z").strip()
    return (
        f"Not generated: this image ({money(amount)} {currency}) would pass the {cap.label} "
        f"of {money(cap.limit)} {currency}, so nothing was sent. The cap resets at {resets}; "
        "raise it (NANOBANANA['DAILY_BUDGET'] / ['MONTHLY_BUDGET'], or the model's own) to go "
        "on now."
    )


def _midnight(day: datetime.date) -> datetime.datetime:
    moment = datetime.datetime.combine(day, datetime.time())
    return timezone.make_aware(moment) if timezone.is_aware(timezone.now()) else moment


def _registered_label(row: GeneratedImage) -> str:
    if row.content_type_id is None:
        return ""
    model = row.content_type.model_class()  # type: ignore[union-attr]
    if model is None:
        return ""
    from .registry import config_for_stored

    try:
        return config_for_stored(model).label
    except Exception:
        return ""


def _sender_of(row: GeneratedImage) -> tuple[type[models.Model], models.Model | None]:
    from .lifecycle import sender_of

    return sender_of(row)
