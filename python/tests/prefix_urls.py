"""A URLconf with the awkward cases for the prefix discovery."""

from django.http import HttpResponse
from django.urls import include, path, re_path


def ok(request, *args, **kwargs):
    return HttpResponse("ok")


inner = [
    path("blog/", ok),
    path("blog/<slug:slug>/", ok),
    path("<slug:page>/", ok),
]

urlpatterns = [
    path("", ok),
    path("", include(inner)),
    path("api/v1/", include([path("items/", ok)])),
    re_path(r"^legacy/(?P<n>\d+)/$", ok),
    re_path(r"^feed\.xml$", ok),
    path("about", ok),
    path("item<int:n>", ok),
    path("_isthmus/", include("isthmus_django.urls")),
]
