"""Page guards in the Reflex process: the second of their two levels.

The gateway's prefix router refuses a guarded page's first load before the SPA is
served (``pages`` of its config in isthmus.toml). A browser that already runs the SPA
reaches other pages by client-side navigation, with no HTTP request the gateway could
refuse: only the page's events (hydrate, ``on_load``, then its handlers) go out, over
the WebSocket. :func:`guard_pages` installs a Reflex middleware that judges every event
by the page it comes from, with the same rules, and answers a refused one with the
redirect instead of running it::

    app = rx.App()
    isthmus_reflex.guard_pages(app)   # the `pages` of the config `isthmus run` names

The rule syntax is the gateway's, entry for entry:
``{"page": "/orders*", "require": "authenticated"}`` — ``page`` a glob over the path
(``*`` any run of characters, ``/`` included; ``?`` one character), ``require`` one
requirement or a list that must all hold (``any``, ``authenticated``, ``anonymous``,
``staff``, ``superuser``, ``deny``, ``group:NAME``, ``perm:app_label.codename``). The
first entry whose glob matches decides; pages no entry matches are open.

The user is the event's verified identity (the gateway signs it into every event), so
an event that did not come through the gateway is anonymous. The page path is what the
browser claims: a guard keeps honest visitors out of a page, while the data a page
shows is protected where it is read (the bridge's rules, the handler decorators).
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bridge import Identity, verified_identity
from .decorators import current_path, login_redirect_url, navigate

logger = logging.getLogger("isthmus_reflex")

#: Set by ``isthmus run`` for the processes it supervises: the config file's path.
CONFIG_ENV = "ISTHMUS_CONFIG"

_WORDS: dict[str, Callable[[Identity], bool]] = {
    "any": lambda who: True,
    "authenticated": lambda who: who.authenticated,
    "anonymous": lambda who: not who.authenticated,
    "staff": lambda who: who.authenticated and who.is_staff,
    "superuser": lambda who: who.authenticated and who.is_superuser,
    "deny": lambda who: False,
}
KNOWN_REQUIREMENTS = "any, authenticated, anonymous, staff, superuser, deny, group:NAME, perm:app_label.codename"


class PageGuardError(ValueError):
    """A malformed guard; the message names the entry (``pages[1].require: …``)."""


@dataclass(frozen=True)
class Requirement:
    """One condition on the user, as written (``staff``, ``perm:shop.view_order``)."""

    text: str
    holds: Callable[[Identity], bool]


def parse_requirement(text: str) -> Requirement:
    """Parse one requirement, as the gateway's policies do (the message lacks the key)."""
    if text in _WORDS:
        return Requirement(text, _WORDS[text])
    kind, colon, name = text.partition(":")
    if kind in ("group", "perm") and colon:
        if not name:
            raise PageGuardError(f"empty {'group name' if kind == 'group' else 'permission'} in {text!r}")
        if name.strip() != name:
            raise PageGuardError(f"{text!r}: the name has leading or trailing whitespace")
        if kind == "group":
            return Requirement(text, lambda who: who.in_group(name))
        app_label, dot, codename = name.partition(".")
        if not dot or not app_label or not codename:
            raise PageGuardError(f"{text!r}: expected perm:app_label.codename")
        return Requirement(text, lambda who: who.has_perm(name))
    hint = f"; did you mean {text.lower()!r}?" if text.lower() in _WORDS else ""
    raise PageGuardError(f"unknown requirement {text!r} (known: {KNOWN_REQUIREMENTS}){hint}")


def compile_glob(pattern: str) -> re.Pattern[str]:
    """``*`` any run of characters, ``?`` one, everything else itself; whole-text match."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class PageRule:
    page: str
    require: tuple[Requirement, ...]
    pattern: re.Pattern[str]

    def refused(self, who: Identity) -> Requirement | None:
        """The requirement that refuses ``who`` (``deny`` first, as the gateway), or None."""
        deny = next((r for r in self.require if r.text == "deny"), None)
        return deny or next((r for r in self.require if not r.holds(who)), None)


def _rule(entry: Any, at: str) -> PageRule:
    if not isinstance(entry, Mapping):
        raise PageGuardError(f'{at}: expected an object with keys "page" and "require", got {entry!r}')
    unknown = sorted(set(entry) - {"page", "require"})
    if unknown:
        raise PageGuardError(f'{at}: unknown key {unknown[0]!r} (known keys: "page", "require")')
    page, require = entry.get("page"), entry.get("require")
    if page is None:
        raise PageGuardError(f'{at}: missing key "page" (a glob over the page\'s path, e.g. "/orders*")')
    if not isinstance(page, str):
        raise PageGuardError(f"{at}.page: expected a string, got {page!r}")
    if not page.startswith("/") and page != "*":
        raise PageGuardError(f'{at}.page: {page!r} must start with "/" (a path on this site) or be "*"')
    if require is None:
        raise PageGuardError(f'{at}: missing key "require" (e.g. "authenticated")')
    texts = [require] if isinstance(require, str) else require
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise PageGuardError(f"{at}.require: expected a requirement string or a non-empty list of them")
    try:
        parsed = tuple(parse_requirement(t) for t in texts)
    except PageGuardError as e:
        raise PageGuardError(f"{at}.require: {e}") from None
    return PageRule(page, parsed, compile_glob(page))


@dataclass(frozen=True)
class PageGuards:
    """Guards in the order written, with where refused visitors go."""

    rules: tuple[PageRule, ...]
    login_url: str | None = None
    #: Where a logged-in visitor lacking a requirement goes (default: the login URL, as
    #: Django's ``user_passes_test``); ``anonymous`` and ``deny`` refusals go there too.
    forbidden_url: str | None = None

    @classmethod
    def from_list(cls, pages: Iterable[Any], **where: str | None) -> PageGuards:
        if isinstance(pages, (str, Mapping)):
            raise PageGuardError('pages: expected a list of {"page", "require"} objects')
        return cls(tuple(_rule(entry, f"pages[{i}]") for i, entry in enumerate(pages)), **where)

    def select(self, path: str) -> PageRule | None:
        return next((r for r in self.rules if r.pattern.fullmatch(path)), None)

    def refusal(self, state: Any) -> Any | None:
        """The redirect answering an event of ``state``'s page when its guard refuses the
        event's user; None when the page is open to them."""
        path = current_path(state).split("?", 1)[0]
        rule = self.select(path)
        if rule is None:
            return None
        who = verified_identity(getattr(state, "router_data", None))
        failed = rule.refused(who)
        if failed is None:
            return None
        logger.debug(
            "isthmus: page guard %r (%s) refused an event on %s for %s",
            rule.page,
            failed.text,
            path,
            f"user {who.user_id}" if who.authenticated else "an anonymous user",
        )
        if who.authenticated and self.forbidden_url:
            return navigate(self.forbidden_url)
        return navigate(login_redirect_url(state, self.login_url))


def load_page_guards(config: str | os.PathLike[str] | None = None) -> PageGuards:
    """The ``pages`` (and ``login_url``) of the first router in an isthmus.toml that has
    them: ``config``, else the file named by ``ISTHMUS_CONFIG``. No file, or no router
    with ``pages``: no guards."""
    path = config if config is not None else os.environ.get(CONFIG_ENV)
    if not path:
        return PageGuards(())
    with Path(path).open("rb") as f:
        document = tomllib.load(f)
    routers = document.get("routing", {}).get("routers", [])
    for i, router in enumerate(routers):
        settings = router.get("config") or {}
        if "pages" in settings:
            try:
                return PageGuards.from_list(settings["pages"], login_url=settings.get("login_url"))
            except PageGuardError as e:
                raise PageGuardError(f"{path}: routing.routers[{i}].config.{e}") from None
    return PageGuards(())


def guard_pages(
    app: Any,
    pages: Iterable[Mapping[str, Any]] | None = None,
    *,
    login_url: str | None = None,
    forbidden_url: str | None = None,
    config: str | os.PathLike[str] | None = None,
) -> PageGuards:
    """Refuse every event of a guarded page whose user fails its guard, with a redirect.

    ``pages`` as in isthmus.toml; without it, those of ``config`` or of the config that
    ``isthmus run`` names (:func:`load_page_guards`). ``login_url`` defaults to the
    config's, else Django's ``LOGIN_URL``. Installed first among the app's middleware, so
    that no other middleware works for a refused event. Returns the guards in force.
    """
    import reflex as rx
    from reflex.event import Event
    from reflex.state import StateUpdate

    if pages is None:
        loaded = load_page_guards(config)
        guards = PageGuards(loaded.rules, login_url or loaded.login_url, forbidden_url)
    else:
        guards = PageGuards.from_list(pages, login_url=login_url, forbidden_url=forbidden_url)

    class PageGuardMiddleware(rx.Middleware):
        """Answers an event of a refused page with the redirect, without running it."""

        async def preprocess(self, app: Any, state: Any, event: Any) -> Any:
            redirect = guards.refusal(state)
            if redirect is None:
                return None
            return StateUpdate(events=Event.from_event_type(redirect, router_data=state.router_data))

    if guards.rules:
        app.add_middleware(PageGuardMiddleware(), 0)
    return guards
