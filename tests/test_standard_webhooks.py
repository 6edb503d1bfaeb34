"""Standard Webhooks signing/verification, anchored on the reference libraries' test vector."""

from __future__ import annotations

import base64
import time

import pytest

from nanobanana_django.standard_webhooks import (
    WebhookVerificationError,
    new_message_id,
    new_secret,
    sign,
    verify,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str = SIGNATURE, timestamp: object = TIMESTAMP) -> dict[str, str]:
    return {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_sign_matches_reference_vector() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_secret_prefix_is_optional() -> None:
    assert sign(SECRET.removeprefix("whsec_"), MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_verify_accepts_reference_vector_with_frozen_clock() -> None:
    verify(SECRET, headers(), BODY, now=TIMESTAMP)
    verify(SECRET, headers(), BODY, now=TIMESTAMP + 299)


def test_header_names_are_case_insensitive() -> None:
    upper = {name.upper(): value for name, value in headers().items()}
    verify(SECRET, upper, BODY, now=TIMESTAMP)
    title = {name.title(): value for name, value in headers().items()}
    verify(SECRET, title, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    "signature",
    [
        f"v1,Zm9vYmFy {SIGNATURE}",  # a rotated-out secret's signature first
        f"{SIGNATURE} v1,Zm9vYmFy",
        f"v2,whatever {SIGNATURE}",  # other versions are ignored
        f"v1a,{SIGNATURE[3:]} {SIGNATURE}",
    ],
)
def test_any_v1_entry_may_match(signature: str) -> None:
    verify(SECRET, headers(signature), BODY, now=TIMESTAMP)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_named(missing: str) -> None:
    incomplete = headers()
    del incomplete[missing]
    with pytest.raises(WebhookVerificationError, match=missing):
        verify(SECRET, incomplete, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    "timestamp",
    [
        "soon",
        "",
        "+1614265330",
        "-1614265330",
        " 1614265330",
        "1_614_265_330",
        "1614265330.",
        ".5",
        "1.6e9",
        "nan",
        "inf",
        "0x6037a2f2",
    ],
)
def test_a_timestamp_that_is_not_a_plain_number_is_refused(timestamp: str) -> None:
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify(SECRET, headers(timestamp=timestamp), BODY, now=TIMESTAMP)


def test_a_fractional_timestamp_is_accepted_like_the_reference_library_does() -> None:
    """The reference parses it as a float and signs its whole seconds."""
    verify(SECRET, headers(timestamp="1614265330.5"), BODY, now=TIMESTAMP)
    verify(SECRET, headers(timestamp="1614265330.999"), BODY, now=TIMESTAMP + 300)
    verify(SECRET, headers(timestamp="1614265330.99999999999"), BODY, now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(SECRET, headers(timestamp="1614265330.5"), BODY, now=TIMESTAMP + 300.6)


def test_a_secret_pasted_without_its_base64_padding_still_verifies() -> None:
    secret = new_secret()
    assert secret.endswith("=")  # 32 bytes take 44 base64 characters, the last one padding
    unpadded = secret.rstrip("=")
    now = int(time.time())
    signature = sign(secret, MSG_ID, now, BODY)
    assert sign(unpadded, MSG_ID, now, BODY) == signature
    signed = {"webhook-id": MSG_ID, "webhook-timestamp": str(now), "webhook-signature": signature}
    verify(unpadded, signed, BODY)
    verify(unpadded.removeprefix("whsec_"), signed, BODY)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_A", "whsec_AAAAA", "whsec_not base64!"])
def test_a_secret_that_padding_cannot_mend_is_still_a_configuration_error(secret: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        verify(secret, headers(), BODY, now=TIMESTAMP)
    assert not isinstance(excinfo.value, WebhookVerificationError)


def test_timestamp_too_old() -> None:
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(SECRET, headers(), BODY, now=TIMESTAMP + 301)


def test_timestamp_too_new() -> None:
    with pytest.raises(WebhookVerificationError, match="future"):
        verify(SECRET, headers(), BODY, now=TIMESTAMP - 301)


def test_tolerance_is_configurable() -> None:
    verify(SECRET, headers(), BODY, now=TIMESTAMP + 3000, tolerance=3600)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers(), BODY, now=TIMESTAMP + 10, tolerance=5)


def test_altered_body_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook signature matches"):
        verify(SECRET, headers(), BODY.replace(b"2432232314", b"2432232315"), now=TIMESTAMP)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook signature matches"):
        verify(new_secret(), headers(), BODY, now=TIMESTAMP)


def test_only_other_versions_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="no v1"):
        verify(SECRET, headers("v2," + SIGNATURE[3:]), BODY, now=TIMESTAMP)


def test_malformed_secret_is_a_configuration_error_not_a_bad_request() -> None:
    with pytest.raises(ValueError, match="base64") as excinfo:
        verify("whsec_not base64!", headers(), BODY, now=TIMESTAMP)
    assert not isinstance(excinfo.value, WebhookVerificationError)


def test_verification_error_is_a_value_error() -> None:
    assert issubclass(WebhookVerificationError, ValueError)


def test_new_secret_round_trip_with_real_clock() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    msg_id, now = new_message_id(), int(time.time())
    assert msg_id.startswith("msg_") and msg_id != new_message_id()
    body = b'{"id": "abc", "status": "succeeded"}'
    signed = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, msg_id, now, body),
    }
    verify(secret, signed, body)
