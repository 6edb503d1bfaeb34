"""Signals for integrators, sent once per outcome of a generation.

``sender`` is the content model class (``GeneratedImage`` for a bare prompt);
``instance`` is the content object (``None`` for a bare prompt or a deleted object);
``generated_image`` is the ``GeneratedImage`` row.

``image_generated`` also passes ``attached``: whether the image was put on the object
(false when it already had one and replacing was not asked for).
"""

from django.dispatch import Signal

image_generated = Signal()
image_generation_failed = Signal()
