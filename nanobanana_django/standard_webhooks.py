"""Signing and verification of Standard Webhooks (https://www.standardwebhooks.com/).

Replicate signs its webhooks this way. The emulator signs with :func:`sign` and our
webhook view checks with :func:`verify`, so both sides share one implementation that is
tested against the reference vector of the Standard Webhooks libraries.

Deliberately free of Django: it must work without settings (emulator, scripts).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping

__all__ = [
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "new_message_id",
    "new_secret",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300
"""Seconds a timestamp may be away from now (5 minutes, as in the reference libraries)."""

_TIMESTAMP = re.compile(r"[0-9]{1,15}(?:\.[0-9]+)?")
"""Unix seconds, optionally with a fraction: what the reference's ``float()`` reads, minus
its laxness (signs, spaces, exponents, ``nan``, underscores)."""


class WebhookVerificationError(ValueError):
    """The request is not a genuine, fresh webhook: answer it with a 4xx, never process it."""


def new_secret() -> str:
    """Return a fresh ``whsec_...`` secret (32 random bytes), as Replicate hands them out."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_message_id() -> str:
    """Return a unique ``msg_...`` id; receivers dedupe on it, so it must never repeat."""
    return "msg_" + secrets.token_urlsafe(18)


def _key(secret: str) -> bytes:
    """Decode the HMAC key from a ``whsec_<base64>`` secret (the prefix is optional).

    Missing ``=`` padding is restored, as the reference libraries do, so a secret pasted
    without it still works. A malformed secret is a configuration error, not a bad
    request, hence a plain ``ValueError`` rather than :class:`WebhookVerificationError`.
    """
    raw = secret.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX) :]
    raw += "=" * (-len(raw) % 4)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not valid base64 after the 'whsec_' prefix") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``v1,<base64>`` signature of ``"{msg_id}.{timestamp}.{body}"``."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works for plain dicts as well as Django's."""
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                value = candidate
                break
    return value


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise :class:`WebhookVerificationError` unless ``body`` was signed with ``secret``.

    Checks the three ``webhook-*`` headers, bounds the timestamp to ``tolerance`` seconds
    either side of ``now`` (replay protection) and accepts if any ``v1`` entry of the
    space-separated signature list matches; entries of other versions are ignored.
    Receivers should still dedupe on ``webhook-id``: a replay within the tolerance passes.
    """
    msg_id = _header(headers, "webhook-id")
    timestamp_text = _header(headers, "webhook-timestamp")
    signature_header = _header(headers, "webhook-signature")
    if not msg_id or not timestamp_text or not signature_header:
        missing = [
            name
            for name, value in (
                ("webhook-id", msg_id),
                ("webhook-timestamp", timestamp_text),
                ("webhook-signature", signature_header),
            )
            if not value
        ]
        raise WebhookVerificationError(f"missing webhook header(s): {', '.join(missing)}")

    # Strict: float() would also accept "+1", " 1", "1_000", "1e9" and "nan".
    if not _TIMESTAMP.fullmatch(timestamp_text):
        raise WebhookVerificationError(
            f"webhook-timestamp is not a number of seconds: {timestamp_text[:40]!r}"
        )
    timestamp = float(timestamp_text)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is too old ({int(current - timestamp)} s > {tolerance} s)"
        )
    if timestamp > current + tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is too far in the future ({int(timestamp - current)} s)"
        )

    # Like the reference libraries, a fractional timestamp is signed as its whole seconds
    # (taken from the text: a float may round "…30.9999999999" up to the next second).
    whole_seconds = int(timestamp_text.partition(".")[0])
    expected = sign(secret, msg_id, whole_seconds, body).encode("ascii")
    candidates = [
        entry.encode("ascii", "replace")
        for entry in signature_header.split(" ")
        if entry.startswith("v1,")
    ]
    if not candidates:
        raise WebhookVerificationError("webhook-signature has no v1 entry")
    # Check every entry so the time taken does not reveal which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise WebhookVerificationError(
            "no webhook signature matches (wrong secret, or body altered)"
        )
