"""The gateway's signed identity for Reflex upload handlers (needs ``reflex``).

An upload does not travel over the ``/_event`` WebSocket but as ``POST /_upload``, and
Reflex 0.10.1 builds the handler's ``Event`` from the request without any
``router_data`` (``reflex_components_core/core/_upload.py``): the gateway has no event
to inject into. It sends the identity in a header instead::

    X-Isthmus-Identity: <base64url, no padding, of {"payload": "<JSON text>", "sig": "<hex>"}>

the same object it puts in ``router_data["isthmus"]`` (see :mod:`isthmus_reflex.bridge`),
after removing any copy the client sent. Two small pieces carry it into the handler:

1. :class:`UploadIdentityMiddleware`, an ASGI middleware around the Reflex backend
   (installed through ``rx.App``'s ``api_transformer``): for ``POST`` to the upload
   endpoint it decodes and verifies the header and holds the result in a context
   variable for the duration of the request. A missing, malformed, wrongly signed or
   expired header holds "anonymous"; the request goes on either way.
2. A wrapper around ``EventProcessor.enqueue``: Reflex creates and enqueues the upload
   event within the request (directly for streaming uploads, from the response body for
   buffered ones, both in the request's context), so the wrapper sees the context
   variable and returns a copy of the event whose ``router_data`` carries the verified
   injection, or ``None`` under the key for anonymous. Outside an upload request the
   variable is unset and the wrapper passes the event through untouched.

Reflex merges each event's ``router_data`` over the state's previous one, so without
the explicit ``None`` an upload would see the identity of the last WebSocket event of
that client token; with it, the upload handler sees who sent the upload, and
``self.django_user`` and the guards (``login_required``, ...) work as in any handler.
Events the upload handler yields or chains inherit its ``router_data``.

Enable it with one line in the app module::

    app = rx.App()
    install_upload_identity(app)
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import dataclasses
import functools
import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .bridge import INJECTION_KEY, verify_injection

if TYPE_CHECKING:
    from reflex.app import App
    from reflex_base.event import Event
    from reflex_base.utils.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("isthmus_reflex")

#: The request header the gateway sends with every upload it forwards.
IDENTITY_HEADER = "X-Isthmus-Identity"
_HEADER_KEY = IDENTITY_HEADER.lower().encode("latin-1")
#: Longer header values are refused unread (an identity is a few KB at most).
MAX_HEADER_LENGTH = 256 * 1024


@dataclasses.dataclass(frozen=True)
class _UploadIdentity:
    """What the middleware decided for the current upload request."""

    #: The verified ``{"payload", "sig"}`` object, or None for anonymous.
    injection: dict[str, str] | None
    reason: str | None = None


_current: contextvars.ContextVar[_UploadIdentity | None] = contextvars.ContextVar(
    "isthmus_upload_identity", default=None
)


# --- the header --------------------------------------------------------------------------


def encode_identity_header(injection: Mapping[str, str]) -> str:
    """The header value for an injection (what the gateway sends; for tests and other proxies)."""
    text = json.dumps(
        {"payload": injection["payload"], "sig": injection["sig"]}, separators=(",", ":"), ensure_ascii=False
    )
    return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_identity_header(value: str | bytes | None) -> dict[str, str] | None:
    """The ``{"payload", "sig"}`` object a header value encodes, unverified; None if malformed."""
    if value is None:
        return None
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else bytes(value)
    raw = raw.strip()
    if not raw or len(raw) > MAX_HEADER_LENGTH:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)).decode("utf-8")
        data = json.loads(text)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    payload, sig = data.get("payload"), data.get("sig")
    if not isinstance(payload, str) or not isinstance(sig, str):
        return None
    return {"payload": payload, "sig": sig}


def verified_header_injection(
    values: Sequence[str | bytes], secret: str | None = None, now: float | None = None
) -> tuple[dict[str, str] | None, str | None]:
    """``(injection, None)`` when the header's values are one verified injection, else ``(None, reason)``.

    More than one copy of the header is refused: the gateway sends exactly one.
    """
    if not values:
        return None, "no X-Isthmus-Identity header (is the upload coming through the gateway?)"
    if len(values) > 1:
        return None, "several X-Isthmus-Identity headers"
    injection = decode_identity_header(values[0])
    if injection is None:
        return None, "malformed X-Isthmus-Identity header"
    context = verify_injection({INJECTION_KEY: injection}, secret=secret, now=now)
    if not context.verified:
        return None, context.reason
    return injection, None


# --- the ASGI middleware -------------------------------------------------------------------


def _upload_path() -> str:
    from reflex_base import constants
    from reflex_base.config import get_config

    return str(get_config().prepend_backend_path(str(constants.Endpoint.UPLOAD))).rstrip("/")


class UploadIdentityMiddleware:
    """ASGI middleware: the verified ``X-Isthmus-Identity`` of upload requests, for their events.

    Usable directly as a Reflex ``api_transformer`` (``rx.App(api_transformer=...)``);
    :func:`install_upload_identity` adds it to an existing app. Constructing it installs
    the ``EventProcessor.enqueue`` wrapper (once per process).
    """

    def __init__(self, app: ASGIApp, *, upload_path: str | None = None) -> None:
        self.app = app
        self._upload_path = upload_path.rstrip("/") if upload_path is not None else None
        install_enqueue_hook()

    @property
    def upload_path(self) -> str:
        if self._upload_path is None:
            self._upload_path = _upload_path()
        return self._upload_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or str(scope.get("path", "")).rstrip("/") != self.upload_path
        ):
            await self.app(scope, receive, send)
            return
        values = [value for key, value in scope.get("headers", ()) if key.lower() == _HEADER_KEY]
        injection, reason = verified_header_injection(values)
        if reason is not None:
            logger.debug("isthmus: upload without a verified identity (%s): anonymous", reason)
        token = _current.set(_UploadIdentity(injection, reason))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


# --- the enqueue hook ------------------------------------------------------------------------


def with_upload_identity(event: Event, injection: dict[str, str] | None) -> Event:
    """A copy of ``event`` whose ``router_data`` carries ``injection`` (None: anonymous)."""
    return dataclasses.replace(event, router_data={**event.router_data, INJECTION_KEY: injection})


_HOOK_MARK = "_isthmus_upload_identity"


def install_enqueue_hook() -> None:
    """Wrap ``EventProcessor.enqueue`` (idempotent): events enqueued within an upload
    request that :class:`UploadIdentityMiddleware` saw get that request's identity."""
    from reflex_base.event.processor.event_processor import EventProcessor

    original = EventProcessor.enqueue
    if getattr(original, _HOOK_MARK, False):
        return

    @functools.wraps(original)
    async def enqueue(self: EventProcessor, token: str, event: Event, ev_ctx: Any = None) -> Any:
        pending = _current.get()
        if pending is not None:
            event = with_upload_identity(event, pending.injection)
        return await original(self, token, event, ev_ctx)

    setattr(enqueue, _HOOK_MARK, True)
    EventProcessor.enqueue = enqueue  # type: ignore[method-assign]


def install_upload_identity(app: App) -> App:
    """Give ``app``'s upload handlers the gateway's identity (``self.django_user``, guards).

    Adds :class:`UploadIdentityMiddleware` to ``app.api_transformer`` (after any
    transformer already there, so it is the outermost) and installs the enqueue hook.
    Idempotent. Call it once, right after ``app = rx.App(...)``; returns ``app``.
    """
    install_enqueue_hook()
    current = app.api_transformer
    if current is None:
        transformers: list[Any] = []
    elif isinstance(current, Sequence):
        transformers = list(current)
    else:
        transformers = [current]
    if UploadIdentityMiddleware not in transformers:
        transformers.append(UploadIdentityMiddleware)
    app.api_transformer = transformers
    return app
