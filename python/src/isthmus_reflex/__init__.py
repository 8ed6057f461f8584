"""Reflex side of isthmus.

- :func:`configure_django` — Django (and its ORM) inside the Reflex process;
- :func:`verify_injection`, :class:`Identity`, :class:`BridgeContext` — the signed
  identity the gateway puts in every event's ``router_data``;
- ``DjangoUserMixin`` — ``self.django_user`` / ``django_session`` / ``django_query`` and
  ``await self.get_user()`` and ``await self.update_session(...)`` in handlers (imports ``reflex``);
- ``login_required``, ``permission_required``, ``group_required``, ``staff_required``,
  ``superuser_required`` — handler guards;
- :class:`ModelSerializer` — JSON-safe dicts from Django models for Reflex state;
- ``ModelState`` — list / search / paginate / create / update / delete one model, with
  Django's model permissions from the identity, and :func:`database_sync_to_async`
  (``isthmus_reflex.models``, imports ``reflex``);
- :func:`install_upload_identity` — the same identity in upload handlers (from the
  gateway's ``X-Isthmus-Identity`` header);
- ``UserState`` — the verified identity as vars for components
  (``rx.cond(UserState.is_authenticated, …)``), refreshed on every event (imports ``reflex``);
- :func:`guard_pages` — the page guards of isthmus.toml (or given inline) on every event
  of a guarded page: client-side navigation, ``on_load`` and handlers;
- :func:`install_locale` — each event's language and time zone activated before its handler;
- :mod:`isthmus_reflex.auth` — log in / out and change the password from Reflex pages with
  Django's own views (imports ``reflex``).
"""

from __future__ import annotations

from typing import Any

from .bridge import (
    ANONYMOUS,
    INJECTION_KEY,
    MAX_AGE_SECONDS,
    MAX_FUTURE_SECONDS,
    PAYLOAD_VERSION,
    SECRET_ENV,
    BridgeContext,
    Identity,
    bridge_secret,
    make_injection,
    set_bridge_secret,
    sign_payload,
    verify_injection,
)
from .decorators import (
    group_required,
    identity_of,
    login_required,
    permission_required,
    staff_required,
    superuser_required,
)
from .django_setup import configure_django
from .pages import PageGuardError, PageGuards, guard_pages, load_page_guards
from .session import SessionKeyRefused, SessionWriteError, set_session_url, write_session
from .upload import UploadIdentityMiddleware, encode_identity_header, install_upload_identity

__all__ = [
    "ANONYMOUS",
    "INJECTION_KEY",
    "MAX_AGE_SECONDS",
    "MAX_FUTURE_SECONDS",
    "PAYLOAD_VERSION",
    "SECRET_ENV",
    "BridgeContext",
    "DjangoUserMixin",
    "Identity",
    "ModelSerializer",
    "ModelState",
    "PageGuardError",
    "PageGuards",
    "ReflexDjangoModelSerializer",
    "SessionKeyRefused",
    "SessionWriteError",
    "UploadIdentityMiddleware",
    "UserState",
    "add_message",
    "bridge_secret",
    "configure_django",
    "database_sync_to_async",
    "encode_identity_header",
    "fetch_messages",
    "group_required",
    "guard_pages",
    "identity_of",
    "install_locale",
    "install_upload_identity",
    "load_page_guards",
    "login_required",
    "make_injection",
    "permission_required",
    "set_bridge_secret",
    "set_session_url",
    "sign_payload",
    "staff_required",
    "superuser_required",
    "user_for_identity",
    "verify_injection",
    "write_session",
]

_LAZY = {
    "DjangoUserMixin": "isthmus_reflex.state",
    "UserState": "isthmus_reflex.userstate",
    "add_message": "isthmus_reflex.userstate",
    "fetch_messages": "isthmus_reflex.userstate",
    "install_locale": "isthmus_reflex.locale",
    "user_for_identity": "isthmus_reflex.users",
    "ModelSerializer": "isthmus_reflex.serializers",
    "ReflexDjangoModelSerializer": "isthmus_reflex.serializers",
    "ModelState": "isthmus_reflex.models",
    "database_sync_to_async": "isthmus_reflex.models",
}


def __getattr__(name: str) -> Any:
    # The mixin imports reflex and the serializer imports Django models: load on first use.
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'isthmus_reflex' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
