from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

# The admin's "View site" link is admin.site.site_url, "/" by default: the public blog.
urlpatterns = [
    path("", include("blog.urls")),
    path("admin/", admin.site.urls),
    # Replicate's webhooks arrive at <NANOBANANA_PUBLIC_URL>/nanobanana/webhooks/replicate/
    path("nanobanana/", include("nanobanana_django.urls")),
] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
