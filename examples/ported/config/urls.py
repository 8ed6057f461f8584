"""Django's routes only, as in the tutorial. The SPA catch-all reflex-django mounted here
is gone: the gateway serves the exported SPA for every path Django does not own."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # The identity endpoint the gateway's event bridge calls (isthmus_django).
    path("_isthmus/", include("isthmus_django.urls")),
]
