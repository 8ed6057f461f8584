"""Session writes from handlers: the signed call to Django's ``POST /_isthmus/session``.

A handler's write carries the event's own signed injection (``router_data["isthmus"]``),
whose identity holds Django's sealed reference to the browser's session
(``session_ref``): Django opens it, so this process never learns a session key and can
only write a session one of its events came from. The request is signed with the bridge
secret over method, path, timestamp, nonce and the body's SHA-256
(python/README.md, "Session writes").

After a write, the snapshot Django answers with is laid over ``django_session`` for every
event carrying the same session reference: the gateway keeps an identity (and the
reference in it) for ``identity_ttl``, and fetches a fresh one, with a new reference, when
its entry ends or a Django response changes the session cookie. So this process's own
next events see the write at once. Events served by another Reflex process see it when
the gateway fetches the identity again.

This module does not import Reflex or Django (``httpx`` comes with Reflex).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .bridge import INJECTION_KEY, MAX_AGE_SECONDS, bridge_secret, verify_injection

#: Where writes go: Django's ``/_isthmus/session`` (directly or through the gateway).
URL_ENV = "ISTHMUS_SESSION_URL"
#: What the signature covers first (isthmus_django.session_write.SIGNING_LABEL).
SIGNING_LABEL = "isthmus-session-write-v1"
TIMEOUT_SECONDS = 5.0


class SessionWriteError(Exception):
    """A session write that did not happen; ``status`` is Django's (0: not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class SessionKeyRefused(SessionWriteError):
    """Keys outside Django's ``ISTHMUS_SESSION_KEYS``; nothing was written."""

    def __init__(self, keys: Iterable[str], status: int = 403) -> None:
        self.keys = tuple(sorted(keys))
        super().__init__(f"session keys outside ISTHMUS_SESSION_KEYS: {', '.join(self.keys)}", status)


_explicit_url: str | None = None


def set_session_url(url: str | None) -> None:
    """Use ``url`` for session writes instead of ``ISTHMUS_SESSION_URL`` (None: back to it)."""
    global _explicit_url
    _explicit_url = url


def session_url() -> str:
    return _explicit_url or os.environ.get(URL_ENV, "")


def request_signature(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """What ``Isthmus-Signature`` carries (isthmus_django.session_write computes the same)."""
    digest = hashlib.sha256(body).hexdigest()
    text = "\n".join((SIGNING_LABEL, method.upper(), path, timestamp, nonce, digest)).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), text, hashlib.sha256).hexdigest()


def signed_request(
    url: str, body: bytes, secret: str, *, now: float | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The headers of a session write of ``body`` to ``url``."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16) if nonce is None else nonce
    path = urlsplit(url).path or "/"
    return {
        "Content-Type": "application/json",
        "Isthmus-Timestamp": timestamp,
        "Isthmus-Nonce": nonce,
        "Isthmus-Signature": request_signature(secret, "POST", path, timestamp, nonce, body),
    }


# --- the overlay -------------------------------------------------------------------------

#: Session reference -> (written at, whitelisted keys as JSON texts), after a write.
_overlays: dict[str, tuple[float, dict[str, str]]] = {}
_overlays_lock = threading.Lock()
_OVERLAYS_MAX = 4096


def _session_ref_of(router_data: Any) -> str | None:
    """The session reference of a verified injection (parsed only when needed)."""
    injection = router_data.get(INJECTION_KEY) if isinstance(router_data, Mapping) else None
    payload = injection.get("payload") if isinstance(injection, Mapping) else None
    if not isinstance(payload, str):
        return None
    try:
        ref = json.loads(payload)["identity"].get("session_ref")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return ref if isinstance(ref, str) else None


def _remember(ref: str, snapshot: dict[str, str]) -> None:
    with _overlays_lock:
        if len(_overlays) >= _OVERLAYS_MAX:
            _overlays.clear()
        _overlays[ref] = (time.time(), dict(snapshot))


def overlaid_session(router_data: Any, session: dict[str, Any]) -> dict[str, Any]:
    """``session`` (an event's verified snapshot) with this process's later writes laid over it."""
    if not _overlays:
        return session
    ref = _session_ref_of(router_data)
    if ref is None:
        return session
    with _overlays_lock:
        hit = _overlays.get(ref)
    if hit is None or time.time() - hit[0] > MAX_AGE_SECONDS:
        return session
    return {key: json.loads(text) for key, text in hit[1].items()}


def _reset_overlays() -> None:
    with _overlays_lock:
        _overlays.clear()


# --- the write ---------------------------------------------------------------------------


async def write_session(
    router_data: Any,
    values: Mapping[str, Any] | None = None,
    delete: Iterable[str] = (),
    *,
    url: str | None = None,
    secret: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Write ``values`` (and delete ``delete``) in the Django session of ``router_data``'s event.

    Returns the whitelisted session keys after the write (decoded). Raises
    :class:`SessionKeyRefused` for keys outside ``ISTHMUS_SESSION_KEYS`` (nothing written)
    and :class:`SessionWriteError` for anything else that kept the write from happening.
    """
    import httpx  # with Reflex; imported here so that the module loads without it

    secret = bridge_secret() if secret is None else secret
    url = session_url() if url is None else url
    if not url:
        raise SessionWriteError(f"no session write URL ({URL_ENV}, e.g. http://127.0.0.1:8001/_isthmus/session)")
    context = verify_injection(router_data, secret)
    if not context.verified:
        raise SessionWriteError(f"this event carries no verified identity ({context.reason})")
    ref = _session_ref_of(router_data)
    if ref is None:
        raise SessionWriteError("this browser has no Django session to write (no session_ref in its identity)", 409)
    changes = dict(values or {})
    body = json.dumps(
        {"injection": dict(router_data[INJECTION_KEY]), "set": changes, "delete": list(delete)},
        separators=(",", ":"),
    ).encode("utf-8")
    headers = signed_request(url, body, secret)
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        raise SessionWriteError(f"session write failed: {e}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise SessionWriteError(
            f"session write answered {response.status_code}, not isthmus JSON", response.status_code
        )
    if response.status_code != 200 or answer.get("ok") is not True:
        refused = answer.get("refused")
        if isinstance(refused, list) and refused:
            raise SessionKeyRefused([str(k) for k in refused], response.status_code)
        raise SessionWriteError(f"session write refused: {answer.get('error')}", response.status_code)
    snapshot = answer.get("session")
    if not isinstance(snapshot, dict) or not all(isinstance(v, str) for v in snapshot.values()):
        raise SessionWriteError("session write answered without the session", response.status_code)
    _remember(ref, snapshot)
    return {key: json.loads(text) for key, text in snapshot.items()}
