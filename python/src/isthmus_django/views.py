"""``GET /_isthmus/identity``: the Django identity behind a browser's cookies, for the gateway.

The gateway copies the browser's ``Cookie`` header verbatim and adds
``X-Isthmus-Secret``. The view runs Django's own session and authentication machinery
(``request.session`` and ``request.user`` from SessionMiddleware and
AuthenticationMiddleware, so every session backend, custom user model and the
session-auth-hash check work), but never writes anything: no session is created, saved,
flushed or cycled, no cookie is set, ``last_login`` and the session expiry are untouched.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Any, TypeVar

from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt

from . import IDENTITY_SECRET_HEADER, conf
from .identity import build_identity
from .session_ref import session_ref_for

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase | Awaitable[HttpResponseBase]])

try:  # Django >= 5.1 (re-exported for auth_views)
    from django.contrib.auth.decorators import login_not_required as login_not_required
except ImportError:  # pragma: no cover - Django < 5.1 has no LoginRequiredMiddleware

    def login_not_required(view_func: _View) -> _View:
        # Django 5.1's decorator (a function attribute; a Callable type declares none).
        view_func.__dict__["login_required"] = False
        return view_func


logger = logging.getLogger("isthmus_django")

# Methods through which a session backend writes to its store. They are replaced on the
# request's session instance (only for this request) so that Django's auth code may call
# flush() on a stale session hash, or cycle_key() after a SECRET_KEY_FALLBACKS match,
# with the in-memory effect (the user becomes anonymous) but nothing persisted.
_SYNC_WRITERS = ("save", "delete", "create")
_ASYNC_WRITERS = ("asave", "adelete", "acreate")


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


async def _anoop(*_args: Any, **_kwargs: Any) -> None:
    return None


def _make_read_only(session: Any) -> None:
    for name in _SYNC_WRITERS:
        if hasattr(session, name):
            setattr(session, name, _noop)
    for name in _ASYNC_WRITERS:
        if hasattr(session, name):
            setattr(session, name, _anoop)


class IdentityResponse(JsonResponse):
    """A JSON response that refuses cookies, whatever middleware runs after the view."""

    def set_cookie(self, key: str, *args: Any, **kwargs: Any) -> None:
        logger.debug("isthmus: dropped a cookie %r set on the identity response", key)

    def delete_cookie(self, key: str, *args: Any, **kwargs: Any) -> None:
        logger.debug("isthmus: dropped a cookie deletion %r on the identity response", key)


def _plain(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def request_language(request: HttpRequest) -> str:
    """The language Django's LocaleMiddleware would activate for ``request`` (without
    i18n URL prefixes), or "" when the request carries neither an ``Accept-Language``
    header nor the language cookie, or ``USE_I18N`` is off: the gateway sends only the
    session cookie today, and the Reflex side then decides from its own handshake."""
    if not settings.USE_I18N:
        return ""
    if "HTTP_ACCEPT_LANGUAGE" not in request.META and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
        return ""
    return translation.get_language_from_request(request) or ""


def secret_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the configured secret with the header's value."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogateescape"))


@csrf_exempt
@login_not_required
def identity(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        response = _plain(405, "method not allowed")
        response["Allow"] = "GET"
        return response
    expected = conf.identity_secret()
    if not expected:
        logger.error("isthmus: ISTHMUS_IDENTITY_SECRET is not configured; the identity endpoint answers 503")
        return _plain(503, "identity endpoint not configured")
    if not secret_matches(expected, request.headers.get(IDENTITY_SECRET_HEADER)):
        logger.warning("isthmus: identity request without the right %s header refused", IDENTITY_SECRET_HEADER)
        return _plain(403, "forbidden")

    session = getattr(request, "session", None)
    if session is None:
        # SessionMiddleware is not installed (a system check warns): load the session
        # the way it would.
        engine = import_module(settings.SESSION_ENGINE)
        session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
        request.session = session
    _make_read_only(session)
    try:
        user = getattr(request, "user", None)
        if user is None:
            user = auth.get_user(request)
        payload = build_identity(user, session, language=request_language(request))
        # For session writes from Reflex handlers (session_write): the key, sealed.
        ref = session_ref_for(session)
        if ref is not None:
            payload["session_ref"] = ref
    finally:
        # Detach the session: SessionMiddleware.process_response then finds no session
        # and neither saves it (SESSION_SAVE_EVERY_REQUEST) nor sets or deletes a cookie.
        with contextlib.suppress(AttributeError):
            del request.session
    response = IdentityResponse(payload)
    response["Cache-Control"] = "no-store"
    return response
