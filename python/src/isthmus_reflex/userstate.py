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
"""

from __future__ import annotations

from typing import Any

import reflex as rx

from .bridge import Identity, verified_identity
from .locale import csrf_token_for, language_for

#: The full event name to set as ``on_identity_change`` in isthmus.toml when no state of
#: the app needs its own handler.
REFRESH_EVENT = "reflex___state____state.isthmus_reflex___userstate____user_state.refresh"


class UserState(rx.State):
    """The Django user of the page: ``rx.cond(UserState.is_authenticated, …)``,
    ``UserState.username``, ``UserState.full_name``, ``UserState.groups``…"""

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

    @rx.var(cache=False)
    def csrf_token(self) -> str:
        """The browser's own CSRF cookie value at the WebSocket handshake, for a form
        that posts to Django (``csrfmiddlewaretoken``). Sent only to that browser."""
        return csrf_token_for(self.router_data)

    @rx.event
    def refresh(self) -> None:
        """Nothing to do: the event itself recomputes the vars (``on_identity_change``)."""
