"""Verification of the identity the gateway injects into every event's ``router_data``.

For each allowed event the gateway sets ``router_data["isthmus"]`` to
``{"payload": "<JSON text>", "sig": "<hex HMAC-SHA256 of the payload's UTF-8 bytes>"}``
with the bridge secret it shares with this process (``ISTHMUS_BRIDGE_SECRET``). The
payload decodes to ``{"v": 1, "iat": <unix seconds>, "identity": {...}, "query":
{...}, "context": {...}}``. Anything unsigned, wrongly signed, malformed, of another
version or outside the time window is treated as anonymous: never trust it.

This module does not import Reflex or Django.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

logger = logging.getLogger("isthmus_reflex")

_T = TypeVar("_T")

#: The ``router_data`` key the gateway writes (and strips from what clients send).
INJECTION_KEY = "isthmus"
#: Payload version this module understands.
PAYLOAD_VERSION = 1
#: Oldest accepted ``iat``, in seconds before now.
MAX_AGE_SECONDS = 300
#: Latest accepted ``iat``, in seconds after now (clock skew).
MAX_FUTURE_SECONDS = 60
#: Environment variable holding the bridge secret.
SECRET_ENV = "ISTHMUS_BRIDGE_SECRET"


@dataclass(frozen=True)
class Identity:
    """The Django user behind an event, as the gateway resolved it from the session cookie."""

    authenticated: bool = False
    user_id: str | None = None
    username: str = ""
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    is_staff: bool = False
    is_superuser: bool = False
    groups: tuple[str, ...] = ()
    permissions: frozenset[str] = frozenset()
    #: Whitelisted session keys (``ISTHMUS_SESSION_KEYS``), values decoded from JSON.
    session: dict[str, Any] = field(default_factory=dict, hash=False)
    #: The language Django chose for this browser ("" when the identity endpoint did not
    #: say; :mod:`isthmus_reflex.locale` then decides from the handshake's headers).
    language: str = ""
    #: The user's time zone name ("" for Django's ``TIME_ZONE``).
    timezone: str = ""

    @property
    def full_name(self) -> str:
        """``first_name last_name`` stripped, like Django's ``User.get_full_name()``."""
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_authenticated(self) -> bool:
        return self.authenticated

    @property
    def is_anonymous(self) -> bool:
        return not self.authenticated

    @property
    def pk(self) -> str | None:
        return self.user_id

    def has_perm(self, perm: str) -> bool:
        """Like Django's ``User.has_perm``: an authenticated superuser has every permission."""
        if not self.authenticated:
            return False
        return self.is_superuser or perm in self.permissions

    def has_perms(self, perms: list[str] | tuple[str, ...] | set[str]) -> bool:
        return all(self.has_perm(p) for p in perms)

    def in_group(self, *names: str) -> bool:
        """Whether the user belongs to any of ``names``."""
        return self.authenticated and any(n in self.groups for n in names)


#: An anonymous identity (compare with ==; its session dict is not to be mutated).
ANONYMOUS = Identity()


@dataclass(frozen=True)
class BridgeContext:
    """Everything one verified injection carries, or the anonymous default with a reason."""

    identity: Identity = field(default_factory=Identity)
    #: The page's query parameters (str -> str, last value wins).
    query: dict[str, str] = field(default_factory=dict, hash=False)
    #: Extra fields the gateway's bridge policy added.
    context: dict[str, str] = field(default_factory=dict, hash=False)
    iat: int | None = None
    #: True only for a payload whose signature, version and time window were checked.
    verified: bool = False
    #: Why the injection was refused (None when verified).
    reason: str | None = None


# --- secret ---------------------------------------------------------------------------

_explicit_secret: str | None = None


def set_bridge_secret(secret: str | None) -> None:
    """Use ``secret`` instead of the ``ISTHMUS_BRIDGE_SECRET`` environment variable (None: back to it)."""
    global _explicit_secret
    _explicit_secret = secret


def bridge_secret() -> str:
    """The bridge secret: the one set with :func:`set_bridge_secret`, else the environment's."""
    if _explicit_secret:
        return _explicit_secret
    return os.environ.get(SECRET_ENV, "")


# --- signing (what the gateway does; for tests and non-gateway setups) ------------------


def sign_payload(payload_text: str, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``payload_text``'s UTF-8 bytes."""
    return hmac.new(secret.encode("utf-8"), payload_text.encode("utf-8"), hashlib.sha256).hexdigest()


def make_injection(
    identity: Mapping[str, Any],
    secret: str,
    *,
    query: Mapping[str, str] | None = None,
    context: Mapping[str, str] | None = None,
    iat: int | None = None,
    version: int = PAYLOAD_VERSION,
) -> dict[str, str]:
    """Build the ``router_data["isthmus"]`` value the gateway would inject."""
    payload = {
        "v": version,
        "iat": int(time.time()) if iat is None else iat,
        "identity": dict(identity),
        "query": dict(query or {}),
        "context": dict(context or {}),
    }
    text = json.dumps(payload, separators=(",", ":"))
    return {"payload": text, "sig": sign_payload(text, secret)}


# --- verification ----------------------------------------------------------------------


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _note_rejection(reason: str) -> None:
    """Log a warning the first time each reason is seen, debug lines after that."""
    with _warned_lock:
        first = reason not in _warned
        _warned.add(reason)
    if first:
        logger.warning("isthmus: event identity rejected (%s); treating the user as anonymous", reason)
    else:
        logger.debug("isthmus: event identity rejected (%s)", reason)


def _reset_warnings() -> None:
    """Forget which reasons were logged (for tests)."""
    with _warned_lock:
        _warned.clear()


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _Rejected(f"malformed payload: identity.{what} is not a list of strings")
    return value


def _fresh(cls: type[_T], values: dict[str, Any]) -> _T:
    """An instance of the frozen dataclass ``cls`` holding ``values`` (every field given).

    What ``cls(**values)`` gives, without its ``__init__``: a frozen dataclass sets each
    field through ``object.__setattr__``, which made building the per-call objects the
    larger part of a cached verification (~3 of ~5 µs, more inside Reflex's busy loop).
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


_IDENTITY_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Identity) if f.name != "session"}


@dataclass(frozen=True)
class _Verified:
    """A verified payload's contents, kept immutable so that it can be cached: each call
    builds fresh objects from it (handlers may mutate what they get)."""

    identity: dict[str, Any]
    #: Whitelisted session keys and their JSON texts, decoded afresh per call.
    session: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...]
    context: tuple[tuple[str, str], ...]
    iat: int
    #: Every Identity field but ``session`` (defaults filled in), for :func:`_fresh`.
    identity_values: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity_values", {**_IDENTITY_DEFAULTS, **self.identity})

    def identity_now(self) -> Identity:
        identity = _fresh(Identity, self.identity_values)
        identity.__dict__["session"] = {key: json.loads(text) for key, text in self.session} if self.session else {}
        return identity

    def context_now(self) -> BridgeContext:
        return _fresh(
            BridgeContext,
            {
                "identity": self.identity_now(),
                "query": dict(self.query),
                "context": dict(self.context),
                "iat": self.iat,
                "verified": True,
                "reason": None,
            },
        )


def _parse_identity(raw: Any) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """Identity's fields (immutable values only) and the session's JSON texts."""
    if not isinstance(raw, dict):
        raise _Rejected("malformed payload: identity is not an object")
    authenticated = raw.get("authenticated")
    if not isinstance(authenticated, bool):
        raise _Rejected("malformed payload: identity.authenticated is not a boolean")
    user_id = raw.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise _Rejected("malformed payload: identity.user_id is not a string or null")
    if authenticated and not user_id:
        raise _Rejected("malformed payload: authenticated identity without user_id")
    for name in ("username", "email", "first_name", "last_name", "language", "timezone"):
        if not isinstance(raw.get(name, ""), str):
            raise _Rejected(f"malformed payload: identity.{name} is not a string")
    for name in ("is_staff", "is_superuser"):
        if not isinstance(raw.get(name, False), bool):
            raise _Rejected(f"malformed payload: identity.{name} is not a boolean")
    groups = _str_list(raw.get("groups", []), "groups")
    permissions = _str_list(raw.get("permissions", []), "permissions")
    session_raw = raw.get("session", {})
    if not _is_str_map(session_raw):
        raise _Rejected("malformed payload: identity.session is not an object of strings")
    for text in session_raw.values():
        try:
            json.loads(text)
        except ValueError:
            raise _Rejected("malformed payload: identity.session value is not JSON text") from None
    session = tuple(session_raw.items())
    # The browser's language and time zone hold for anonymous visitors too.
    locale = {name: raw[name] for name in ("language", "timezone") if raw.get(name)}
    if not authenticated:
        # Flags and lists of an anonymous identity carry nothing; only the session (and
        # the locale) do.
        return locale, session
    fields = {
        "authenticated": True,
        "user_id": user_id,
        "username": raw.get("username", ""),
        "email": raw.get("email", ""),
        "first_name": raw.get("first_name", ""),
        "last_name": raw.get("last_name", ""),
        "is_staff": raw.get("is_staff", False),
        "is_superuser": raw.get("is_superuser", False),
        "groups": tuple(groups),
        "permissions": frozenset(permissions),
        **locale,
    }
    return fields, session


#: Payloads already verified, by (secret, signature, payload text). The gateway signs a
#: connection's identity once per second, so most events repeat the last payload:
#: a hit skips the HMAC, the JSON parse and the checks (about 35 µs of 40 measured).
_verified: dict[tuple[str, str, str], _Verified] = {}
_VERIFIED_MAX = 1024


def _decode(payload_text: str, sig: str, secret: str) -> _Verified:
    """Check the signature, then decode and check the payload."""
    key = (secret, sig, payload_text)
    hit = _verified.get(key)
    if hit is not None:
        return hit
    expected = sign_payload(payload_text, secret)
    try:
        sig_bytes = sig.lower().encode("ascii")
    except UnicodeEncodeError:
        raise _Rejected("bad signature") from None
    if not hmac.compare_digest(expected.encode("ascii"), sig_bytes):
        raise _Rejected("bad signature")
    try:
        data = json.loads(payload_text)
    except ValueError:
        raise _Rejected("payload is not JSON") from None
    if not isinstance(data, dict):
        raise _Rejected("payload is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version != PAYLOAD_VERSION:
        raise _Rejected(f"unsupported payload version {version!r}")
    iat = data.get("iat")
    if type(iat) is not int:
        raise _Rejected("malformed payload: iat is not an integer")
    identity, session = _parse_identity(data.get("identity"))
    query = data.get("query", {})
    context = data.get("context", {})
    if not _is_str_map(query):
        raise _Rejected("malformed payload: query is not an object of strings")
    if not _is_str_map(context):
        raise _Rejected("malformed payload: context is not an object of strings")
    verified = _Verified(identity, session, tuple(query.items()), tuple(context.items()), iat)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[key] = verified
    return verified


def verify_injection(router_data: Any, secret: str | None = None, now: float | None = None) -> BridgeContext:
    """Verify ``router_data["isthmus"]`` and return what it carries.

    Args:
        router_data: An event's (or a state's) ``router_data`` dict.
        secret: The bridge secret; default :func:`bridge_secret`.
        now: Unix time to check ``iat`` against; default ``time.time()``.

    Returns:
        A verified :class:`BridgeContext`, or an anonymous one whose ``reason`` says why
        the injection was refused (a warning is logged once per reason).
    """
    try:
        return _verify(router_data, bridge_secret() if secret is None else secret, now).context_now()
    except _Rejected as rejected:
        _note_rejection(rejected.reason)
        return BridgeContext(reason=rejected.reason)


def verified_identity(router_data: Any) -> Identity:
    """The identity of :func:`verify_injection` (with the configured secret), without
    building the rest of its context: what a handler asks on every event."""
    try:
        return _verify(router_data, bridge_secret(), None).identity_now()
    except _Rejected as rejected:
        _note_rejection(rejected.reason)
        return Identity()


def _verify(router_data: Any, secret: str, now: float | None) -> _Verified:
    if not secret:
        raise _Rejected(f"no bridge secret configured ({SECRET_ENV})")
    # (type() first: isinstance against the Mapping ABC is slow, and these are plain dicts.)
    if type(router_data) is not dict and not isinstance(router_data, Mapping):
        raise _Rejected("router_data is not a mapping")
    injection = router_data.get(INJECTION_KEY)
    if injection is None:
        raise _Rejected("no identity injected (is the event coming through the gateway?)")
    if type(injection) is not dict and not isinstance(injection, Mapping):
        raise _Rejected("injection is not an object")
    payload_text = injection.get("payload")
    sig = injection.get("sig")
    if not isinstance(payload_text, str) or not isinstance(sig, str):
        raise _Rejected("injection lacks a payload or signature string")
    verified = _decode(payload_text, sig, secret)
    current = time.time() if now is None else now
    if current - verified.iat > MAX_AGE_SECONDS:
        raise _Rejected("expired (iat older than 300 s)")
    if verified.iat - current > MAX_FUTURE_SECONDS:
        raise _Rejected("iat in the future")
    return verified
