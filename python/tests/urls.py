from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.http import HttpResponse
from django.urls import include, path


def ok(request, *args, **kwargs):
    return HttpResponse("ok")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/shop/<int:pk>/", ok),
    path("webhooks/stripe/", ok),
    path("accounts/login/", LoginView.as_view()),
    path("_isthmus/", include("isthmus_django.urls")),
]
