from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # Replicate's webhooks arrive at <NANOBANANA_PUBLIC_URL>/nanobanana/webhooks/replicate/
    path("nanobanana/", include("nanobanana_django.urls")),
] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
