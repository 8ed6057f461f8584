"""``DjangoUserMixin``: the verified Django identity in Reflex event handlers (needs ``reflex``).

Reflex 0.10.1 keeps the event's ``router_data`` on the root state (``State.router_data``,
a backend-only field that never reaches the browser) and every substate reads it through
``self.router_data``. The gateway's signed injection is there under ``"isthmus"``; the
properties below verify it on each access (a payload already verified comes from a cache).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import reflex as rx

from .bridge import BridgeContext, Identity, verify_injection
from .session import overlaid_session, write_session
from .users import user_for_identity


class _StateMethod:
    """A method that Reflex does not turn into an event handler.

    Reflex registers every public function of a state (or state mixin) as an event
    handler the browser may call. ``get_user`` is a helper for handlers, not an event, so
    it is kept behind this descriptor, which has no ``__code__`` and binds like a method.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__wrapped__ = fn

    def __set_name__(self, owner: type, name: str) -> None:
        self.__name__ = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self.fn.__get__(instance, owner)


class DjangoUserMixin(rx.State, mixin=True):
    """Mix into ``rx.State`` subclasses: ``class MyState(DjangoUserMixin, rx.State)``.

    - ``self.django_user``: the :class:`~isthmus_reflex.bridge.Identity` (anonymous unless
      the event carries a valid signed injection);
    - ``self.django_session``: the whitelisted session keys, values decoded from JSON;
    - ``self.django_query``: the page's query parameters as the gateway saw them;
    - ``self.django_context``: extra fields from the gateway's bridge policy;
    - ``await self.get_user()``: the real user model instance, or ``AnonymousUser``;
    - ``await self.update_session(cart_id=42)``: write whitelisted session keys (below).
    """

    @property
    def isthmus(self) -> BridgeContext:
        """The whole verified injection (identity, query, context, iat, reason)."""
        return verify_injection(self.router_data)

    @property
    def django_user(self) -> Identity:
        return self.isthmus.identity

    @property
    def django_session(self) -> dict[str, Any]:
        return overlaid_session(self.router_data, self.isthmus.identity.session)

    @property
    def django_query(self) -> dict[str, str]:
        return self.isthmus.query

    @property
    def django_context(self) -> dict[str, str]:
        return self.isthmus.context

    async def _get_user(self) -> Any:
        """The Django user model instance of this event's identity, or ``AnonymousUser``.

        Loaded with the async ORM (``aget(pk=...)``). A user deleted or deactivated since
        the gateway resolved the identity gives ``AnonymousUser``. Needs Django set up
        (:func:`isthmus_reflex.configure_django`).
        """
        return await user_for_identity(self.django_user)

    get_user = _StateMethod(_get_user)

    async def _update_session(
        self, values: Mapping[str, Any] | None = None, /, *, delete: Iterable[str] = (), **more: Any
    ) -> dict[str, Any]:
        """Write keys of this browser's Django session (``ISTHMUS_SESSION_KEYS`` only).

        ``await self.update_session(cart_id=42)``, ``await self.update_session({"cart_id":
        42}, delete=["theme"])``. All changes are saved at once, by Django, in the session
        this event's signed identity names. Returns the whitelisted keys after the write,
        which ``self.django_session`` shows from then on. Raises
        :class:`~isthmus_reflex.session.SessionKeyRefused` for keys outside the whitelist
        (nothing is written) and :class:`~isthmus_reflex.session.SessionWriteError` when
        the write could not happen (no session, Django unreachable, refused).
        """
        return await write_session(self.router_data, {**(values or {}), **more}, delete)

    update_session = _StateMethod(_update_session)
