"""Settings of the isthmus Django app, each read at call time (so tests can override them)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from django.conf import settings

SECRET_SETTING = "ISTHMUS_IDENTITY_SECRET"
SESSION_KEYS_SETTING = "ISTHMUS_SESSION_KEYS"
BRIDGE_SECRET_SETTING = "ISTHMUS_BRIDGE_SECRET"
PUBLIC_ORIGIN_SETTING = "ISTHMUS_PUBLIC_ORIGIN"
TIMEZONE_SESSION_KEY_SETTING = "ISTHMUS_TIMEZONE_SESSION_KEY"
#: Django's own time zone recipe keeps the visitor's choice under this session key.
DEFAULT_TIMEZONE_SESSION_KEY = "django_timezone"


def identity_secret() -> str:
    """The shared secret the gateway must send, or ``""`` when none is configured.

    The Django setting ``ISTHMUS_IDENTITY_SECRET`` wins; the environment variable of
    the same name is the fallback.
    """
    value = getattr(settings, SECRET_SETTING, None)
    if not value:
        value = os.environ.get(SECRET_SETTING, "")
    return value if isinstance(value, str) else ""


def bridge_secret() -> str:
    """The bridge secret (``ISTHMUS_BRIDGE_SECRET``, setting then environment), or ``""``.

    Django needs it only for session writes from Reflex handlers (``session_write``): the
    Reflex process signs those requests with it, and the gateway signs with it the
    injection each request carries.
    """
    value = getattr(settings, BRIDGE_SECRET_SETTING, None)
    if not value:
        value = os.environ.get(BRIDGE_SECRET_SETTING, "")
    return value if isinstance(value, str) else ""


def session_keys() -> tuple[str, ...]:
    """Session keys copied into the identity (``ISTHMUS_SESSION_KEYS``, default none)."""
    raw = getattr(settings, SESSION_KEYS_SETTING, ())
    if isinstance(raw, str) or not isinstance(raw, (list, tuple, set, frozenset)):
        return ()
    return tuple(k for k in raw if isinstance(k, str))


def public_origin() -> tuple[str, str] | None:
    """``(origin, host)`` of ``ISTHMUS_PUBLIC_ORIGIN``, or None when unset or malformed.

    ``"http://127.0.0.1:3000/"`` gives ``("http://127.0.0.1:3000", "127.0.0.1")``.
    """
    raw = getattr(settings, PUBLIC_ORIGIN_SETTING, None)
    if not raw or not isinstance(raw, str):
        return None
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower(), parts.hostname.lower()


def timezone_session_key() -> str:
    """The session key holding the visitor's time zone name (``ISTHMUS_TIMEZONE_SESSION_KEY``,
    default ``"django_timezone"`` as in Django's time zone documentation)."""
    raw = getattr(settings, TIMEZONE_SESSION_KEY_SETTING, DEFAULT_TIMEZONE_SESSION_KEY)
    return raw if isinstance(raw, str) else DEFAULT_TIMEZONE_SESSION_KEY
