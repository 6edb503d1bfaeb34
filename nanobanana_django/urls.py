"""Mount with ``path("nanobanana/", include("nanobanana_django.urls"))``.

The webhook URL sent to Replicate is ``NANOBANANA["PUBLIC_URL"]`` plus the reversed
``nanobanana:replicate-webhook``, so the prefix is yours to choose.
"""

from django.urls import path

from . import views

app_name = "nanobanana"

urlpatterns = [
    path("webhooks/replicate/", views.replicate_webhook, name="replicate-webhook"),
]
