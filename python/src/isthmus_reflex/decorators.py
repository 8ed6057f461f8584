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
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterable
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


def _guard(
    test: Callable[[Identity], bool],
    test_name: str,
    *,
    login_url: str | None = None,
    redirect: str | None = None,
    on_denied: Callable[[Any], Any] | None = None,
    full_page: bool | None = None,
) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", "handler"))

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
    )
    return decorate(fn) if fn is not None else decorate
