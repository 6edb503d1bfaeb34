"""The webhook receiver Replicate calls when a prediction completes (docs/webhooks.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import GeneratedImage
from .runners import enqueue_completion
from .webhooks import SecretUnavailable, claim_delivery, release_delivery, verify_delivery

try:
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # Django < 5.1: no LoginRequiredMiddleware to exempt the view from

    def login_not_required(view_func):  # type: ignore[misc]
        return view_func


logger = logging.getLogger(__name__)

Status = GeneratedImage.Status
NOT_FINISHED = frozenset({"starting", "processing"})
MAX_PREDICTION_ID: int = GeneratedImage._meta.get_field("prediction_id").max_length  # type: ignore[union-attr,assignment]


@login_not_required
@csrf_exempt
@require_POST
def replicate_webhook(request: HttpRequest) -> HttpResponse:
    """Verify a delivery, then hand the finishing of its generation to a worker.

    Answers at once: nothing here talks to Replicate (but for the first fetch of the
    signing secret) and nothing is downloaded; ``enqueue_completion`` does that in the
    background. A forged or stale delivery raises ``InvalidWebhook`` (a 400, logged on
    ``django.security``) before the body is even parsed. Replicate cannot log in, so the
    view is exempt from ``LoginRequiredMiddleware``; the signature is its authentication.
    """
    body = request.body
    try:
        webhook_id = verify_delivery(request.headers, body)
    except SecretUnavailable as exc:
        # Our problem, not the sender's: a 5xx makes Replicate try again shortly, and the
        # poller finishes the generation if it never gets through.
        logger.error("Webhook not verified, answered 503: %s", exc)
        return HttpResponse(
            "The webhook signing secret is unavailable.", status=503, content_type="text/plain"
        )

    prediction = _prediction_in(body)
    if prediction is None:
        logger.warning("Webhook %.80r is signed but its body is not a prediction", webhook_id)
        return HttpResponseBadRequest(
            "The webhook body is not a prediction.", content_type="text/plain"
        )
    if not claim_delivery(webhook_id):
        logger.debug("Webhook %.80r was already handled; ignored", webhook_id)
        return _answer("duplicate")
    try:
        outcome = _accept(prediction, webhook_id)
    except BaseException:
        release_delivery(webhook_id)
        raise
    return _answer(outcome)


def _prediction_in(body: bytes) -> dict[str, Any] | None:
    """The JSON object of a prediction with a plausible ``id``, or None."""
    try:
        data = json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return None
    if not isinstance(data, dict):
        return None
    prediction_id = data.get("id")
    if not isinstance(prediction_id, str) or not 0 < len(prediction_id) <= MAX_PREDICTION_ID:
        return None
    return data


def _accept(prediction: dict[str, Any], webhook_id: str) -> str:
    """Queue the completion of the running generation the prediction belongs to."""
    prediction_id = prediction["id"]
    rows = dict(
        GeneratedImage.objects.filter(prediction_id=prediction_id).values_list("pk", "status")
    )
    running = sorted(pk for pk, status in rows.items() if status == Status.RUNNING)
    if not rows:
        logger.info("Webhook for unknown prediction %.100r ignored", prediction_id)
        return "ignored"
    if not running:
        logger.debug("Webhook for prediction %.100r: already finished", prediction_id)
        return "finished"
    if prediction.get("status") in NOT_FINISHED:
        logger.debug("Webhook for prediction %.100r: not finished yet", prediction_id)
        return "pending"
    image_id = running[0]
    logger.info(
        "Webhook: prediction %.100r is done; finishing generation %s", prediction_id, image_id
    )
    transaction.on_commit(lambda: _complete(image_id, webhook_id), using=GeneratedImage.objects.db)
    return "accepted"


def _complete(image_id: int, webhook_id: str) -> None:
    """Queue the completion; if the runner refuses, let Replicate's retry try again."""
    try:
        enqueue_completion(image_id)
    except BaseException:
        release_delivery(webhook_id)
        raise


def _answer(outcome: str) -> JsonResponse:
    return JsonResponse({"result": outcome})
