"""The shop's page guard for staff reports: an isthmus router policy (world `router` of
`isthmus:policy@0.3.0`) written in Python, first in the shop's router chain.

For every HTTP request:

1. A path under one of the `areas` (by default `/reports`, i.e. `/reports` and
   `/reports/...`, not `/reportsx`) is for Django staff only:
   - anonymous visitors are sent to log in (`login-required`: the gateway answers
     `302` to `login_url?next=<path and query>`, as Django's `redirect_to_login` does);
   - logged-in users who are not staff get `403` from the gateway (`forbidden`), and the
     request never reaches Django;
   - staff go to the `upstream` (Django), without any `X-Remote-User` header the client
     may have sent. Django checks staff again in the view (defence in depth).
2. Anything else: no opinion (`pass`): the next router (the shop's prefix router)
   decides, exactly as without this policy.

The user is only looked at under an area: each `who.*()` call asks the gateway.
`setup` declares `needs(identity=True)`, so the gateway resolves the Django user of the
session cookie (cached) before asking the chain.

Config, the plugin's `config` table in isthmus.toml, handed to `setup` as JSON:

    areas     = ["/reports"]            # path prefixes for staff only (the default)
    upstream  = "django"                # a name from [upstreams] (the default)
    login_url = "/admin/login/"         # where anonymous visitors log in (the default)

Any other key is refused: `setup` fails and the gateway does not use the plugin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import wit_world
from componentize_py_types import Err
from wit_world.imports import http, refusals, routing, users

KNOWN_KEYS = ("areas", "login_url", "upstream")


@dataclass(frozen=True)
class Config:
    areas: tuple[str, ...] = ("/reports",)
    upstream: str = "django"
    login_url: str = "/admin/login/"


def parse_config(config_json: str) -> Config:
    """The config from its JSON text; ValueError saying what is wrong otherwise."""
    try:
        raw = json.loads(config_json)
    except json.JSONDecodeError as e:
        raise ValueError(f"config is not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError("config must be a table")
    for key in raw:
        if key not in KNOWN_KEYS:
            raise ValueError(f"unknown config key '{key}' (known: {', '.join(KNOWN_KEYS)})")

    default = Config()
    areas = raw.get("areas", list(default.areas))
    if (
        not isinstance(areas, list)
        or not areas
        or not all(isinstance(a, str) and a.startswith("/") and a.rstrip("/") for a in areas)
    ):
        raise ValueError("'areas' must be a non-empty list of paths starting with '/' (and not '/' itself)")
    upstream = raw.get("upstream", default.upstream)
    if not isinstance(upstream, str) or not upstream:
        raise ValueError("'upstream' must be a non-empty string")
    login_url = raw.get("login_url", default.login_url)
    if not isinstance(login_url, str) or not login_url.startswith("/"):
        raise ValueError("'login_url' must be a path starting with '/'")
    return Config(areas=tuple(areas), upstream=upstream, login_url=login_url)


def under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or below it, segment-wise: `/reports` covers
    `/reports` and `/reports/stock/`, not `/reportsx`."""
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


# Set by `setup`, once per instance, and read by every later call. Keep such state in
# module globals, not on `self`: componentize-py gives each export its own `WitWorld`
# object, so an attribute set on `self` in `setup` is not there in `route`.
CONFIG = Config()


def forward_to(upstream: str) -> routing.Decision:
    return routing.Decision_Forward(
        routing.Forward(
            upstream=upstream,
            path=None,  # keep the request's path and query
            set_headers=[],
            # Never let a client claim a user to Django.
            remove_headers=["x-remote-user"],
        )
    )


class WitWorld(wit_world.WitWorld):
    def setup(self, config_json: str) -> routing.Needs:
        global CONFIG
        try:
            CONFIG = parse_config(config_json)
        except ValueError as e:
            raise Err(str(e)) from None  # `setup` returns err: the operator sees this text
        # Ask the gateway to resolve the Django user of each request (`who` below).
        return routing.Needs(identity=True)

    def route(self, req: http.Request, who: users.Identity) -> routing.Decision:
        path = req.path()  # canonical: no `..`, no `//`, no encoded slash
        if not any(under(path, area) for area in CONFIG.areas):
            return routing.Decision_Pass()
        # Ask for the user only where it matters: each method is a call to the host.
        if not who.authenticated():
            return routing.Decision_Refuse(refusals.Refusal_LoginRequired(CONFIG.login_url))
        if not who.is_staff():
            return routing.Decision_Refuse(refusals.Refusal_Forbidden("staff only"))
        return forward_to(CONFIG.upstream)
