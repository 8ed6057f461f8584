"""System checks: settings that do not fit a gateway in front of Django.

Warnings ``isthmus.W001``..``W008``, errors ``isthmus.E001``..``E003``; each message says
what to set. Silence one with ``SILENCED_SYSTEM_CHECKS = ["isthmus.W002"]``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.http.request import validate_host

from . import MIN_SECRET_LENGTH, conf

EXPECTED_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
# Session keys holding Django's own auth bookkeeping.
_AUTH_SESSION_KEYS = ("_auth_user_id", "_auth_user_backend", "_auth_user_hash")

_registered = False


def register_checks() -> None:
    """Register the checks once (called from ``AppConfig.ready``)."""
    global _registered
    if _registered:
        return
    checks.register(check_identity_secret, checks.Tags.security)
    checks.register(check_proxy_settings, checks.Tags.security)
    checks.register(check_hosts_and_origins, checks.Tags.security)
    checks.register(check_middleware_and_keys)
    checks.register(check_tls_settings, checks.Tags.security)
    _registered = True


def _effective_allowed_hosts() -> list[str]:
    hosts = list(getattr(settings, "ALLOWED_HOSTS", []) or [])
    if settings.DEBUG and not hosts:
        # What Django itself allows in DEBUG with an empty ALLOWED_HOSTS.
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def check_identity_secret(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    secret = conf.identity_secret()
    if not secret:
        return [
            checks.Error(
                "The isthmus identity secret is not configured: /_isthmus/identity answers 503.",
                hint=(
                    "Set ISTHMUS_IDENTITY_SECRET (Django setting or environment variable) to the "
                    f"secret the gateway sends in X-Isthmus-Secret, at least {MIN_SECRET_LENGTH} "
                    "random characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'."
                ),
                id="isthmus.E001",
            )
        ]
    if len(secret) < MIN_SECRET_LENGTH:
        return [
            checks.Error(
                f"The isthmus identity secret is {len(secret)} characters long; at least "
                f"{MIN_SECRET_LENGTH} are required.",
                hint="Generate one with python -c 'import secrets; print(secrets.token_urlsafe(48))'.",
                id="isthmus.E001",
            )
        ]
    return []


def _proxy_ssl_header_ok(header: Any) -> bool:
    """Whether SECURE_PROXY_SSL_HEADER trusts the X-Forwarded-Proto the gateway writes."""
    return header is not None and tuple(header) == EXPECTED_PROXY_SSL_HEADER


def check_proxy_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not _proxy_ssl_header_ok(header):
        messages.append(
            checks.Warning(
                f"SECURE_PROXY_SSL_HEADER is {header!r}, not {EXPECTED_PROXY_SSL_HEADER!r}.",
                hint=(
                    "The isthmus gateway terminates the client connection and tells Django the "
                    "client's scheme in X-Forwarded-Proto (it overwrites any value a client sends). "
                    "Without SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https') Django "
                    "believes every request is plain http: request.is_secure() is False, "
                    "SECURE_SSL_REDIRECT loops, and absolute URLs and CSRF origin checks use the "
                    "wrong scheme. Keep Django reachable only through the gateway (bind it to loopback)."
                ),
                id="isthmus.W001",
            )
        )
    if not getattr(settings, "USE_X_FORWARDED_HOST", False):
        messages.append(
            checks.Warning(
                "USE_X_FORWARDED_HOST is False.",
                hint=(
                    "The gateway keeps the Host header and also writes X-Forwarded-Host with the "
                    "host the client asked for (a client-sent X-Forwarded-Host is dropped, or kept "
                    "only from proxies listed as trusted in front of the gateway). With a proxy or "
                    "load balancer in front of the gateway that rewrites Host, Django only sees the "
                    "public host through X-Forwarded-Host: set USE_X_FORWARDED_HOST = True so "
                    "request.get_host(), ALLOWED_HOSTS, CSRF and absolute URLs use it. If the "
                    "gateway is the only hop, silence this with "
                    "SILENCED_SYSTEM_CHECKS = ['isthmus.W002']."
                ),
                id="isthmus.W002",
            )
        )
    return messages


def check_hosts_and_origins(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    trusted = [str(o).rstrip("/").lower() for o in (getattr(settings, "CSRF_TRUSTED_ORIGINS", []) or [])]
    if not trusted and not settings.DEBUG:
        messages.append(
            checks.Warning(
                "CSRF_TRUSTED_ORIGINS is empty.",
                hint=(
                    "List the public origin of the gateway, e.g. "
                    "CSRF_TRUSTED_ORIGINS = ['https://app.example.com'], so that form posts and "
                    "unsafe API calls coming through the gateway pass Django's CSRF origin check "
                    "whatever the Host or scheme the upstream connection shows."
                ),
                id="isthmus.W003",
            )
        )
    allowed = _effective_allowed_hosts()
    if not allowed:
        messages.append(
            checks.Warning(
                "ALLOWED_HOSTS is empty: Django answers 400 to every request the gateway forwards.",
                hint="Add the gateway's public host name, e.g. ALLOWED_HOSTS = ['app.example.com'].",
                id="isthmus.W004",
            )
        )
    raw_origin = getattr(settings, conf.PUBLIC_ORIGIN_SETTING, None)
    if raw_origin in (None, ""):
        return messages
    parsed = conf.public_origin()
    if parsed is None:
        messages.append(
            checks.Error(
                f"ISTHMUS_PUBLIC_ORIGIN {raw_origin!r} is not an http(s) origin.",
                hint="Write it as scheme://host[:port], e.g. 'http://127.0.0.1:3000'.",
                id="isthmus.E003",
            )
        )
        return messages
    origin, host = parsed
    host_for_validation = f"[{host}]" if ":" in host else host
    if allowed and not validate_host(host_for_validation, allowed):
        messages.append(
            checks.Warning(
                f"The gateway's host {host!r} (from ISTHMUS_PUBLIC_ORIGIN) is not in ALLOWED_HOSTS.",
                hint=f"Add {host!r} to ALLOWED_HOSTS, or requests through the gateway get 400.",
                id="isthmus.W005",
            )
        )
    if origin not in trusted:
        messages.append(
            checks.Warning(
                f"The gateway's origin {origin!r} (from ISTHMUS_PUBLIC_ORIGIN) is not in CSRF_TRUSTED_ORIGINS.",
                hint=f"Add {origin!r} to CSRF_TRUSTED_ORIGINS.",
                id="isthmus.W006",
            )
        )
    return messages


def check_middleware_and_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    middleware = list(getattr(settings, "MIDDLEWARE", []) or [])
    missing = [m for m in (SESSION_MIDDLEWARE, AUTH_MIDDLEWARE) if m not in middleware]
    if missing:
        messages.append(
            checks.Warning(
                "MIDDLEWARE lacks " + " and ".join(missing) + ".",
                hint=(
                    "The identity endpoint falls back to loading the session and user itself, but "
                    "the rest of the site cannot log anyone in without them."
                ),
                id="isthmus.W007",
            )
        )
    raw_keys = getattr(settings, conf.SESSION_KEYS_SETTING, ())
    if (
        isinstance(raw_keys, str)
        or not isinstance(raw_keys, (list, tuple, set, frozenset))
        or not all(isinstance(k, str) for k in raw_keys)
    ):
        messages.append(
            checks.Error(
                f"ISTHMUS_SESSION_KEYS must be a list of strings, not {raw_keys!r}.",
                hint="For example ISTHMUS_SESSION_KEYS = ['cart_id'].",
                id="isthmus.E002",
            )
        )
    else:
        exposed = [k for k in raw_keys if k in _AUTH_SESSION_KEYS]
        if exposed:
            messages.append(
                checks.Warning(
                    f"ISTHMUS_SESSION_KEYS exposes Django's auth bookkeeping {exposed!r} to the Reflex process.",
                    hint="Use user_id from the identity instead; remove these keys.",
                    id="isthmus.W008",
                )
            )
    return messages


def check_tls_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """What Django needs when the gateway serves the site over https (``[listen.tls]``).

    Known from ``ISTHMUS_PUBLIC_ORIGIN``; without it, or with an http origin, nothing is said.
    """
    parsed = conf.public_origin()
    if parsed is None or not parsed[0].startswith("https://"):
        return []
    origin = parsed[0]
    messages: list[checks.CheckMessage] = []
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not _proxy_ssl_header_ok(header):
        messages.append(
            checks.Error(
                f"The site is served over https ({origin}) but SECURE_PROXY_SSL_HEADER is {header!r}.",
                hint=(
                    "Django then believes every request is plain http: the browser's Origin "
                    f"{origin!r} fails the CSRF check of every form post and unsafe API call (403), "
                    "and absolute URLs and redirects say http://. Set SECURE_PROXY_SSL_HEADER = "
                    "('HTTP_X_FORWARDED_PROTO', 'https'): the gateway writes that header itself."
                ),
                id="isthmus.E004",
            )
        )
    for setting, what, check_id in (
        ("SESSION_COOKIE_SECURE", "the session cookie", "isthmus.W009"),
        ("CSRF_COOKIE_SECURE", "the CSRF cookie", "isthmus.W010"),
    ):
        if not getattr(settings, setting, False):
            messages.append(
                checks.Warning(
                    f"The site is served over https ({origin}) but {setting} is False.",
                    hint=(
                        f"Set {setting} = True so that browsers never send {what} over plain "
                        "http (to the gateway's http-to-https redirect listener, or to anything "
                        "on the same host name that speaks http)."
                    ),
                    id=check_id,
                )
            )
    return messages
