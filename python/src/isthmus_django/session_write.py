"""Session writes from Reflex handlers: ``POST /_isthmus/session`` and the session reference.

The Reflex process knows a browser's session only through the identity the gateway signs
into each event. So that it can write whitelisted keys back without ever learning the
session key, the identity endpoint adds ``session_ref``: the session key sealed (encrypted
and authenticated) under keys derived from ``ISTHMUS_IDENTITY_SECRET``, which the gateway
and Django hold and the Reflex process does not. The gateway carries it untouched into the
signed payload.

A write is a ``POST`` whose JSON body holds the event's whole signed injection, so it is
bound to the identity of the event being handled: the Reflex process can only name a
session one of its events came from, within the injection's 300 s window. The request is
signed with the bridge secret over method, path, timestamp, nonce and the body's SHA-256
(python/README.md, "Session writes"). Django checks the request's signature and time
window, the injection's signature and age, opens the reference, refuses keys outside
``ISTHMUS_SESSION_KEYS`` before changing anything, refuses a nonce the session has seen
(the nonces live in the session itself, so a replay is refused by whichever Django
process gets it), and saves every change in one ``save()`` — under a row lock for
database-backed sessions, so concurrent writes through here apply one after the other.

The standard library has no AEAD and a Django process need not have ``cryptography``, so
the seal is HMAC-SHA256 used as a PRF twice: a keystream in counter mode, and a tag over
nonce and ciphertext (encrypt-then-MAC), each under its own derived key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from importlib import import_module
from typing import Any

from django.conf import settings
from django.db import router, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import conf
from .identity import session_snapshot
from .session_ref import INJECTION_MAX_FUTURE_SECONDS, open_session_ref, seal_session_ref
from .views import login_not_required

logger = logging.getLogger("isthmus_django")

#: Headers of a session write (the Reflex process sends them). Outside the gateway's
#: ``X-Isthmus-`` namespace, which it strips from every request it did not write.
TIMESTAMP_HEADER = "Isthmus-Timestamp"
NONCE_HEADER = "Isthmus-Nonce"
SIGNATURE_HEADER = "Isthmus-Signature"
#: On a write's answer: the session key, sealed again, for the gateway that passed the
#: write to drop the identity it cached for that session (host/src/identity/written.rs);
#: the gateway takes it out of the response.
WRITTEN_HEADER = "X-Isthmus-Session-Written"
#: First line of the signed text, so that no other HMAC under the bridge secret matches.
SIGNING_LABEL = "isthmus-session-write-v1"
#: A request's timestamp may be this far from Django's clock, either way.
REQUEST_WINDOW_SECONDS = 60
#: The injection in the body: as old as isthmus_reflex accepts (bridge.MAX_AGE_SECONDS).
INJECTION_MAX_AGE_SECONDS = 300
#: Where the nonces of accepted writes are kept, in the session they wrote.
NONCES_KEY = "_isthmus_write_nonces"
MAX_BODY_BYTES = 64 * 1024

# --- the request signature (isthmus_reflex.session computes the same) --------------------


def signing_text(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What ``Isthmus-Signature`` covers: label, method, path, timestamp, nonce and the
    body's SHA-256 (hex), one a line."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((SIGNING_LABEL, method.upper(), path, timestamp, nonce, digest)).encode("utf-8")


def request_signature(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of :func:`signing_text` under the bridge secret."""
    text = signing_text(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode("utf-8"), text, hashlib.sha256).hexdigest()


# --- the view ----------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.extra = extra


def _answer(status: int, body: dict[str, Any]) -> HttpResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _same_hex(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii", "replace"))


def _check_request(request: HttpRequest, secret: str, now: float) -> str:
    """The request's nonce, once its signature and time window are right."""
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    nonce = request.headers.get(NONCE_HEADER, "")
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not timestamp.isdigit() or not 16 <= len(nonce) <= 64 or not nonce.isalnum() or not given:
        raise _Refused(403, "unsigned request")
    expected = request_signature(secret, request.method or "", request.path, timestamp, nonce, request.body)
    if not _same_hex(expected, given):
        raise _Refused(403, "bad signature")
    if abs(now - int(timestamp)) > REQUEST_WINDOW_SECONDS:
        raise _Refused(403, "request outside the time window")
    return nonce


def _session_of(injection: Any, bridge_secret: str, now: float) -> tuple[str, dict[str, Any]]:
    """The session key the event's signed injection names, and the injection's identity."""
    if not isinstance(injection, Mapping):
        raise _Refused(400, "no injection in the body")
    payload, sig = injection.get("payload"), injection.get("sig")
    if not isinstance(payload, str) or not isinstance(sig, str):
        raise _Refused(400, "no injection in the body")
    expected = hmac.new(bridge_secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()
    if not _same_hex(expected, sig):
        raise _Refused(403, "injection not signed by the gateway")
    try:
        data = json.loads(payload)
    except ValueError:
        raise _Refused(400, "injection payload is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != 1 or type(data.get("iat")) is not int:
        raise _Refused(400, "injection payload malformed")
    if now - data["iat"] > INJECTION_MAX_AGE_SECONDS or data["iat"] - now > INJECTION_MAX_FUTURE_SECONDS:
        raise _Refused(403, "injection expired")
    identity = data.get("identity")
    if not isinstance(identity, dict):
        raise _Refused(400, "injection payload malformed")
    ref = identity.get("session_ref")
    if not isinstance(ref, str):
        raise _Refused(409, "the browser has no Django session (or the gateway does not carry session_ref)")
    try:
        return open_session_ref(ref, now=now), identity
    except ValueError as e:
        raise _Refused(403, str(e)) from None


def _changes(body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    values = body.get("set", {})
    delete = body.get("delete", [])
    if not isinstance(values, dict) or not isinstance(delete, list) or not all(isinstance(k, str) for k in delete):
        raise _Refused(400, "set must be an object and delete a list of keys")
    if not values and not delete:
        raise _Refused(400, "nothing to write")
    refused = sorted({*values, *delete} - set(conf.session_keys()))
    if refused:
        raise _Refused(403, "keys outside ISTHMUS_SESSION_KEYS", refused=refused)
    return values, delete


def _write(
    key: str, identity: Mapping[str, Any], values: dict[str, Any], delete: list[str], nonce: str
) -> dict[str, str]:
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    model_of = getattr(store, "get_model_class", None)
    if model_of is None:
        return _write_to(store, identity, values, delete, nonce)
    model = model_of()
    # The row lock makes writes through here apply one after the other, so none loses
    # another's keys. (A Django view saving the same session at that moment still
    # overwrites the whole session, as two Django requests would.)
    with transaction.atomic(using=router.db_for_write(model)):
        list(model.objects.select_for_update().filter(session_key=key).values_list("pk", flat=True))
        return _write_to(store, identity, values, delete, nonce)


def _write_to(
    store: Any, identity: Mapping[str, Any], values: dict[str, Any], delete: list[str], nonce: str
) -> dict[str, str]:
    store.keys()  # loads it: a missing or expired session forgets its key
    if store.session_key is None:
        raise _Refused(410, "the session no longer exists")
    if identity.get("authenticated") is True and str(store.get("_auth_user_id")) != identity.get("user_id"):
        raise _Refused(409, "the session belongs to another user now")
    now = int(time.time())
    seen = store.get(NONCES_KEY)
    nonces = (
        {n: t for n, t in seen.items() if isinstance(t, int) and now - t <= 2 * REQUEST_WINDOW_SECONDS}
        if isinstance(seen, dict)
        else {}
    )
    if nonce in nonces:
        raise _Refused(403, "replayed request")
    nonces[nonce] = now
    for name, value in values.items():
        store[name] = value
    for name in delete:
        store.pop(name, None)
    store[NONCES_KEY] = nonces
    try:
        store.save()  # one write of the whole session: every change at once
    except Exception as e:  # UpdateError (deleted meanwhile), backend errors
        logger.warning("isthmus: session write not saved: %s", e)
        raise _Refused(410, "the session could not be saved (deleted meanwhile?)") from None
    return session_snapshot(store)


@csrf_exempt
@login_not_required
def session_write(request: HttpRequest) -> HttpResponse:
    """``POST /_isthmus/session``: write whitelisted keys of the session an event came from."""
    if request.method != "POST":
        response = _answer(405, {"ok": False, "error": "POST only"})
        response["Allow"] = "POST"
        return response
    bridge_secret = conf.bridge_secret()
    if not bridge_secret or not conf.identity_secret():
        logger.error("isthmus: session writes need ISTHMUS_BRIDGE_SECRET and ISTHMUS_IDENTITY_SECRET in Django")
        return _answer(503, {"ok": False, "error": "session writes not configured"})
    if "signed_cookies" in settings.SESSION_ENGINE:
        error = "a signed-cookie session lives in the browser and cannot be written from the server"
        return _answer(501, {"ok": False, "error": error})
    now = time.time()
    try:
        if len(request.body) > MAX_BODY_BYTES:
            raise _Refused(413, "body too large")
        nonce = _check_request(request, bridge_secret, now)
        try:
            body = json.loads(request.body)
        except ValueError:
            raise _Refused(400, "body is not JSON") from None
        if not isinstance(body, dict):
            raise _Refused(400, "body is not a JSON object")
        values, delete = _changes(body)
        key, identity = _session_of(body.get("injection"), bridge_secret, now)
        snapshot = _write(key, identity, values, delete, nonce)
    except _Refused as refused:
        logger.warning("isthmus: session write refused (%s)", refused.error)
        return _answer(refused.status, {"ok": False, "error": refused.error, **refused.extra})
    response = _answer(200, {"ok": True, "session": snapshot})
    response[WRITTEN_HEADER] = seal_session_ref(key)
    return response
