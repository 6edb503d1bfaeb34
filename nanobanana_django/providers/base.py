"""The provider interface: the only part of the app that knows a provider's API.

A provider turns a :class:`GenerationRequest` into a :class:`Prediction` and hands
over the finished image's bytes. It does not touch the database or storage: the
generation pipeline (:mod:`nanobanana_django.services`) does that, the same way for
every provider.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..specs import ModelSpec

STARTING = "starting"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
ABORTED = "aborted"
TERMINAL_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELED, ABORTED})


@dataclass(frozen=True)
class ImageInput:
    """An image sent with the prompt: the image being edited or a step's input, or a
    reference image. The provider decides how it travels (``capabilities.image_inputs``)."""

    data: bytes = field(repr=False)
    mime_type: str
    #: A file name for logs and uploads, never a storage URL.
    name: str = ""
    #: ``"parent"`` (the image an edit or step works on) or ``"reference"``.
    role: str = "reference"


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: a model, its validated input, and context for offline art."""

    model: str
    input: dict[str, Any]
    #: Images sent with the prompt, in order: the parent's first, then references.
    images: tuple[ImageInput, ...] = ()
    #: What the provider kept of the parent's turn (``GeneratedImage.provider_state``),
    #: for providers that continue a conversation (``capabilities.multi_turn``).
    previous_turn: dict[str, Any] | None = None
    title: str = ""
    #: Where the provider should report completion, if the site can receive webhooks.
    webhook: str | None = None
    #: The generation's id, so that offline art differs from one generation to the next.
    generation_id: str = ""


@dataclass
class Prediction:
    """A provider's view of one generation, in Replicate's vocabulary."""

    id: str
    status: str
    output_url: str | None = None
    error: str | None = None
    predict_time: float | None = None
    data_removed: bool = False
    get_url: str | None = None
    #: Image bytes for providers that return them inline instead of by URL.
    content: bytes | None = field(default=None, repr=False)
    #: What the provider reports it billed (Gemini's ``usageMetadata`` token counts).
    usage: dict[str, Any] | None = None
    #: What to keep on the row to continue from this image in an edit
    #: (``GeneratedImage.provider_state``); never image bytes.
    provider_state: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do. The pipeline asks these instead of probing for sentinels."""

    #: ``submit`` returns at once with an id that the poller (or a webhook) follows to the
    #: end; without it, ``submit`` holds the call until the image is made and returns it.
    predictions: bool = False
    #: It reports completions to ``GenerationRequest.webhook``.
    webhooks: bool = False
    #: ``find`` can list what was made since a moment, so a generation whose answer was
    #: lost is recovered instead of failing as uncertain.
    listing: bool = False
    #: ``cancel`` stops work (and billing) at the provider.
    cancel: bool = False
    #: How reference and edited images travel: ``"url"`` (URLs or ``data:`` URIs in the
    #: input), ``"inline"`` (bytes in the request) or ``""`` (it takes none).
    image_inputs: str = ""
    #: It keeps conversation state, so an edit can continue the previous turn.
    multi_turn: bool = False
    #: Without predictions, a call can take many seconds: background generations then run
    #: in the dispatcher, ``concurrency`` calls at once in one worker, instead of holding
    #: a worker each (:mod:`nanobanana_django.dispatcher`).
    long_calls: bool = False


class Provider(ABC):
    """One route to an image model: its options, models, inputs, errors and HTTP API.

    A provider never touches the database or storage: the pipeline
    (:mod:`nanobanana_django.services`) does that, the same way for every provider.
    Configure one by alias in ``NANOBANANA["PROVIDERS"]``; options arrive as keyword
    arguments after :meth:`clean_options` has checked them.
    """

    #: Its built-in alias, and the alias when it is built by hand.
    name: ClassVar[str] = ""
    #: True for providers whose images are stand-ins, not generations.
    is_placeholder: ClassVar[bool] = False
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The alias this instance was configured under (stored on ``GeneratedImage.provider``).
    alias: str = ""

    # Configuration ------------------------------------------------------------------------

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        """Every option the provider takes, with its default; other names are refused."""
        return {}

    @classmethod
    def clean_options(cls, where: str, options: dict[str, Any]) -> dict[str, Any]:
        """Check the option values; raise ``ImproperlyConfigured`` naming ``where`` (the
        settings path of the alias), the option and the fix, never a secret's value."""
        return options

    @classmethod
    def credential_problem(cls, where: str, options: dict[str, Any]) -> str | None:
        """How to fix a missing API key or token, or ``None`` when it has one. Checked by
        ``manage.py check`` (``nanobanana.E002``); a generation without one fails with an
        ``authentication_failed`` message on its row."""
        return None

    @classmethod
    def model_for(cls, options: dict[str, Any]) -> str:
        """The model the alias with these options runs (recorded on each row)."""
        return ""

    @classmethod
    def spec_for(cls, options: dict[str, Any]) -> ModelSpec:
        """The inputs that model accepts: requests are validated against it before
        anything is sent, and the admin offers its choices."""
        raise NotImplementedError(
            f"{cls.__name__}.spec_for() must describe the inputs its model accepts "
            "(a nanobanana_django.specs.ModelSpec)."
        )

    @classmethod
    def max_call_seconds(cls, options: dict[str, Any]) -> float:
        """The longest one ``submit`` can take: a row claimed for longer than this without
        a prediction id was left behind by a worker that died while submitting."""
        return 120.0

    # Generating -----------------------------------------------------------------------------

    def cost_from_usage(self, usage: dict[str, Any]) -> Decimal | None:
        """What the provider billed, from the usage it reported, in ``CURRENCY``; ``None``
        to keep the price-table estimate."""
        return None

    def for_background(self) -> None:  # noqa: B027 - optional hook
        """Called on providers made for background workers, which must never wait for the
        model inside a request (Replicate: no ``Prefer: wait``)."""

    @abstractmethod
    def submit(self, request: GenerationRequest) -> Prediction:
        """Start a prediction (or, without ``capabilities.predictions``, make the image).

        Must never send a second create for one call: a retried create bills twice.
        """

    @abstractmethod
    def open_output(self, prediction: Prediction, *, max_bytes: int) -> IO[bytes]:
        """A file positioned at 0 holding the output image (the caller closes it).

        Raises :class:`~nanobanana_django.exceptions.OutputExpired` when the
        provider no longer has it and ``ImageTooLarge`` past ``max_bytes``.
        """

    def fetch(self, prediction_id: str) -> Prediction:
        """The prediction's current state (``capabilities.predictions``)."""
        raise NotImplementedError(f"{type(self).__name__} has no predictions to fetch")

    def cancel(self, prediction_id: str) -> Prediction | None:
        """Ask the provider to stop the prediction (``capabilities.cancel``)."""
        return None

    def find(self, request: GenerationRequest, *, created_after: datetime) -> list[Prediction]:
        """Predictions made for ``request`` since ``created_after``, oldest first
        (``capabilities.listing``).

        Used to recover a generation whose worker died between sending the create and
        saving the prediction id, or whose answer to the create was lost.
        """
        return []

    def states(self, prediction_ids: list[str], since: datetime) -> dict[str, Prediction]:
        """The current state of many predictions created since ``since``.

        The poller calls this once a sweep for everything in flight; providers that can
        answer for many predictions in one request should (the default asks one by one).
        Predictions it cannot see are left out.
        """
        states = {}
        for prediction_id in prediction_ids:
            try:
                states[prediction_id] = self.fetch(prediction_id)
            except Exception:  # noqa: BLE001 - one lost prediction must not stop the sweep
                continue
        return states

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
