"""Top-level URL prefixes of a URLconf: which paths the gateway should send to Django.

Each top-level pattern contributes the first literal segment of its route
(``path("api/shop/", ...)`` gives ``/api``), as reflex-django discovers them.
``path("", include(...))`` is descended into, since the included patterns are then
top-level too. A pattern whose first segment is not literal (a converter, a regex
group), or an empty route that is a view (Django's ``/``), cannot be expressed as a
prefix: it is reported under ``"unresolved"`` instead.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import LocalePrefixPattern, RegexPattern, RoutePattern

# Characters that end the literal head of a regex route.
_REGEX_SPECIAL = re.compile(r"[\\.^$*+?{}\[\]|()]")


def _literal_head(pattern: Any) -> tuple[str | None, bool]:
    """``(route text up to the first non-literal, whole_route_is_literal)`` of a pattern."""
    if isinstance(pattern, RoutePattern):
        route = str(pattern)  # RoutePattern.__str__ is str(its route)
        cut = route.find("<")
        return (route if cut < 0 else route[:cut]), cut < 0
    if isinstance(pattern, RegexPattern):
        raw = str(pattern)  # RegexPattern.__str__ is str(its regex)
        body = raw[1:] if raw.startswith("^") else raw
        match = _REGEX_SPECIAL.search(body)
        if match is None:
            return body, True
        head = body[: match.start()]
        rest = body[match.start() :]
        # "^$" / "\Z" end: the literal head is the whole route.
        whole = rest in ("$", r"\Z")
        return head, whole
    return None, False


def _first_segment(head: str, whole: bool) -> str | None:
    """The first path segment if it is entirely literal, else None."""
    stripped = head.lstrip("/")
    if not stripped:
        return None
    if "/" in stripped:
        return stripped.split("/", 1)[0]
    # No slash: the segment is literal only if nothing follows it.
    return stripped if whole else None


def _describe(pattern: Any) -> str:
    return str(pattern.pattern)


def discover_prefixes(urlpatterns: Iterable[Any]) -> tuple[list[str], list[str]]:
    """``(sorted prefixes, unresolved pattern descriptions)`` of top-level ``urlpatterns``."""
    prefixes: dict[str, None] = {}
    unresolved: list[str] = []

    def walk(patterns: Iterable[Any], depth: int) -> None:
        for p in patterns:
            pat = getattr(p, "pattern", None)
            if isinstance(pat, LocalePrefixPattern):
                codes = [code for code, _name in getattr(settings, "LANGUAGES", [])]
                for code in codes:
                    prefixes["/" + code] = None
                if not pat.prefix_default_language and isinstance(p, URLResolver) and depth < 8:
                    walk(p.url_patterns, depth + 1)
                continue
            head, whole = _literal_head(pat)
            if head is None:
                unresolved.append(_describe(p))
                continue
            if head.strip("/") == "" and (whole or head == ""):
                if isinstance(p, URLResolver):
                    if depth < 8:
                        walk(p.url_patterns, depth + 1)
                    continue
                if isinstance(p, URLPattern) and whole:
                    unresolved.append("/ (" + (_describe(p) or "empty route") + ")")
                    continue
            segment = _first_segment(head, whole)
            if segment is None:
                unresolved.append(_describe(p))
                continue
            prefixes["/" + segment] = None

    walk(urlpatterns, 0)
    return sorted(prefixes), unresolved


def _path_or_none(value: str | os.PathLike[str] | None) -> str | None:
    if value in (None, ""):
        return None
    return os.fspath(value)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def asgi_application() -> str | None:
    """``module:attribute`` of the project's ASGI application, for an ASGI server's command line.

    ``ASGI_APPLICATION`` when set, else the ``asgi`` module beside ``WSGI_APPLICATION``
    or beside the settings module (where ``startproject`` puts it); None when no such
    module exists. Only the packages are imported to locate it, not the module itself.
    """
    candidates = [getattr(settings, "ASGI_APPLICATION", None) or ""]
    wsgi_module = (getattr(settings, "WSGI_APPLICATION", None) or "").rpartition(".")[0]
    if wsgi_module.rpartition(".")[2] == "wsgi":
        candidates.append(wsgi_module[: -len("wsgi")] + "asgi.application")
    settings_package = (getattr(settings, "SETTINGS_MODULE", None) or "").rpartition(".")[0]
    if settings_package:
        candidates.append(settings_package + ".asgi.application")
    for dotted in candidates:
        module, _, attribute = dotted.rpartition(".")
        if module and _module_exists(module):
            return f"{module}:{attribute}"
    return None


def identity_path(urlconf: str | None = None) -> str | None:
    """Path of the companion's identity endpoint in the URLconf, or None when not included."""
    try:
        return reverse("isthmus:identity", urlconf=urlconf)
    except NoReverseMatch:
        return None


def login_url() -> str | None:
    """``LOGIN_URL`` as a path (URL names resolved), or None when it does not resolve."""
    try:
        return resolve_url(settings.LOGIN_URL)
    except NoReverseMatch:
        return None


def prefix_report(urlconf: str | None = None) -> dict[str, Any]:
    """What ``manage.py isthmus_prefixes`` prints (``isthmus init`` reads it)."""
    resolver = get_resolver(urlconf)
    prefixes, unresolved = discover_prefixes(resolver.url_patterns)
    media_url = getattr(settings, "MEDIA_URL", None) or ""
    return {
        "settings_module": getattr(settings, "SETTINGS_MODULE", None),
        "root_urlconf": urlconf or settings.ROOT_URLCONF,
        "prefixes": prefixes,
        "static_url": getattr(settings, "STATIC_URL", None),
        "static_root": _path_or_none(getattr(settings, "STATIC_ROOT", None)),
        # Django reads an unset MEDIA_URL as "/" (the script prefix): no media then.
        "media_url": media_url if media_url not in ("", "/") else None,
        "media_root": _path_or_none(getattr(settings, "MEDIA_ROOT", None)),
        "unresolved": unresolved,
        "identity_path": identity_path(urlconf),
        "login_url": login_url(),
        "session_cookie": settings.SESSION_COOKIE_NAME,
        "asgi_application": asgi_application(),
    }
