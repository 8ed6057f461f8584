"""An isthmus bridge policy (world `bridge` of `isthmus:policy@0.3.0`): edit it.

Every Reflex WebSocket connection is let in. Then, for each event, in this order:

1. The gateway's own identity-change event always runs (the page must learn who it is).
2. A handler listed in `banned` closes the WebSocket.
3. Staff-only events (the handler name matches a `staff_only` glob, or the event comes
   from a page under a `staff_pages` prefix): anonymous visitors are sent to log in,
   logged-in users who are not staff are refused, staff may run them.
4. Uploads need a logged-in user; anonymous visitors are sent to log in.
5. Everything else runs, for everyone.

Every event that runs carries the `context` fields, signed by the gateway, to the Reflex
handler (`isthmus_reflex`: `BridgeContext.context`).

Config, the plugin's `config` table in isthmus.toml, handed to `setup` as JSON:

    staff_only  = ["*____admin_state.*"]    # globs over handler names (* ? [seq], as fnmatch)
    staff_pages = ["/dashboard"]            # page paths whose every event is staff only
    banned      = ["state.legacy.drop_all"] # exact handler names that close the socket
    login_url   = "/admin/login/"           # where anonymous visitors log in (the default)
    context     = { tenant = "acme" }       # string fields for the Reflex handler

Every key is optional; any other key is refused: `setup` fails and the gateway does not
use the plugin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase

import wit_world
from componentize_py_types import Err
from wit_world.imports import bridging, http, refusals, users

KNOWN_KEYS = ("banned", "context", "login_url", "staff_only", "staff_pages")


@dataclass(frozen=True)
class Config:
    staff_only: tuple[str, ...] = ()
    staff_pages: tuple[str, ...] = ()
    banned: frozenset[str] = frozenset()
    login_url: str = "/admin/login/"
    context: tuple[tuple[str, str], ...] = ()


def string_list(raw: dict[str, object], key: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"'{key}' must be a list of non-empty strings")
    return value


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

    staff_pages = string_list(raw, "staff_pages")
    if not all(p.startswith("/") for p in staff_pages):
        raise ValueError("'staff_pages' must be paths starting with '/'")
    login_url = raw.get("login_url", Config.login_url)
    if not isinstance(login_url, str) or not login_url.startswith("/"):
        raise ValueError("'login_url' must be a path starting with '/'")
    context = raw.get("context", {})
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise ValueError("'context' must be a table of strings")
    return Config(
        staff_only=tuple(string_list(raw, "staff_only")),
        staff_pages=tuple(staff_pages),
        banned=frozenset(string_list(raw, "banned")),
        login_url=login_url,
        context=tuple(sorted(context.items())),
    )


def under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or below it, segment-wise."""
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


# Set by `setup`, once per instance, and read by every later call. Keep such state in
# module globals, not on `self`: componentize-py gives each export its own `WitWorld`
# object, so an attribute set on `self` in `setup` is not there in `on_event`.
CONFIG = Config()


def allow() -> bridging.Verdict:
    return bridging.Verdict_Allow(list(CONFIG.context))


class WitWorld(wit_world.WitWorld):
    def setup(self, config_json: str) -> None:
        global CONFIG
        try:
            CONFIG = parse_config(config_json)
        except ValueError as e:
            raise Err(str(e)) from None  # `setup` returns err: the operator sees this text

    def on_connect(self, handshake: http.Request, who: users.Identity) -> bridging.Verdict:
        # Anonymous visitors use the public pages too: let every connection in.
        return bridging.Verdict_Allow([])

    def on_event(self, ev: bridging.Event, who: users.Identity) -> bridging.Verdict:
        kind = ev.kind()
        if kind == bridging.EventKind.IDENTITY_CHANGE:
            return allow()

        name = ev.name()  # e.g. "state.counter_state.increment"
        if name in CONFIG.banned:
            return bridging.Verdict_Close(f"banned handler {name}")

        staff_only = any(fnmatchcase(name, glob) for glob in CONFIG.staff_only) or any(
            under(ev.route(), page) for page in CONFIG.staff_pages
        )
        if staff_only:
            if not who.authenticated():
                return bridging.Verdict_Refuse(refusals.Refusal_LoginRequired(CONFIG.login_url))
            if not who.is_staff():
                return bridging.Verdict_Refuse(refusals.Refusal_Forbidden(f"{name} is for staff only"))
            return allow()

        if kind == bridging.EventKind.UPLOAD and not who.authenticated():
            return bridging.Verdict_Refuse(refusals.Refusal_LoginRequired(CONFIG.login_url))

        return allow()
