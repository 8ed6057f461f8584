"""Build the identity object the gateway receives (see python/README.md, "Identity endpoint")."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from . import conf

logger = logging.getLogger("isthmus_django")


def encode_session_value(value: Any) -> str:
    """A session value as the JSON text the contract carries (``3`` -> ``"3"``, ``"x"`` -> ``'"x"'``)."""
    return json.dumps(value, cls=DjangoJSONEncoder)


def session_snapshot(session: Mapping[str, Any] | None, keys: Iterable[str] | None = None) -> dict[str, str]:
    """The whitelisted session keys present in ``session``, each value JSON-encoded as a string."""
    if session is None:
        return {}
    out: dict[str, str] = {}
    for key in conf.session_keys() if keys is None else keys:
        if key not in session:
            continue
        try:
            out[key] = encode_session_value(session[key])
        except (TypeError, ValueError):
            logger.warning("isthmus: session key %r holds a value that is not JSON-serializable; left out", key)
    return out


def _email_of(user: Any) -> str:
    # user.__class__, not type(user): request.user is a SimpleLazyObject.
    cls = user.__class__
    field_name = None
    getter = getattr(cls, "get_email_field_name", None)
    if callable(getter):
        field_name = getter()
    elif hasattr(cls, "EMAIL_FIELD"):
        field_name = cls.EMAIL_FIELD
    if not field_name:
        return ""
    value = getattr(user, field_name, "")
    return "" if value is None else str(value)


def _group_names(user: Any) -> list[str]:
    groups = getattr(user, "groups", None)
    if groups is None or not hasattr(groups, "values_list"):
        return []
    return sorted(str(name) for name in groups.values_list("name", flat=True))


def _permissions(user: Any) -> list[str]:
    getter = getattr(user, "get_all_permissions", None)
    if not callable(getter):
        return []
    return sorted(str(p) for p in getter())


def _text_attr(user: Any, name: str) -> str:
    """A text field of the user model, or "" when the model has none (custom users)."""
    value = getattr(user, name, "")
    return "" if value is None else str(value)


def timezone_of(user: Any, session: Mapping[str, Any] | None) -> str:
    """The visitor's time zone name: the session's ``ISTHMUS_TIMEZONE_SESSION_KEY`` value,
    else the user's ``timezone`` attribute, else "" (Django's ``TIME_ZONE``)."""
    key = conf.timezone_session_key()
    value = session.get(key) if session is not None and key else None
    if not value and user is not None and getattr(user, "is_authenticated", False):
        value = getattr(user, "timezone", None)
    return str(value) if value else ""


def anonymous_identity(session: Mapping[str, Any] | None = None, *, language: str = "") -> dict[str, Any]:
    return {
        "authenticated": False,
        "user_id": None,
        "username": "",
        "email": "",
        "first_name": "",
        "last_name": "",
        "is_staff": False,
        "is_superuser": False,
        "groups": [],
        "permissions": [],
        "session": session_snapshot(session),
        "language": language,
        "timezone": timezone_of(None, session),
    }


def build_identity(user: Any, session: Mapping[str, Any] | None = None, *, language: str = "") -> dict[str, Any]:
    """The identity object for ``user`` (a user model instance or ``AnonymousUser``).

    ``permissions`` is ``sorted(user.get_all_permissions())`` (every permission for an
    active superuser), ``groups`` the sorted group names, ``session`` the keys listed in
    ``ISTHMUS_SESSION_KEYS`` with JSON-text values, ``language`` what the caller computed
    (the view: what LocaleMiddleware would activate, or "" when the request carries no
    language hint), ``timezone`` from :func:`timezone_of`.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return anonymous_identity(session, language=language)
    get_username = getattr(user, "get_username", None)
    username = get_username() if callable(get_username) else getattr(user, "username", "")
    return {
        "authenticated": True,
        "user_id": str(user.pk),
        "username": "" if username is None else str(username),
        "email": _email_of(user),
        "first_name": _text_attr(user, "first_name"),
        "last_name": _text_attr(user, "last_name"),
        "is_staff": bool(getattr(user, "is_staff", False)),
        "is_superuser": bool(getattr(user, "is_superuser", False)),
        "groups": _group_names(user),
        "permissions": _permissions(user),
        "session": session_snapshot(session),
        "language": language,
        "timezone": timezone_of(user, session),
    }
