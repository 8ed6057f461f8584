"""The session reference: a browser's session key, sealed for the Reflex process to carry.

The identity endpoint adds ``session_ref`` to the identity of a browser that has a
session. The gateway signs it into every event; a handler's session write
(``session_write``) hands it back, and only Django (and the gateway, which shares
``ISTHMUS_IDENTITY_SECRET``) can open it, so the Reflex process never learns a session key.

The standard library has no AEAD and a Django process need not have ``cryptography``, so
the seal is HMAC-SHA256 used as a PRF twice: a keystream in counter mode, and a tag over
nonce and ciphertext (encrypt-then-MAC), each under its own key derived from the identity
secret with a label. Sealed text: ``"<iat>:<session key>"``; the reference:
``v1.`` + base64url(16-byte nonce ‖ ciphertext ‖ 32-byte tag), no padding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from django.conf import settings

from . import conf

#: A reference is refused after this long; the gateway gets a fresh one with each identity
#: fetch (every ``identity_ttl``). The setting ``ISTHMUS_SESSION_REF_MAX_AGE`` overrides.
SESSION_REF_MAX_AGE_SECONDS = 3600
#: Clock skew allowed for a reference's (and an injection's) time.
INJECTION_MAX_FUTURE_SECONDS = 60

_REF_PREFIX = "v1."
_NONCE_BYTES = 16
_TAG_BYTES = 32
_ENC_LABEL = b"isthmus session ref enc v1"
_MAC_LABEL = b"isthmus session ref mac v1"


def _derived(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), label, hashlib.sha256).digest()


def _xor_keystream(key: bytes, nonce: bytes, data: bytes) -> bytes:
    stream = bytearray()
    counter = 0
    while len(stream) < len(data):
        stream += hmac.new(key, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def seal_session_ref(session_key: str, secret: str | None = None, now: float | None = None) -> str:
    """The reference of ``session_key``: ``v1.`` + base64url(nonce ‖ ciphertext ‖ tag)."""
    secret = conf.identity_secret() if secret is None else secret
    iat = int(time.time() if now is None else now)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    cipher = _xor_keystream(_derived(secret, _ENC_LABEL), nonce, f"{iat}:{session_key}".encode())
    tag = hmac.new(_derived(secret, _MAC_LABEL), nonce + cipher, hashlib.sha256).digest()
    return _REF_PREFIX + _b64(nonce + cipher + tag)


def open_session_ref(ref: str, secret: str | None = None, now: float | None = None, max_age: int | None = None) -> str:
    """The session key sealed in ``ref``; ``ValueError`` when it is not this site's or too old."""
    secret = conf.identity_secret() if secret is None else secret
    if not secret or not ref.startswith(_REF_PREFIX):
        raise ValueError("not a session reference")
    text = ref[len(_REF_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ValueError("not a session reference") from None
    if len(raw) <= _NONCE_BYTES + _TAG_BYTES:
        raise ValueError("not a session reference")
    nonce, cipher, tag = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:-_TAG_BYTES], raw[-_TAG_BYTES:]
    expected = hmac.new(_derived(secret, _MAC_LABEL), nonce + cipher, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, tag):
        raise ValueError("session reference not sealed with this site's identity secret")
    plain = _xor_keystream(_derived(secret, _ENC_LABEL), nonce, cipher).decode("utf-8", "replace")
    iat_text, _, session_key = plain.partition(":")
    if not iat_text.isdigit() or not session_key:
        raise ValueError("malformed session reference")
    age = (time.time() if now is None else now) - int(iat_text)
    if age > (session_ref_max_age() if max_age is None else max_age) or age < -INJECTION_MAX_FUTURE_SECONDS:
        raise ValueError("session reference expired")
    return session_key


def session_ref_max_age() -> int:
    raw = getattr(settings, "ISTHMUS_SESSION_REF_MAX_AGE", SESSION_REF_MAX_AGE_SECONDS)
    return raw if isinstance(raw, int) and raw > 0 else SESSION_REF_MAX_AGE_SECONDS


def session_ref_for(session: Any) -> str | None:
    """The reference of a request's session, or None when it has no stored session."""
    try:
        session.keys()  # loaded: a key naming no stored (or an expired) session is forgotten
    except Exception:  # a broken store: no reference, the identity still answers
        return None
    key = getattr(session, "session_key", None)
    if not key or not conf.identity_secret():
        return None
    return seal_session_ref(key)
