"""An isthmus router policy (world `router` of `isthmus:policy@0.3.0`): edit it.

For every HTTP request, in this order:

1. `GET /healthz` is answered `200 ok` by the policy itself, without any upstream.
2. `/staff` and below is for Django staff: anonymous visitors are sent to log in,
   logged-in users who are not staff get 403, staff go to Django.
3. `/admin` and every prefix of `prefixes` go to Django, without any
   `X-Remote-User` header the client may have sent.
4. Anything else: no opinion (`pass`); the next router decides, after the last one 404.

Config, the plugin's `config` table in isthmus.toml, handed to `setup` as JSON:

    prefixes  = ["/api", "/accounts"]   # more path prefixes for Django (default none)
    upstream  = "django"                # a name from [upstreams] (default "django")
    login_url = "/admin/login/"         # where anonymous visitors log in (the default)

Any other key is refused: `setup` fails and the gateway does not use the plugin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import wit_world
from componentize_py_types import Err
from wit_world.imports import http, refusals, routing, users

KNOWN_KEYS = ("login_url", "prefixes", "upstream")


@dataclass(frozen=True)
class Config:
    prefixes: tuple[str, ...] = ()
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

    config = Config()
    prefixes = raw.get("prefixes", [])
    if not isinstance(prefixes, list) or not all(isinstance(p, str) and p.startswith("/") for p in prefixes):
        raise ValueError("'prefixes' must be a list of paths starting with '/'")
    upstream = raw.get("upstream", config.upstream)
    if not isinstance(upstream, str) or not upstream:
        raise ValueError("'upstream' must be a non-empty string")
    login_url = raw.get("login_url", config.login_url)
    if not isinstance(login_url, str) or not login_url.startswith("/"):
        raise ValueError("'login_url' must be a path starting with '/'")
    return Config(prefixes=tuple(prefixes), upstream=upstream, login_url=login_url)


def under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or below it, segment-wise: `/api` covers `/api` and
    `/api/x`, not `/apix`."""
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

        if path == "/healthz" and req.method() == "GET":
            return routing.Decision_Reply(
                routing.Reply(status=200, headers=[("content-type", "text/plain; charset=utf-8")], body=b"ok\n")
            )

        if under(path, "/staff"):
            # Ask for the user only where it matters: each method is a call to the host.
            if not who.authenticated():
                return routing.Decision_Refuse(refusals.Refusal_LoginRequired(CONFIG.login_url))
            if not who.is_staff():
                return routing.Decision_Refuse(refusals.Refusal_Forbidden("staff only"))
            return forward_to(CONFIG.upstream)

        if under(path, "/admin") or any(under(path, p) for p in CONFIG.prefixes):
            return forward_to(CONFIG.upstream)

        return routing.Decision_Pass()
