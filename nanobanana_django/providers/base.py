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
from typing import IO, Any, ClassVar

STARTING = "starting"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
ABORTED = "aborted"
TERMINAL_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELED, ABORTED})


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: a model, its validated input, and context for offline art."""

    model: str
    input: dict[str, Any]
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

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Provider(ABC):
    """Submit, fetch, cancel, and read the output of a prediction."""

    #: Stored on ``GeneratedImage.provider``.
    name: ClassVar[str]
    #: True for providers whose images are stand-ins, not generations.
    is_placeholder: ClassVar[bool] = False

    @abstractmethod
    def submit(self, request: GenerationRequest) -> Prediction:
        """Start a prediction. May return a finished one if the provider was quick.

        Must never send a second create for one call: a retried create bills twice.
        """

    @abstractmethod
    def fetch(self, prediction_id: str) -> Prediction:
        """The prediction's current state."""

    @abstractmethod
    def cancel(self, prediction_id: str) -> Prediction:
        """Ask the provider to stop the prediction."""

    @abstractmethod
    def open_output(self, prediction: Prediction, *, max_bytes: int) -> IO[bytes]:
        """A file positioned at 0 holding the output image (the caller closes it).

        Raises :class:`~nanobanana_django.exceptions.OutputExpired` when the
        provider no longer has it and ``ImageTooLarge`` past ``max_bytes``.
        """

    def find(self, request: GenerationRequest, *, created_after: datetime) -> Any:
        """Predictions made for ``request`` since ``created_after``, oldest first.

        Used to recover a generation whose worker died between sending the create and
        saving the prediction id. Return ``NotImplemented`` when the provider cannot
        list its predictions (the generation then fails as ``interrupted``).
        """
        return NotImplemented

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
