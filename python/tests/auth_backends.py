"""Authentication backends for the login view tests."""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

#: The requests authenticate() handed to RecordingBackend.
seen_requests = []


class RecordingBackend(ModelBackend):
    """ModelBackend that records the request it was given."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        seen_requests.append(request)
        return super().authenticate(request, username=username, password=password, **kwargs)


class LockoutBackend(ModelBackend):
    """Refuses every attempt from a request marked as locked out, as django-axes does
    (it raises PermissionDenied, which stops authenticate() at once)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None and request.headers.get("X-Test-Locked") == "1":
            raise PermissionDenied("locked out")
        return None
