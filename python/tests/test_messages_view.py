"""GET /_isthmus/messages: Django's pending messages, consumed once, for Reflex pages."""

import json

import pytest
from django.contrib import messages
from django.http import HttpResponse
from django.urls import include, path

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.test_messages_view")]


def add(request):
    messages.success(request, request.GET.get("text", "Saved."))
    messages.warning(request, "Careful.")
    return HttpResponse("ok")


urlpatterns = [
    path("add", add),
    path("_isthmus/", include("isthmus_django.urls")),
]


def pending(client):
    response = client.get("/_isthmus/messages")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    return json.loads(response.content)["messages"]


@pytest.mark.parametrize(
    "storage",
    [
        "django.contrib.messages.storage.fallback.FallbackStorage",
        "django.contrib.messages.storage.cookie.CookieStorage",
        "django.contrib.messages.storage.session.SessionStorage",
    ],
)
def test_messages_added_in_a_view_are_handed_out_once(client, settings, storage):
    settings.MESSAGE_STORAGE = storage
    assert pending(client) == []
    client.get("/add", {"text": "Order <b>7</b> placed."})
    assert pending(client) == [
        {"level": 25, "tag": "success", "text": "Order <b>7</b> placed."},
        {"level": 30, "tag": "warning", "text": "Careful."},
    ]
    assert pending(client) == []


def test_only_get(client):
    response = client.post("/_isthmus/messages")
    assert response.status_code in (403, 405)  # CSRF first, or the method
