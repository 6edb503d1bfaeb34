"""System checks (``manage.py check``). Ids are stable and listed in docs/checks.md."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import InvalidStorageError, storages

from .conf import PLACEHOLDER, REPLICATE, app_settings
from .specs import MODEL_SPECS, validate_input

TAG = "nanobanana"


@checks.register(TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    try:
        provider = app_settings.PROVIDER
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="nanobanana.E001")]

    if provider == REPLICATE and not app_settings.REPLICATE_API_TOKEN:
        messages.append(
            checks.Error(
                "NANOBANANA['PROVIDER'] is 'replicate' but no Replicate API token is set.",
                hint="Set the REPLICATE_API_TOKEN environment variable or "
                "NANOBANANA['REPLICATE_API_TOKEN'], or use the 'placeholder' provider.",
                id="nanobanana.E002",
            )
        )
    if provider == PLACEHOLDER:
        messages.append(
            checks.Info(
                "Header images are offline placeholders: no Replicate API token is configured.",
                hint="Set REPLICATE_API_TOKEN to generate real images with Nano Banana 2.",
                id="nanobanana.I001",
            )
        )

    try:
        storages[app_settings.STORAGE]
    except InvalidStorageError:
        messages.append(
            checks.Error(
                f"NANOBANANA['STORAGE'] is {app_settings.STORAGE!r}, which is not an alias in "
                "settings.STORAGES.",
                hint=f"Add {app_settings.STORAGE!r} to settings.STORAGES or use 'default'.",
                id="nanobanana.E003",
            )
        )
    except ImproperlyConfigured as exc:
        messages.append(checks.Error(str(exc), id="nanobanana.E001"))

    model = None
    try:
        model = app_settings.MODEL
    except ImproperlyConfigured as exc:
        messages.append(checks.Error(str(exc), id="nanobanana.E001"))
    if model is not None and model not in MODEL_SPECS:
        messages.append(
            checks.Error(
                f"NANOBANANA['MODEL'] is {model!r}, which this app does not know the inputs of.",
                hint=f"Use one of: {', '.join(sorted(MODEL_SPECS))}.",
                id="nanobanana.E004",
            )
        )
        model = None

    for key in (
        "REPLICATE_BASE_URL",
        "REPLICATE_WAIT",
        "CANCEL_AFTER",
        "POLL_INTERVAL",
        "GENERATION_TIMEOUT",
        "HTTP_TIMEOUT",
        "MAX_RETRIES",
        "UPLOAD_TO",
        "MAX_IMAGE_BYTES",
        "MAX_IMAGE_PIXELS",
    ):
        try:
            getattr(app_settings, key)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="nanobanana.E001"))

    if model is not None:
        try:
            validate_input(model, "check", app_settings.DEFAULT_INPUT)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="nanobanana.E001"))
        except Exception as exc:  # ValidationError
            messages.append(
                checks.Error(
                    f"NANOBANANA['DEFAULT_INPUT'] is not valid for {model}: {_messages(exc)}",
                    id="nanobanana.E005",
                )
            )
    messages.extend(_check_content_models(model))
    return messages


def _check_content_models(model: str | None) -> list[checks.CheckMessage]:
    from .registry import build_config

    messages: list[checks.CheckMessage] = []
    try:
        registered = app_settings.MODELS
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="nanobanana.E006")]
    for label, options in registered.items():
        try:
            config = build_config(label, options)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="nanobanana.E006"))
            continue
        if model is not None and config.input:
            try:
                validate_input(model, "check", config.input)
            except Exception as exc:
                messages.append(
                    checks.Error(
                        f"NANOBANANA['MODELS'][{label!r}]['input'] is not valid for {model}: "
                        f"{_messages(exc)}",
                        id="nanobanana.E005",
                    )
                )
    return messages


def _messages(exc: Exception) -> str:
    message_dict = getattr(exc, "message_dict", None)
    if message_dict:
        return " ".join(f"{k}: {' '.join(v)}" for k, v in message_dict.items())
    return str(exc)
