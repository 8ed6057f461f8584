"""``UserState``: the verified Django identity as Reflex vars, for components.

Every var is an uncached computed var (``@rx.var(cache=False)``) over the event's
verified identity (:func:`~isthmus_reflex.bridge.verified_identity` of the root state's
``router_data``, which the gateway signs into every event): Reflex recomputes such vars
on every event of the page and sends them with its delta, so the page follows the
identity with no database query and no handler of its own. When the browser's session
changes (a login or logout, in this tab or another), the gateway sends the page's
``on_identity_change`` event; pointing it at :meth:`UserState.refresh` (full name
:data:`REFRESH_EVENT`) is enough, and any other handler refreshes the vars as well.

A page that is not behind the gateway (no signed injection) shows an anonymous user.

Messages: ``UserState.messages`` lists ``{"tag": "success", "text": "..."}`` dicts to
show. Django's pending messages (added in Django views) come in with
:func:`fetch_messages`, a browser-side call to ``/_isthmus/messages`` (Django consumes
them there, once, with the browser's own cookies) whose answer the browser hands to
:meth:`UserState.receive_messages`; :meth:`UserState.refresh` fetches them too. Handlers
add their own with ``await add_message(self, "Saved.", "success")``: those live in the
page only, not in Django's storage (a Django page never shows them).
"""

from __future__ import annotations

import re
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from .auth import DEFAULT_PREFIX, check_prefix
from .bridge import Identity, verified_identity
from .decorators import PAGE_GUARDS
from .locale import csrf_cookie_name, csrf_token_for, language_for

#: The full event name to set as ``on_identity_change`` in isthmus.toml when no state of
#: the app needs its own handler.
REFRESH_EVENT = "reflex___state____state.isthmus_reflex___userstate____user_state.refresh"


#: Django's default level tags (``django.contrib.messages.constants``).
LEVEL_TAGS = ("debug", "info", "success", "warning", "error")
#: At most this many messages are kept (the oldest go first) ...
MAX_MESSAGES = 50
#: ... each cut to this many characters: what the browser relays is not trusted.
MAX_MESSAGE_CHARS = 2000


def _message(tag: Any, text: Any) -> dict[str, str] | None:
    if not isinstance(text, str) or not text:
        return None
    # Django's level_tag may carry extra CSS classes (MESSAGE_TAGS); keep the known word.
    words = tag.split() if isinstance(tag, str) else []
    known = next((w for w in words if w in LEVEL_TAGS), "info")
    return {"tag": known, "text": text[:MAX_MESSAGE_CHARS]}


class UserState(rx.State):
    """The Django user of the page: ``rx.cond(UserState.is_authenticated, …)``,
    ``UserState.username``, ``UserState.full_name``, ``UserState.groups``…"""

    #: Messages to show, oldest first: ``{"tag": "success", "text": "Saved."}``.
    messages: list[dict[str, str]] = []  # noqa: RUF012 (a Reflex var: copied per state)

    def _add_messages(self, items: list[dict[str, str]]) -> None:
        if items:
            self.messages = [*self.messages, *items][-MAX_MESSAGES:]

    def _identity(self) -> Identity:
        router_data: Any = self.router_data
        if not router_data:
            # The initial state (compiled into the page) and events outside the gateway.
            return Identity()
        return verified_identity(router_data)

    @rx.var(cache=False)
    def is_authenticated(self) -> bool:
        return self._identity().authenticated

    @rx.var(cache=False)
    def user_id(self) -> str:
        return self._identity().user_id or ""

    @rx.var(cache=False)
    def username(self) -> str:
        return self._identity().username

    @rx.var(cache=False)
    def email(self) -> str:
        return self._identity().email

    @rx.var(cache=False)
    def first_name(self) -> str:
        return self._identity().first_name

    @rx.var(cache=False)
    def last_name(self) -> str:
        return self._identity().last_name

    @rx.var(cache=False)
    def full_name(self) -> str:
        """``first last``, or the username when the user has no name (as a greeting wants)."""
        identity = self._identity()
        return identity.full_name or identity.username

    @rx.var(cache=False)
    def is_staff(self) -> bool:
        return self._identity().is_staff

    @rx.var(cache=False)
    def is_superuser(self) -> bool:
        return self._identity().is_superuser

    @rx.var(cache=False)
    def groups(self) -> list[str]:
        return list(self._identity().groups)

    @rx.var(cache=False)
    def language(self) -> str:
        """The language activated for this page's events (see :mod:`isthmus_reflex.locale`)."""
        return language_for(self._identity(), self.router_data)

    @rx.var(cache=False)
    def timezone(self) -> str:
        return self._identity().timezone

    #: The CSRF cookie as the browser last reported it (``refresh``): Django rotates the
    #: token at a login, after this page's WebSocket handshake. Backend-only.
    _csrf_reported: str = ""

    @rx.var(cache=False)
    def csrf_token(self) -> str:
        """The browser's own CSRF cookie value, for a form that posts to Django
        (``csrfmiddlewaretoken``): as of the WebSocket handshake, or as the browser
        reported it since the last :meth:`refresh`. Sent only to that browser."""
        return self._csrf_reported or csrf_token_for(self.router_data)

    @rx.event
    def check_page(self, page: str) -> Any:
        """On mount of a page under ``@login_required`` & co.: its guard, on the server,
        with the verified identity (an unknown name is no page of this app: nothing)."""
        guard = PAGE_GUARDS.get(page)
        return None if guard is None else guard.refusal(self, page)

    @rx.event
    def refresh(self) -> list[EventSpec]:
        """``on_identity_change``: the event itself recomputes the vars; Django's pending
        messages (a login view's "Welcome back", say) are fetched, and the CSRF cookie
        Django rotated at the login is read back from the browser."""
        return [fetch_messages(), read_csrf_cookie()]

    @rx.event
    def receive_csrf(self, token: Any) -> None:
        """Callback of :func:`read_csrf_cookie`: the browser's own cookie, for its own
        forms (a value that is not a token shape is ignored)."""
        if isinstance(token, str) and _CSRF_SHAPE.fullmatch(token):
            self._csrf_reported = token

    @rx.event
    def receive_messages(self, answer: dict[str, Any]) -> None:
        """Callback of :func:`fetch_messages`: Django's answer, relayed by the browser."""
        raw = answer.get("messages") if isinstance(answer, dict) else None
        if not isinstance(raw, list):
            return
        items = [m for m in (_message(r.get("tag"), r.get("text")) for r in raw if isinstance(r, dict)) if m]
        self._add_messages(items[-MAX_MESSAGES:])

    @rx.event
    def dismiss_message(self, index: int) -> None:
        if 0 <= index < len(self.messages):
            self.messages = self.messages[:index] + self.messages[index + 1 :]

    @rx.event
    def clear_messages(self) -> None:
        self.messages = []


_FETCH_SCRIPT = """(async () => {
  try {
    const response = await fetch(%(url)s, {credentials: "same-origin", cache: "no-store",
                                          headers: {Accept: "application/json"}});
    if (!response.ok) return {messages: []};
    return await response.json();
  } catch (e) {
    return {messages: []};
  }
})()"""


#: Django's CSRF secrets and masked tokens: 32 or 64 ASCII letters and digits.
_CSRF_SHAPE = re.compile(r"[A-Za-z0-9]{32}|[A-Za-z0-9]{64}")

_READ_COOKIE_SCRIPT = """(() => {
  const prefix = %(prefix)s;
  const found = document.cookie.split("; ").find((c) => c.startsWith(prefix));
  return found ? decodeURIComponent(found.slice(prefix.length)) : "";
})()"""


def read_csrf_cookie() -> EventSpec:
    """Read the browser's CSRF cookie into ``UserState.csrf_token`` (an event for a
    handler to return, e.g. after a login in this tab); nothing with ``CSRF_USE_SESSIONS``."""
    import json

    name = csrf_cookie_name()
    if name is None:
        return rx.call_script("void 0")
    script = _READ_COOKIE_SCRIPT % {"prefix": json.dumps(f"{name}=")}
    return rx.call_script(script, callback=UserState.receive_csrf)


def fetch_messages(prefix: str = DEFAULT_PREFIX) -> EventSpec:
    """Fetch (and consume) the browser's pending Django messages into ``UserState.messages``:
    an event to put in a page's ``on_load`` or return from a handler."""
    import json

    url = json.dumps(check_prefix(prefix) + "messages")
    return rx.call_script(_FETCH_SCRIPT % {"url": url}, callback=UserState.receive_messages)


async def add_message(state: Any, text: str, level: str = "info") -> None:
    """Show ``text`` on the page of the handler whose state is ``state`` (level one of
    :data:`LEVEL_TAGS`). Reflex only: it does not reach Django's message storage."""
    user_state = state if isinstance(state, UserState) else await state.get_state(UserState)
    message = _message(level, text)
    if message is not None:
        user_state._add_messages([message])
