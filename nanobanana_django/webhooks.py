"""Receiving Replicate's webhooks: the signing secret, verification, deduplication, checks.

The view (``views.replicate_webhook``) stays thin; what has to be right lives here:

- The secret is ``NANOBANANA["WEBHOOK_SECRET"]`` or, without it, fetched from Replicate
  (``GET /v1/webhooks/default/secret``) once per process and kept in memory only. It is
  deliberately not put in the shared cache: that is often the database (the example
  project's is), and the secret must never reach the database, logs or answers.
- A signature that does not match a *fetched* secret triggers one refetch, at most every
  ``REFETCH_INTERVAL`` seconds per process, in case the account's secret was rotated.
- Deliveries are deduplicated on ``webhook-id`` in the shared cache with ``cache.add``,
  claimed when the delivery is accepted and released again if handling it fails, so
  that Replicate's retry of a failed delivery is processed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.core import checks
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.urls import NoReverseMatch, reverse

from . import __version__, standard_webhooks
from .conf import app_settings

logger = logging.getLogger(__name__)

__all__ = [
    "DEDUPE_SECONDS",
    "REFETCH_INTERVAL",
    "InvalidWebhook",
    "SecretUnavailable",
    "check_webhook_settings",
    "claim_delivery",
    "forget_fetched_secrets",
    "release_delivery",
    "verify_delivery",
]

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SECRET_PATH = "/v1/webhooks/default/secret"
DEDUPE_PREFIX = "nanobanana:webhook:"
DEDUPE_SECONDS = 24 * 3600
"""How long a ``webhook-id`` is remembered; far beyond Replicate's minute of retries."""
REFETCH_INTERVAL = 300.0
"""Seconds between refetches of the secret after a mismatch (per process)."""
RETRY_FAILED_FETCH = 10.0
"""Seconds before a failed first fetch is tried again, so a flood costs Replicate nothing."""
FETCH_TIMEOUT = 10.0
"""Upper bound on the fetch: it happens inside a webhook request, which must stay quick."""

clock: Callable[[], float] = time.time
"""The wall clock for timestamp checks (tests freeze it)."""
monotonic: Callable[[], float] = time.monotonic
"""The clock for the refetch throttle (tests move it on)."""


class InvalidWebhook(SuspiciousOperation):
    """Not a genuine, fresh webhook: Django answers 400 and logs it on
    ``django.security.InvalidWebhook``, and nothing is processed."""


class SecretUnavailable(Exception):
    """The signing secret cannot be had right now; the delivery should be retried later.

    Its message is safe to log: it never contains the secret or the token.
    """


# Verification ---------------------------------------------------------------------------


def verify_delivery(headers: Mapping[str, str], body: bytes) -> str:
    """Return the ``webhook-id`` of a genuine delivery, else raise :class:`InvalidWebhook`.

    Raises :class:`SecretUnavailable` when there is no secret to check against. The
    headers are checked first, so that requests which cannot be webhooks never cause a
    fetch of the secret.
    """
    missing = [name for name in HEADERS if not headers.get(name)]
    if missing:
        raise InvalidWebhook(f"missing webhook header(s): {', '.join(missing)}")
    configured = app_settings.WEBHOOK_SECRET
    if configured:
        _verify(configured, headers, body, "NANOBANANA['WEBHOOK_SECRET']")
    else:
        secret = _fetched_secret()
        try:
            _verify(secret, headers, body, "the secret fetched from Replicate")
        except InvalidWebhook:
            fresh = _fetched_secret(stale=secret)
            if fresh == secret:
                raise
            _verify(fresh, headers, body, "the secret fetched from Replicate")
    return headers["webhook-id"]


def _verify(secret: str, headers: Mapping[str, str], body: bytes, origin: str) -> None:
    try:
        standard_webhooks.verify(secret, headers, body, now=clock())
    except standard_webhooks.WebhookVerificationError as exc:
        raise InvalidWebhook(str(exc)) from None
    except ValueError:  # the secret itself is malformed
        raise SecretUnavailable(
            f"{origin} is not a valid 'whsec_...' signing secret; copy it again from "
            "Replicate (GET /v1/webhooks/default/secret)."
        ) from None


# The fetched secret ----------------------------------------------------------------------


@dataclass
class _Fetched:
    secret: str = ""
    attempted_at: float = float("-inf")


_fetched: dict[tuple[str, str], _Fetched] = {}
_fetch_lock = threading.Lock()


def forget_fetched_secrets() -> None:
    """Drop the secrets this process fetched (tests; or to force a fetch)."""
    with _fetch_lock:
        _fetched.clear()


def _fetched_secret(*, stale: str | None = None) -> str:
    """The secret fetched for the configured account, fetching it if needed.

    With ``stale`` (a secret that just failed to verify a delivery) it is fetched again
    unless that happened less than ``REFETCH_INTERVAL`` seconds ago; a refetch that
    fails keeps the old secret.
    """
    token = app_settings.REPLICATE_API_TOKEN
    base_url = app_settings.REPLICATE_BASE_URL
    # One entry per account and API root; the token is only ever kept as a digest.
    key = (base_url, hashlib.sha256(token.encode()).hexdigest())
    with _fetch_lock:
        entry = _fetched.setdefault(key, _Fetched())
        now = monotonic()
        if stale is None:
            if entry.secret:
                return entry.secret
            if now - entry.attempted_at < RETRY_FAILED_FETCH:
                raise SecretUnavailable(
                    "fetching the webhook signing secret from Replicate failed moments ago"
                )
        elif entry.secret != stale or now - entry.attempted_at < REFETCH_INTERVAL:
            return entry.secret
        entry.attempted_at = now
        try:
            secret = _fetch(base_url, token)
        except SecretUnavailable as exc:
            if stale is None:
                raise
            logger.warning("Webhook signing secret not refetched: %s", exc)
            return entry.secret
        if stale is not None:
            rotated = "it has changed" if secret != stale else "it is unchanged"
            logger.info("Webhook signing secret refetched from Replicate: %s", rotated)
        entry.secret = secret
        return secret


def _fetch(base_url: str, token: str) -> str:
    """Ask Replicate for the account's signing secret (one quick GET, never retried)."""
    if not token:
        raise SecretUnavailable(
            "there is no NANOBANANA['WEBHOOK_SECRET'] and no Replicate API token to fetch it "
            "with; set one of them"
        )
    try:
        response = httpx.get(
            base_url + SECRET_PATH,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"nanobanana-django/{__version__}",
            },
            timeout=min(app_settings.HTTP_TIMEOUT, FETCH_TIMEOUT),
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        failure = type(exc).__name__
    else:
        failure = ""
    # Raised outside the except blocks, so no exception drags the response along.
    if failure:
        raise SecretUnavailable(
            f"could not reach Replicate to fetch the webhook signing secret ({failure})"
        )
    if response.status_code != 200:
        raise SecretUnavailable(
            f"Replicate answered {response.status_code} when asked for the webhook signing "
            "secret (check the API token)"
        )
    secret = _key_of(response)
    if secret is None:
        raise SecretUnavailable("Replicate's answer had no valid webhook signing secret")
    return secret


def _key_of(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    secret = data.get("key") if isinstance(data, dict) else None
    if not isinstance(secret, str):
        return None
    try:
        standard_webhooks.sign(secret, "msg_check", 0, b"")
    except ValueError:
        return None
    return secret


# Deduplication ----------------------------------------------------------------------------


def _dedupe_key(webhook_id: str) -> str:
    # Hashed: the id is the sender's text, and cache keys must be short and plain.
    return DEDUPE_PREFIX + hashlib.sha256(webhook_id.encode()).hexdigest()


def claim_delivery(webhook_id: str) -> bool:
    """Mark ``webhook_id`` as handled; False when it already was (a repeated delivery).

    Atomic across processes (``cache.add``), so two copies arriving together are
    handled once.
    """
    return caches[app_settings.CACHE].add(_dedupe_key(webhook_id), 1, timeout=DEDUPE_SECONDS)


def release_delivery(webhook_id: str) -> None:
    """Forget ``webhook_id`` after handling it failed, so that a retry is handled."""
    caches[app_settings.CACHE].delete(_dedupe_key(webhook_id))


# System checks ---------------------------------------------------------------------------


@checks.register("nanobanana", checks.Tags.urls)
def check_webhook_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """With ``PUBLIC_URL`` set, the receiver must be mounted and reachable by Replicate."""
    try:
        public_url = app_settings.PUBLIC_URL
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="nanobanana.E001")]
    if not public_url:
        return []
    messages: list[checks.CheckMessage] = []
    try:
        reverse("nanobanana:replicate-webhook")
    except NoReverseMatch:
        messages.append(
            checks.Warning(
                "NANOBANANA['PUBLIC_URL'] is set but the webhook receiver has no URL: "
                "nanobanana_django.urls is not mounted, so predictions are followed by "
                "polling only.",
                hint='Add path("nanobanana/", include("nanobanana_django.urls")) to your '
                "ROOT_URLCONF, or remove PUBLIC_URL.",
                id="nanobanana.W004",
            )
        )
    except Exception:
        pass  # a broken URLconf is reported by Django's own checks
    parts = urlsplit(public_url)
    if parts.scheme != "https" and not _is_local(parts.hostname or ""):
        messages.append(
            checks.Warning(
                f"NANOBANANA['PUBLIC_URL'] is {public_url!r}: Replicate only delivers "
                "webhooks to https URLs.",
                hint="Use the site's https origin (plain http is fine for localhost only).",
                id="nanobanana.W005",
            )
        )
    return messages


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
