"""Signals for integrators: one before each billed request, one per outcome.

``sender`` is the content model class (``GeneratedImage`` for a bare prompt);
``instance`` is the content object (``None`` for a bare prompt or a deleted object);
``generated_image`` is the ``GeneratedImage`` row.

``image_generated`` also passes ``attached``: whether the image was put on the object
(false when it already had one and replacing was not asked for).
"""

from django.dispatch import Signal

image_generated = Signal()
#: Sent before each request that bills, with ``provider`` (the alias) and
#: ``estimated_cost`` (a ``Decimal`` in ``CURRENCY``, or ``None``). A receiver that raises
#: :class:`nanobanana_django.costs.CancelGeneration` stops it: nothing is sent, and the row
#: fails with the exception's message (per-author quotas, business hours...).
pre_generation = Signal()
image_generation_failed = Signal()
#: Sent once when an image of a model registered with ``"approval": True`` has been made
#: and waits for an editor (it is not attached until approved; docs/approval.md).
image_awaiting_review = Signal()
