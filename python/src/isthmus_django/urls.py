"""Include as ``path("_isthmus/", include("isthmus_django.urls"))``."""

from django.urls import path

from . import views

app_name = "isthmus"

urlpatterns = [
    path("identity", views.identity, name="identity"),
]
