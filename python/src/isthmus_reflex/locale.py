"""Per-event language and time zone, and the browser's CSRF token, in the Reflex process.

Django activates a language per request (``LocaleMiddleware``) and a time zone per
request (``timezone.activate`` in the project's own middleware); a Reflex event is no
Django request, so :class:`LocaleMiddleware` (a Reflex app middleware, added with
:func:`install_locale`) does the same at the start of every event, from the verified
identity:

- the language is the identity's ``language`` when the identity endpoint computed one;
  otherwise it is computed here as ``LocaleMiddleware`` would (the language cookie, then
  ``Accept-Language``, each matched against ``LANGUAGES``) from the WebSocket handshake's
  headers, which Reflex keeps backend-side in ``router_data["headers"]``;
- the time zone is the identity's ``timezone`` (see ``ISTHMUS_TIMEZONE_SESSION_KEY``);
  an empty or unknown name deactivates (Django's ``TIME_ZONE``).

Reflex 0.10.1 calls a middleware's ``preprocess`` before each handler, in the same task,
but never its ``postprocess``; so instead of deactivating after a handler, every event
starts by activating its own values or resetting to the defaults: nothing leaks from one
event (or user) into the next. Needs Django set up (:func:`configure_django`); without
it these functions do nothing.

This module imports Reflex only for :class:`LocaleMiddleware`.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Mapping
from typing import Any

from .bridge import Identity, verified_identity

logger = logging.getLogger("isthmus_reflex")

#: Django's default CSRF cookie name (``CSRF_COOKIE_NAME``).
DEFAULT_CSRF_COOKIE = "csrftoken"


def _django_ready() -> bool:
    try:
        from django.apps import apps
        from django.conf import settings
    except ImportError:  # pragma: no cover - Django is a dependency
        return False
    return bool(settings.configured and apps.ready)


def handshake_headers(router_data: Any) -> Mapping[str, str]:
    """The WebSocket handshake's headers Reflex keeps in ``router_data["headers"]``
    (backend-side: the cookie header is never sent to the browser)."""
    if not isinstance(router_data, Mapping):
        return {}
    headers = router_data.get("headers")
    return headers if isinstance(headers, Mapping) else {}


def handshake_cookies(router_data: Any) -> dict[str, str]:
    """The browser's cookies at the handshake, parsed as Django parses them."""
    from django.http.cookie import parse_cookie

    raw = handshake_headers(router_data).get("cookie", "")
    return parse_cookie(raw) if isinstance(raw, str) and raw else {}


def language_for(identity: Identity, router_data: Any) -> str:
    """The language to activate for an event: the identity's, or what Django's
    ``LocaleMiddleware`` would choose for the handshake's language cookie and
    ``Accept-Language`` header ("" when Django is not set up or ``USE_I18N`` is off)."""
    if not _django_ready():
        return ""
    from django.conf import settings
    from django.http import HttpRequest
    from django.utils import translation

    if not settings.USE_I18N:
        return ""
    if identity.language:
        try:
            return translation.get_supported_language_variant(identity.language)
        except LookupError:
            logger.debug("isthmus: identity language %r is not in LANGUAGES", identity.language)
    request = HttpRequest()
    accept = handshake_headers(router_data).get("accept-language")
    if isinstance(accept, str) and accept:
        request.META["HTTP_ACCEPT_LANGUAGE"] = accept
    request.COOKIES = handshake_cookies(router_data)
    return translation.get_language_from_request(request) or ""


def csrf_cookie_name() -> str | None:
    """Django's ``CSRF_COOKIE_NAME``; None with ``CSRF_USE_SESSIONS`` (no such cookie)."""
    if not _django_ready():
        return DEFAULT_CSRF_COOKIE
    from django.conf import settings

    return None if settings.CSRF_USE_SESSIONS else str(settings.CSRF_COOKIE_NAME)


def csrf_token_for(router_data: Any) -> str:
    """The browser's CSRF cookie value at the handshake: what a form posting to Django
    must send as ``csrfmiddlewaretoken`` (Django accepts the unmasked secret). "" when
    there is none, or with ``CSRF_USE_SESSIONS`` (the secret is then in the session)."""
    name = csrf_cookie_name()
    if name is None:
        return ""
    from django.http.cookie import parse_cookie

    raw = handshake_headers(router_data).get("cookie", "")
    if not isinstance(raw, str) or not raw:
        return ""
    return parse_cookie(raw).get(name, "")


def activate_for(router_data: Any) -> tuple[str, str]:
    """Activate this event's language and time zone (or reset both to Django's defaults).

    Returns:
        The activated ``(language, timezone)``; "" for a default.
    """
    if not _django_ready():
        return "", ""
    from django.utils import timezone, translation

    identity = verified_identity(router_data) if router_data else Identity()
    language = language_for(identity, router_data)
    if language:
        translation.activate(language)
    else:
        translation.deactivate()
    zone = ""
    if identity.timezone:
        try:
            timezone.activate(zoneinfo.ZoneInfo(identity.timezone))
            zone = identity.timezone
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            logger.debug("isthmus: unknown time zone %r; using TIME_ZONE", identity.timezone)
    if not zone:
        timezone.deactivate()
    return language, zone


def deactivate() -> None:
    """Back to Django's defaults (``LANGUAGE_CODE``, ``TIME_ZONE``)."""
    if not _django_ready():
        return
    from django.utils import timezone, translation

    translation.deactivate()
    timezone.deactivate()


def _middleware_class() -> type:
    import reflex as rx

    class LocaleMiddleware(rx.Middleware):
        """Activates each event's language and time zone before its handler runs."""

        async def preprocess(self, app: Any, state: Any, event: Any) -> None:
            activate_for(getattr(state, "router_data", None))
            return None

    return LocaleMiddleware


def install_locale(app: Any) -> Any:
    """Add the :class:`LocaleMiddleware` to a Reflex ``app`` (first, so that other
    middleware sees the event's language too). Returns the middleware."""
    middleware = _middleware_class()()
    app.add_middleware(middleware, 0)
    return middleware
