"""JSON login, logout and password change with Django's own auth, for pages written in Reflex.

The browser calls these directly with ``fetch`` (same origin, through the gateway), so a
password never passes through Reflex state or the Reflex backend, and the session cookie
stays ``HttpOnly``: Django sets it on these responses like on any of its pages.

- ``GET  csrf``      -> ``{"csrfToken": "...", "header": "X-CSRFToken"}`` and the CSRF
  cookie; readable whatever ``CSRF_COOKIE_HTTPONLY`` is.
- ``POST login``     -> ``AuthenticationForm(request, data)`` then ``login()``.
- ``POST logout``    -> ``logout()``.
- ``POST password``  -> ``PasswordChangeForm`` (``AUTH_PASSWORD_VALIDATORS`` apply), then
  ``update_session_auth_hash()``.

The POST views take a JSON object (``Content-Type: application/json``) or an ordinary
form body, need Django's CSRF token (header or ``csrfmiddlewaretoken`` field), answer 405
to any other method (before the CSRF check), ``{"ok": true, ...}`` on success and
``400 {"ok": false, "errors": {"<field>" | "__all__": ["<Django's message>", ...]}}``
otherwise. Every answer is ``Cache-Control: no-store`` (``never_cache``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, cast

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect, ensure_csrf_cookie
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from .identity import _email_of, _text_attr
from .views import login_not_required

_JsonView = Callable[[HttpRequest], HttpResponse]


def _answer(data: Mapping[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(dict(data), status=status)


def _failure(errors: Mapping[str, list[str]], status: int = 400) -> JsonResponse:
    return _answer({"ok": False, "errors": dict(errors)}, status)


def _method_not_allowed(allowed: tuple[str, ...]) -> JsonResponse:
    response = _failure({"__all__": [_("Method not allowed.")]}, 405)
    response["Allow"] = ", ".join(allowed)
    return response


def csrf_header_name() -> str:
    """The request header Django reads the CSRF token from (``CSRF_HEADER_NAME``), HTTP-spelled.

    ``"HTTP_X_CSRFTOKEN"`` (the default) gives ``"X-CSRFToken"``; a custom one is
    converted from its ``META`` form (``"HTTP_X_MY_TOKEN"`` -> ``"X-My-Token"``).
    """
    meta_name = str(getattr(settings, "CSRF_HEADER_NAME", "HTTP_X_CSRFTOKEN"))
    if meta_name == "HTTP_X_CSRFTOKEN":
        return "X-CSRFToken"
    name = meta_name.removeprefix("HTTP_")
    return "-".join(part.capitalize() for part in name.split("_"))


def form_errors(form: BaseForm) -> dict[str, list[str]]:
    """Django's own messages, per field (``"__all__"`` for the form's)."""
    return {name: [str(message) for message in messages] for name, messages in form.errors.items()}


def user_summary(user: Any) -> dict[str, Any]:
    """What a login answer tells the browser about the user who logged in."""
    return {
        "id": str(user.pk),
        "username": str(user.get_username()),
        "email": _email_of(user),
        "first_name": _text_attr(user, "first_name"),
        "last_name": _text_attr(user, "last_name"),
        "is_staff": bool(getattr(user, "is_staff", False)),
        "is_superuser": bool(getattr(user, "is_superuser", False)),
    }


def _request_data(request: HttpRequest) -> Mapping[str, Any] | None:
    """The POST body as form data: a JSON object's string members, or the form fields.

    None for a JSON body that is not an object. Members that are not strings are left
    out, so the form reports them as missing.
    """
    if request.content_type == "application/json":
        try:
            raw = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(raw, dict):
            return None
        return {key: value for key, value in raw.items() if isinstance(key, str) and isinstance(value, str)}
    return request.POST


def _bad_body() -> JsonResponse:
    return _failure({"__all__": [_("The request body must be a JSON object or form data.")]})


def safe_next(request: HttpRequest, candidate: Any) -> str | None:
    """``candidate`` when it is a local path of this site (as Django's LoginView checks), else None."""
    if not isinstance(candidate, str) or not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
        return None
    if not url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return None
    return candidate


def _post_only(view: _JsonView) -> _JsonView:
    """POST, CSRF-protected; any other method is answered 405 first.

    The outer function is CSRF-exempt so that CsrfViewMiddleware leaves it alone and the
    method is checked before the token; the inner view is wrapped in ``csrf_protect``,
    which runs the same check as the middleware (and works without it).
    """
    protected = csrf_protect(view)

    @functools.wraps(view)
    def dispatch(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _method_not_allowed(("POST",))
        return protected(request)

    return login_not_required(never_cache(csrf_exempt(sensitive_post_parameters()(dispatch))))


@login_not_required
@csrf_exempt  # changes nothing; exempt so that other methods get a 405, not a CSRF 403
@never_cache
@ensure_csrf_cookie
def csrf(request: HttpRequest) -> HttpResponse:
    """``GET``: the CSRF token (and its cookie), for the POST views below."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed(("GET", "HEAD"))
    return _answer({"csrfToken": get_token(request), "header": csrf_header_name()})


@sensitive_variables("data")
def _login(request: HttpRequest) -> HttpResponse:
    data = _request_data(request)
    if data is None:
        return _bad_body()
    # The request goes to authenticate(): backends that need it (rate limiting such as
    # django-axes) get it, user_login_failed is sent on failure, and inactive users are
    # refused by the backend or by confirm_login_allowed().
    form = AuthenticationForm(request, data=data)
    if not form.is_valid():
        return _failure(form_errors(form))
    user = form.get_user()
    # Rotates the session key (and the CSRF token), sends user_logged_in.
    auth.login(request, user)
    return _answer({"ok": True, "user": user_summary(user), "next": safe_next(request, data.get("next"))})


def _logout(request: HttpRequest) -> HttpResponse:
    # Flushes the session (a new key, the old data gone) and sends user_logged_out.
    auth.logout(request)
    return _answer({"ok": True})


@sensitive_variables("data")
def _password(request: HttpRequest) -> HttpResponse:
    user = getattr(request, "user", None)
    if user is None:
        user = auth.get_user(request)
    if not user.is_authenticated:
        return _failure({"__all__": [_("You are not logged in.")]}, 403)
    data = _request_data(request)
    if data is None:
        return _bad_body()
    form = PasswordChangeForm(cast(AbstractBaseUser, user), data=data)
    if not form.is_valid():
        return _failure(form_errors(form))
    form.save()
    # Keeps this session logged in with the new hash (and cycles its key); the user's
    # other sessions are logged out by the hash check.
    auth.update_session_auth_hash(request, form.user)
    return _answer({"ok": True})


login = _post_only(_login)
logout = _post_only(_logout)
password_change = _post_only(_password)
