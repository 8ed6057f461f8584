"""Guards for Reflex event handlers, checked against the verified identity of each event.

Use them under ``@rx.event`` (or alone)::

    class ShopState(DjangoUserMixin, rx.State):
        @rx.event
        @login_required
        async def checkout(self): ...

        @rx.event
        @permission_required("shop.change_product", redirect="/denied")
        def edit(self, product_id: int): ...

A refused event does not run the handler: it logs a debug line and sends the browser to
the login URL with ``?next=<current path>`` (an anonymous user, or any refusal without
``redirect=``), or to ``redirect`` (a logged-in user lacking the permission, group or
flag), or returns whatever ``on_denied(state)`` returns when given.

These are defence in depth beside the gateway's own per-event rules: the identity comes
from the signed injection (see :mod:`isthmus_reflex.bridge`), so an event that did not
come through the gateway is anonymous and refused.

On a page function (one without parameters), as reflex-django's decorators are used::

    @login_required
    def orders() -> rx.Component: ...

the page renders "Loading…" until :class:`~isthmus_reflex.userstate.UserState` says the
visitor is logged in (and staff, for ``staff_required``…), and on mount asks the server
to check the guard with the verified identity, which sends a refused visitor to the
login page (or ``redirect``). What the browser renders is the SPA's own code: the
gateway's page guards (``pages``) and :func:`~isthmus_reflex.pages.guard_pages` keep the
page and its events from the wrong visitor; this keeps the page's look in step.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote

from .bridge import Identity, verified_identity

logger = logging.getLogger("isthmus_reflex")

F = TypeVar("F", bound=Callable[..., Any])

#: Where to send refused users when neither ``login_url=`` nor Django's LOGIN_URL is known.
DEFAULT_LOGIN_URL = "/admin/login/"
#: Django setting: ``False`` makes refusals SPA navigations (``rx.redirect``) by default.
FULL_PAGE_SETTING = "ISTHMUS_FULL_PAGE_REDIRECT"


def identity_of(state: Any) -> Identity:
    """The verified identity of the event ``state`` is handling (anonymous if unverified)."""
    return verified_identity(getattr(state, "router_data", None))


def current_path(state: Any) -> str:
    """The browser path (with query) of the page that sent the event, or ``/``."""
    router_data = getattr(state, "router_data", None) or {}
    path = router_data.get("asPath") or router_data.get("pathname") or "/"
    if not isinstance(path, str) or not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    return path


def _django_setting(name: str, default: Any) -> Any:
    try:
        from django.conf import settings

        if not settings.configured:
            return default
        return getattr(settings, name, default)
    except Exception:  # Django missing or settings unusable
        return default


def resolve_login_url(login_url: str | None = None) -> str:
    """``login_url``, else Django's ``settings.LOGIN_URL`` (URL names resolved), else ``/admin/login/``."""
    if login_url:
        return str(login_url)
    configured = _django_setting("LOGIN_URL", None)
    if not configured:
        return DEFAULT_LOGIN_URL
    try:
        from django.shortcuts import resolve_url

        return str(resolve_url(configured))
    except Exception:
        return str(configured)


def login_redirect_url(state: Any, login_url: str | None = None) -> str:
    """``<login url>?next=<quoted current path>``."""
    base = resolve_login_url(login_url)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}next={quote(current_path(state), safe='/')}"


def navigate(url: str, *, full_page: bool | None = None) -> Any:
    """The event that sends the browser to ``url``.

    ``full_page`` (default: Django setting ``ISTHMUS_FULL_PAGE_REDIRECT``, True) loads
    the URL as a new document (``window.location.assign``), which a Django page such as
    the login view needs: Reflex's ``rx.redirect`` navigates inside the single-page app,
    whose router does not know Django's paths. Pass ``full_page=False`` for a target
    that is a Reflex page.
    """
    import reflex as rx

    if full_page is None:
        full_page = bool(_django_setting(FULL_PAGE_SETTING, True))
    if full_page:
        return rx.call_script(f"window.location.assign({json.dumps(url)})")
    return rx.redirect(url)


def _refusal(
    state: Any,
    ident: Identity,
    test_name: str,
    handler_name: str,
    *,
    login_url: str | None,
    redirect: str | None,
    on_denied: Callable[[Any], Any] | None,
    full_page: bool | None,
) -> Any:
    logger.debug(
        "isthmus: %s refused %s for %s",
        test_name,
        handler_name,
        f"user {ident.user_id} ({ident.username})" if ident.authenticated else "an anonymous user",
    )
    if on_denied is not None:
        return on_denied(state)
    if ident.authenticated and redirect:
        return navigate(redirect, full_page=full_page)
    return navigate(login_redirect_url(state, login_url), full_page=full_page)


@dataclass(frozen=True)
class PageGuard:
    """A decorated page's guard, looked up by the page's name when the page mounts."""

    test: Callable[[Identity], bool]
    test_name: str
    login_url: str | None
    redirect: str | None
    full_page: bool | None

    def refusal(self, state: Any, page: str) -> Any:
        """None when the event's user passes, else the navigation that refuses them."""
        ident = identity_of(state)
        if self.test(ident):
            return None
        return _refusal(
            state,
            ident,
            self.test_name,
            page,
            login_url=self.login_url,
            redirect=self.redirect,
            on_denied=None,
            full_page=self.full_page,
        )


#: Decorated pages by name (``module.function``): what ``UserState.check_page`` runs.
PAGE_GUARDS: dict[str, PageGuard] = {}


def _guard_page(page: Callable[[], Any], guard: PageGuard, visible: str) -> Callable[[], Any]:
    import reflex as rx

    from .userstate import UserState

    key = f"{page.__module__}.{page.__qualname__}"
    PAGE_GUARDS[key] = guard

    @functools.wraps(page)
    def guarded() -> Any:
        return rx.fragment(
            rx.box(on_mount=cast(Any, UserState.check_page)(key), display="none"),
            rx.cond(getattr(UserState, visible), page(), rx.center(rx.text("Loading…"))),
        )

    return guarded


def _guard(
    test: Callable[[Identity], bool],
    test_name: str,
    *,
    login_url: str | None = None,
    redirect: str | None = None,
    on_denied: Callable[[Any], Any] | None = None,
    full_page: bool | None = None,
    visible: str = "is_authenticated",
) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", "handler"))
        if not inspect.signature(fn).parameters:
            if on_denied is not None:
                msg = f"{test_name} on page {name}: on_denied= applies to handlers only"
                raise TypeError(msg)
            guard = PageGuard(test, test_name, login_url, redirect, full_page)
            return cast(F, _guard_page(fn, guard, visible))

        def refused(state: Any) -> tuple[bool, Any]:
            ident = identity_of(state)
            if test(ident):
                return False, None
            return True, _refusal(
                state,
                ident,
                test_name,
                name,
                login_url=login_url,
                redirect=redirect,
                on_denied=on_denied,
                full_page=full_page,
            )

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                denied, result = refused(self)
                if denied:
                    if inspect.isawaitable(result):
                        result = await result
                    yield result
                    return
                async for item in fn(self, *args, **kwargs):
                    yield item

            return cast(F, agen_wrapper)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                denied, result = refused(self)
                if denied:
                    if inspect.isawaitable(result):
                        result = await result
                    return result
                return await fn(self, *args, **kwargs)

            return cast(F, async_wrapper)

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                denied, result = refused(self)
                if denied:
                    yield result
                    return None
                return (yield from fn(self, *args, **kwargs))

            return cast(F, gen_wrapper)

        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            denied, result = refused(self)
            if denied:
                return result
            return fn(self, *args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _as_tuple(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not items or not all(isinstance(v, str) and v for v in items):
        msg = f"{what} needs a non-empty name or list of names, not {value!r}"
        raise TypeError(msg)
    return items


def login_required(
    fn: F | None = None,
    *,
    login_url: str | None = None,
    on_denied: Callable[[Any], Any] | None = None,
    full_page: bool | None = None,
) -> Any:
    """Run the handler only for an authenticated user. ``@login_required`` or ``@login_required(login_url=...)``."""
    decorate = _guard(
        lambda ident: ident.authenticated,
        "login_required",
        login_url=login_url,
        on_denied=on_denied,
        full_page=full_page,
    )
    return decorate(fn) if fn is not None else decorate


def permission_required(
    perm: str | Iterable[str],
    *,
    login_url: str | None = None,
    redirect: str | None = None,
    on_denied: Callable[[Any], Any] | None = None,
    full_page: bool | None = None,
) -> Callable[[F], F]:
    """Require every listed permission (``"app_label.codename"``); a superuser has them all."""
    perms = _as_tuple(perm, "permission_required")
    return _guard(
        lambda ident: ident.authenticated and ident.has_perms(perms),
        f"permission_required{perms!r}",
        login_url=login_url,
        redirect=redirect,
        on_denied=on_denied,
        full_page=full_page,
    )


def group_required(
    group: str | Iterable[str],
    *,
    login_url: str | None = None,
    redirect: str | None = None,
    on_denied: Callable[[Any], Any] | None = None,
    full_page: bool | None = None,
) -> Callable[[F], F]:
    """Require membership of at least one of the listed groups (no superuser bypass)."""
    groups = _as_tuple(group, "group_required")
    return _guard(
        lambda ident: ident.in_group(*groups),
        f"group_required{groups!r}",
        login_url=login_url,
        redirect=redirect,
        on_denied=on_denied,
        full_page=full_page,
    )


def staff_required(
    fn: F | None = None,
    *,
    login_url: str | None = None,
    redirect: str | None = None,
    on_denied: Callable[[Any], Any] | None = None,
    full_page: bool | None = None,
) -> Any:
    """Require an authenticated user with ``is_staff``."""
    decorate = _guard(
        lambda ident: ident.authenticated and ident.is_staff,
        "staff_required",
        login_url=login_url,
        redirect=redirect,
        on_denied=on_denied,
        full_page=full_page,
        visible="is_staff",
    )
    return decorate(fn) if fn is not None else decorate


def superuser_required(
    fn: F | None = None,
    *,
    login_url: str | None = None,
    redirect: str | None = None,
    on_denied: Callable[[Any], Any] | None = None,
    full_page: bool | None = None,
) -> Any:
    """Require an authenticated user with ``is_superuser``."""
    decorate = _guard(
        lambda ident: ident.authenticated and ident.is_superuser,
        "superuser_required",
        login_url=login_url,
        redirect=redirect,
        on_denied=on_denied,
        full_page=full_page,
        visible="is_superuser",
    )
    return decorate(fn) if fn is not None else decorate
