"""A bridge policy under real traffic: `isthmus serve` with the policy as [bridge.policy],
a stub Django behind it for the identity endpoint, a stub Reflex backend that echoes
every Socket.IO event it receives, and a client that replays the policy's cases.toml
through the gateway's /_event WebSocket.

    python3 tests/bridge_traffic.py --isthmus target/debug/isthmus \
        --plugin DIR/bridge.wasm --cases DIR/cases.toml --dir DIR/site

Used by tests/templates.sh for each template's bridge. `isthmus plugin test` judges the
same cases by calling the component directly; this runs them the way a browser meets
them, so it also covers what the gateway does with a verdict: the identity fetched from
Django with the identity secret, signed into the event's router_data with the bridge
secret (any copy the client sent replaced), refusals answered to the page (a login
redirect script, a console error, Socket.IO's CONNECT_ERROR) and never forwarded, and a
close verdict ending the WebSocket with code 1008.

Every case with `connect` (the handshake) is replayed once; every case with an `event`
of kind `client` twice: as the first event riding in the CONNECT packet (Reflex sends
its hydrate event so) and as an ordinary EVENT packet on a connected socket. Events of
kind `upload` and `identity-change` are listed as skipped: no client can send them over
the WebSocket (the gateway would originate them).

Needs Python >= 3.11 (tomllib) and aiohttp. Everything listens on 127.0.0.1 only, every
wait is bounded, the gateway is killed by its PID on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import aiohttp
from aiohttp import web

# The gateway's [bridge] secrets; the stubs hold the other ends: Django checks the first
# (sent as X-Isthmus-Secret), Reflex verifies the HMAC-SHA256 of the injection with the second.
IDENTITY_SECRET = "0123456789abcdef0123456789abcdef"
BRIDGE_SECRET = "fedcba9876543210fedcba9876543210"
SESSION_COOKIE = "sessionid"
IDENTITY_PATH = "/_isthmus/identity"
NS = "/_event"
REFLEX_VERSION = "0.10.1"
WAIT = 10.0  # seconds for any one answer through the gateway
START = 120.0  # seconds for the gateway to load the policy (a Python component is 18 MB)
POLICY_LOADED = b'plugin loaded plugin="bridge"'  # the log line of the policy (bridge.wasm) ready

# What a client might put in router_data to pass for someone else: the gateway must
# replace it with the identity it signs.
FORGED = {"payload": json.dumps({"v": 1, "identity": {"authenticated": True, "username": "mallory"}}), "sig": "0" * 64}

# Who a visitor without a session is, to Django and to the gateway (Identity::default).
ANONYMOUS: dict[str, Any] = {
    "authenticated": False,
    "user_id": None,
    "username": "",
    "email": "",
    "first_name": "",
    "last_name": "",
    "is_staff": False,
    "is_superuser": False,
    "groups": [],
    "permissions": [],
    "session": {},
}


class Failed(Exception):
    pass


# Tab.until's `unless`: a frame -> why it must not have come (None when fine).
Forbidden = Callable[[str], "str | None"] | None


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Failed(what)


# --------------------------------------------------------------------------- stub Django
class StubDjango:
    """The companion app's identity endpoint, as python/src/isthmus_django/views.py
    answers it: the gateway sends the browser's session cookie and X-Isthmus-Secret; the
    answer is the user's identity as JSON. Sessions are made up per test user."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}  # session cookie value -> identity
        self.cookies: dict[str, str] = {}  # a case's user (as JSON) -> its session cookie value
        self.lookups = 0
        self.refused: list[str] = []  # why requests were refused (should stay empty)

    def session_for(self, user: dict[str, Any]) -> str:
        """The session cookie value of a case's user (one session per distinct user)."""
        key = json.dumps(user, sort_keys=True)
        if key not in self.cookies:
            identity = {**ANONYMOUS, **user}
            if identity["authenticated"] and identity["user_id"] is None:
                identity["user_id"] = str(len(self.sessions) + 1)  # Django users have a primary key
            self.cookies[key] = f"s{len(self.sessions) + 1}-{uuid.uuid4().hex}"
            self.sessions[self.cookies[key]] = identity
        return self.cookies[key]

    def identity_of(self, user: dict[str, Any] | None) -> dict[str, Any]:
        return self.sessions[self.session_for(user)] if user else ANONYMOUS

    async def identity(self, request: web.Request) -> web.Response:
        self.lookups += 1
        given = request.headers.get("X-Isthmus-Secret", "")
        if not hmac.compare_digest(given.encode(), IDENTITY_SECRET.encode()):
            self.refused.append(f"identity request without the identity secret (got {given!r})")
            return web.Response(status=403, text="forbidden\n")
        cookie = request.cookies.get(SESSION_COOKIE)
        # An unknown session is an anonymous visitor, as Django would have it.
        return web.json_response(self.sessions.get(cookie or "", ANONYMOUS), headers={"Cache-Control": "no-store"})

    async def anything_else(self, request: web.Request) -> web.Response:
        self.refused.append(f"unexpected request to Django: {request.method} {request.path_qs}")
        return web.Response(status=404)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(IDENTITY_PATH, self.identity)
        app.router.add_route("*", "/{tail:.*}", self.anything_else)
        return app


# --------------------------------------------------------------------------- stub Reflex
@dataclass
class Upstream:
    """What the stub Reflex saw of one socket (keyed by the client's token)."""

    sid: str = ""
    frames: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class StubReflex:
    """Just enough of Reflex's Socket.IO server (Engine.IO v4, Socket.IO v5, websocket
    transport, namespace /_event) to accept a socket and echo back, as a Socket.IO
    event named `echo`, every event it gets: what the gateway forwarded, verbatim.
    Echoes are not named `event`, so they cannot pass for the gateway's own answers."""

    def __init__(self) -> None:
        self.sockets: dict[str, Upstream] = {}

    async def socket(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        if request.query.get("EIO") != "4" or request.query.get("transport") != "websocket":
            return web.Response(status=400, text="websocket transport only\n")
        ws = web.WebSocketResponse(protocols=(REFLEX_VERSION,), autoping=True)
        await ws.prepare(request)
        sid = uuid.uuid4().hex
        seen = self.sockets.setdefault(token, Upstream(sid))
        open_packet = {"sid": sid, "upgrades": [], "pingTimeout": 20000, "pingInterval": 25000, "maxPayload": 1000000}
        await ws.send_str("0" + json.dumps(open_packet))
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                text = msg.data
                seen.frames.append(text)
                if text == "2":
                    await ws.send_str("3")
                elif text.startswith(f"40{NS},") or text == f"40{NS}":
                    auth = json.loads(text[len(f"40{NS},") :] or "{}")
                    await ws.send_str(f"40{NS},{json.dumps({'sid': sid})}")
                    if isinstance(auth, dict) and "event" in auth:
                        await ws.send_str(f"42{NS},{json.dumps(['echo', {'via': 'connect', 'event': auth['event']}])}")
                elif text.startswith(f"42{NS},"):
                    args = json.loads(text[len(f"42{NS},") :])
                    await ws.send_str(f"42{NS},{json.dumps(['echo', {'via': 'event', 'args': args}])}")
        finally:
            seen.ended.set()
        return ws

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(NS + "/", self.socket)
        app.router.add_get(NS, self.socket)
        return app


async def listen(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1 on a port the kernel picks (no race with anyone)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, sock.getsockname()[1]


# --------------------------------------------------------------------------- the gateway
def toml_value(v: Any) -> str:
    """A TOML inline value (JSON's string escapes are TOML's)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(
    site: Path, args: argparse.Namespace, cases: dict[str, Any], django: int, reflex: int
) -> tuple[Path, int]:
    """The site a plugin author would write: the default router sends /_event to the
    reflex upstream, the bridge policy gets the cases' config and limits."""
    plugins = site / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (site / "spa").mkdir(exist_ok=True)
    (plugins / "bridge.wasm").write_bytes(Path(args.plugin).read_bytes())
    (plugins / "prefix_router.wasm").write_bytes(Path(args.router).read_bytes())
    port = free_port()
    limits = "".join(f"{k} = {toml_value(cases[k])}\n" for k in ("max_memory", "deadline") if k in cases)
    config = site / "isthmus.toml"
    config.write_text(f"""\
[listen]
addr = "127.0.0.1:{port}"
[upstreams.django]
url = "http://127.0.0.1:{django}"
[upstreams.reflex]
url = "http://127.0.0.1:{reflex}"
[static.frontend]
root = "spa"
[routing]
cache_dir = {toml_value(str(args.cache))}
[[routing.routers]]
plugin = "prefix_router.wasm"
[bridge]
identity_secret = "{IDENTITY_SECRET}"
bridge_secret = "{BRIDGE_SECRET}"
[bridge.policy]
plugin = "bridge.wasm"
{limits}config = {toml_value(cases.get("config", {}))}
""")
    return config, port


class Gateway:
    """`isthmus serve` in a child process, killed by its PID on the way out."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    def start(self, isthmus: str, config: Path) -> None:
        self.log = config.parent / "gateway.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([isthmus, "serve", "--config", str(config)], stdout=log, stderr=log)

    async def ready(self) -> None:
        assert self.proc is not None
        assert self.log is not None
        deadline = time.monotonic() + START
        # Listening, and the policy loaded: past `startup_wait` the gateway serves while
        # a large component still compiles, refusing events as "starting" meanwhile.
        while not all(line in self.log.read_bytes() for line in (b"isthmus listening", POLICY_LOADED)):
            if self.proc.poll() is not None:
                raise Failed(f"isthmus serve exited ({self.proc.returncode}) before it was ready")
            if time.monotonic() > deadline:
                raise Failed(f"isthmus serve not ready (listening, policy loaded) after {START:.0f} s")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- the client
@dataclass
class Closed:
    code: int | None
    reason: str


class Tab:
    """One page's socket through the gateway, read frame by frame (the way
    socket.io-client speaks it; see tests/e2e/bridge_client.py for a fuller one)."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
        self.http, self.ws, self.token = http, ws, token
        self.frames: list[str] = []  # everything received, for failure messages
        self.closed: Closed | None = None

    @classmethod
    async def open(cls, gateway: str, headers: dict[str, str]) -> Tab:
        token = str(uuid.uuid4())
        http = aiohttp.ClientSession()
        try:
            # The handshake is bounded here; each read afterwards by Tab.next.
            handshake = http.ws_connect(
                f"{gateway}{NS}/?EIO=4&transport=websocket&token={token}",
                protocols=(REFLEX_VERSION,),
                headers=headers,
                autoclose=False,
                max_msg_size=0,
            )
            ws = await asyncio.wait_for(handshake, WAIT)
        except BaseException:
            await http.close()
            raise
        tab = cls(http, ws, token)
        await tab.until(lambda f: f.startswith("0{"), "Engine.IO open packet")
        return tab

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()
        await self.http.close()

    async def send(self, packet: str, data: Any) -> None:
        await self.ws.send_str(f"{packet}{NS},{json.dumps(data)}")

    async def until(self, pred: Callable[[str], bool], what: str, unless: Forbidden = None) -> str:
        """The first text frame satisfying `pred`, among those already received too (the
        gateway's answer and Reflex's may come in either order). Failed if the socket
        closes first, if nothing matches within WAIT seconds, or at once if a frame
        shows what `unless` says must not happen."""
        for old in self.frames:
            if pred(old):
                return old
            self.refute(old, unless)
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            frame = await self.next(deadline, what)
            if isinstance(frame, Closed):
                raise Failed(
                    f"socket closed ({frame.code} {frame.reason!r}) while waiting for {what}; got {self.got()}"
                )
            if pred(frame):
                return frame
            self.refute(frame, unless)

    async def until_closed(self, what: str, unless: Forbidden = None) -> Closed:
        for old in self.frames:
            self.refute(old, unless)
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            frame = await self.next(deadline, what)
            if isinstance(frame, Closed):
                return frame
            self.refute(frame, unless)

    @staticmethod
    def refute(frame: str, unless: Forbidden) -> None:
        problem = unless(frame) if unless else None
        if problem:
            raise Failed(problem)

    def got(self) -> str:
        """The frames received so far, shortened, for failure messages."""
        return "[" + ", ".join(repr(f if len(f) < 160 else f[:150] + "…") for f in self.frames) + "]"

    async def next(self, deadline: float, what: str) -> str | Closed:
        if self.closed is not None:
            return self.closed
        try:
            msg = await asyncio.wait_for(self.ws.receive(), max(0.01, deadline - asyncio.get_running_loop().time()))
        except TimeoutError:
            raise Failed(f"no {what} within {WAIT:.0f} s; got {self.got()}") from None
        if msg.type == aiohttp.WSMsgType.TEXT:
            self.frames.append(msg.data)
            return msg.data
        if msg.type == aiohttp.WSMsgType.CLOSE:
            self.closed = Closed(msg.data, msg.extra or "")
        else:
            self.closed = Closed(self.ws.close_code, f"{msg.type.name} {msg.extra or ''}".strip())
        return self.closed


def reached(name: str) -> Callable[[str], str | None]:
    """For Tab.until's `unless`: the stub Reflex echoing event `name` means it got it."""

    def check(frame: str) -> str | None:
        connect, args = echo_of(frame, "connect"), echo_of(frame, "event")
        event = connect if connect is not None else (args[1] if isinstance(args, list) and len(args) > 1 else None)
        if isinstance(event, dict) and event.get("name") == name:
            return f"{name} reached Reflex: the gateway let it through"
        return None

    return check


def is_connect(frame: str) -> bool:
    """A CONNECT packet (client to Reflex) or its answer (Reflex to client)."""
    return frame.startswith(f"40{NS}")


def connect_reached(frame: str) -> str | None:
    """For Tab.until's `unless`: the stub Reflex answered a CONNECT, so it got it."""
    return "the CONNECT reached Reflex: the gateway let it through" if is_connect(frame) else None


def refused(frame: str) -> str | None:
    """For Tab.until's `unless`, waiting for an allowed event: the gateway refused it."""
    script = gateway_answer(frame)
    return f"the gateway refused the event: {script}" if script is not None else None


def socketio(frame: str, packet: str) -> Any:
    """The JSON of a `<packet>/_event,<json>` frame, or None for any other frame."""
    prefix = f"{packet}{NS},"
    return json.loads(frame[len(prefix) :]) if frame.startswith(prefix) else None


def echo_of(frame: str, via: str) -> Any:
    """What the stub Reflex echoed (the event it got), or None."""
    args = socketio(frame, "42")
    if not (isinstance(args, list) and args and args[0] == "echo" and args[1].get("via") == via):
        return None
    return args[1]["event"] if via == "connect" else args[1]["args"]


def gateway_answer(frame: str) -> str | None:
    """The script of the gateway's answer to a refused event, or None: an update whose
    only content is a `_call_script` event (see host/src/bridge/judge.rs)."""
    args = socketio(frame, "42")
    if not (isinstance(args, list) and len(args) == 2 and args[0] == "event" and isinstance(args[1], dict)):
        return None
    events = args[1].get("events") or []
    if "delta" in args[1] or len(events) != 1 or events[0].get("name") != "_call_script":
        return None
    return events[0]["payload"]["javascript_code"]


def call_argument(script: str, function: str) -> str | None:
    """The string a `function(<JSON string>)` script passes, or None."""
    m = re.fullmatch(re.escape(function) + r"\((\".*\")\)", script, re.S)
    return json.loads(m.group(1)) if m else None


# --------------------------------------------------------------------------- the cases
@dataclass
class Expect:
    """A case's `expect`: `allow` (fields the context must hold), `refuse`
    (login_required and/or forbidden text, when given) or `close` (reason, when given)."""

    verdict: str
    fields: dict[str, str] = field(default_factory=dict)
    login_url: str | None = None
    forbidden: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, expect: dict[str, Any]) -> Expect:
        (verdict, detail), *rest = expect.items()
        check(not rest and verdict in ("allow", "refuse", "close"), f"unknown expect {expect!r}")
        if verdict == "allow":
            return cls("allow", fields=dict(detail or {}))
        if verdict == "refuse":
            detail = detail or {}
            return cls("refuse", login_url=detail.get("login_required"), forbidden=detail.get("forbidden"))
        return cls("close", reason=detail or None)

    def __str__(self) -> str:
        if self.verdict == "refuse":
            return "refuse " + ("login_required" if self.login_url is not None else "forbidden")
        return self.verdict


class Run:
    def __init__(self, gateway_url: str, django: StubDjango, reflex: StubReflex, cases: dict[str, Any]) -> None:
        self.url = gateway_url
        self.django = django
        self.reflex = reflex
        self.cases = cases.get("case", [])
        self.failures: list[str] = []
        self.passed = 0
        self.seen: set[str] = set()  # outcomes checked, for the coverage check
        # The handshake headers of the first connect case the policy lets in: every event
        # case connects with them (a policy may refuse sockets without the right Origin).
        allowed = [c["connect"] for c in self.cases if "connect" in c and "allow" in c["expect"]]
        self.page_headers: list[Any] = allowed[0].get("headers", []) if allowed else []

    def headers(self, user: dict[str, Any] | None, extra: list[Any] | None) -> dict[str, str]:
        """Handshake headers: the case's, with our session cookie for its user instead of
        any cookie it names (anonymous visitors send none)."""
        out = {k: v for k, v in (extra or []) if k.lower() != "cookie"}
        if user:
            out["Cookie"] = f"{SESSION_COOKIE}={self.django.session_for(user)}"
        return out

    def report(self, ok: bool, case: str, how: str, expect: Expect, note: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {expect!s:22} {how:15} {case}: {note}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{case} [{how}]")

    async def run(self) -> None:
        for case in self.cases:
            expect = Expect.of(case["expect"])
            if "connect" in case:
                await self.attempt(case, "handshake", expect, self.connect_case)
            elif "event" in case:
                kind = case["event"].get("kind", "client").replace("_", "-")
                if kind != "client":
                    print(f"  skip {expect!s:22} {kind:15} {case['name']}: no client sends this kind of event")
                    continue
                await self.attempt(case, "in CONNECT", expect, self.first_event_case)
                await self.attempt(case, "EVENT", expect, self.event_case)

    async def attempt(self, case: dict[str, Any], how: str, expect: Expect, fn: Callable[..., Any]) -> None:
        try:
            note = await fn(case, expect)
            self.seen.add(f"{expect}" + (" (signed in)" if expect.verdict == "allow" and case.get("user") else ""))
            self.report(True, case["name"], how, expect, note)
        except Failed as e:
            self.report(False, case["name"], how, expect, str(e))
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            self.report(False, case["name"], how, expect, f"{type(e).__name__}: {e}")

    # -- the handshake ------------------------------------------------------------------
    async def connect_case(self, case: dict[str, Any], expect: Expect) -> str:
        req = case["connect"]
        check(req.get("path", NS).rstrip("/") == NS, f"connect path {req.get('path')!r} is not the bridge's ({NS}/)")
        tab = await Tab.open(self.url, self.headers(case.get("user"), req.get("headers")))
        try:
            await tab.send("40", {})
            if expect.verdict == "close":
                return await self.closed_as(tab, expect, "the CONNECT", is_connect, connect_reached)
            frame = await tab.until(lambda f: is_connect(f) or f.startswith(f"44{NS}"), "answer to the CONNECT")
            if expect.verdict == "allow":
                check(frame.startswith(f"40{NS},"), f"CONNECT refused: {frame}")
                sid = self.reflex.sockets[tab.token].sid
                check(socketio(frame, "40") == {"sid": sid}, f"{frame} is not the stub Reflex's answer (sid {sid})")
                return "connected to the stub Reflex"
            error = socketio(frame, "44")
            check(error is not None, f"CONNECT was let through: {frame}")
            want = expected_refusal_text(expect)
            check(want is None or error.get("message") == want, f"CONNECT_ERROR {error!r}, expected message {want!r}")
            await self.barrier(tab)
            check(
                not any(is_connect(f) for f in self.reflex.sockets[tab.token].frames),
                "the refused CONNECT reached Reflex",
            )
            return f"CONNECT_ERROR {error['message']!r}, nothing reached Reflex"
        finally:
            await tab.close()

    # -- events -------------------------------------------------------------------------
    async def first_event_case(self, case: dict[str, Any], expect: Expect) -> str:
        """The event as Reflex's page sends its first one: in the CONNECT packet."""
        event = reflex_event(case["event"])
        tab = await Tab.open(self.url, self.headers(case.get("user"), self.page_headers))
        try:
            await tab.send("40", {"event": event})
            if expect.verdict == "close":
                return await self.closed_as(
                    tab, expect, event["name"], lambda f: event["name"] in f, reached(event["name"])
                )
            await tab.until(lambda f: f.startswith(f"40{NS},"), "CONNECT answer from the stub Reflex")
            if expect.verdict == "allow":
                echoed = echo_of(
                    await tab.until(lambda f: echo_of(f, "connect") is not None, "echoed event", refused), "connect"
                )
                return self.allowed(case, expect, event, echoed)
            # Refused: the connection goes ahead without its first event.
            note = await self.refused(tab, expect, event)
            connect = [f for f in self.reflex.sockets[tab.token].frames if is_connect(f)]
            check(len(connect) == 1 and event["name"] not in connect[0], f"Reflex got the CONNECT {connect}")
            return note
        finally:
            await tab.close()

    async def event_case(self, case: dict[str, Any], expect: Expect) -> str:
        """The event as an ordinary EVENT packet on a connected socket."""
        event = reflex_event(case["event"])
        tab = await Tab.open(self.url, self.headers(case.get("user"), self.page_headers))
        try:
            await tab.send("40", {})
            await tab.until(lambda f: f.startswith(f"40{NS},"), "CONNECT answer from the stub Reflex")
            await tab.send("42", ["event", event])
            if expect.verdict == "close":
                return await self.closed_as(
                    tab, expect, event["name"], lambda f: event["name"] in f, reached(event["name"])
                )
            if expect.verdict == "allow":
                args = echo_of(
                    await tab.until(lambda f: echo_of(f, "event") is not None, "echoed event", refused), "event"
                )
                check(args[0] == "event" and len(args) == 2, f"Reflex got {args!r}")
                return self.allowed(case, expect, event, args[1])
            return await self.refused(tab, expect, event)
        finally:
            await tab.close()

    def allowed(self, case: dict[str, Any], expect: Expect, sent: dict[str, Any], got: dict[str, Any]) -> str:
        """The event Reflex got is the one sent, with the gateway's signed identity in
        router_data in place of the forged one."""
        check(got.get("name") == sent["name"] and got.get("payload") == sent["payload"], f"Reflex got {got!r}")
        router = dict(got.get("router_data") or {})
        injected = router.pop("isthmus", None)
        sent_router = {k: v for k, v in sent["router_data"].items() if k != "isthmus"}
        check(router == sent_router, f"router_data changed on the way: {router!r}")
        check(
            isinstance(injected, dict) and injected != FORGED,
            f"the client's forged identity reached Reflex: {injected!r}",
        )
        payload_text, sig = injected.get("payload"), injected.get("sig")
        check(
            isinstance(payload_text, str) and isinstance(sig, str), f"injection without payload and sig: {injected!r}"
        )
        want_sig = hmac.new(BRIDGE_SECRET.encode(), payload_text.encode(), hashlib.sha256).hexdigest()
        check(hmac.compare_digest(sig, want_sig), "the injected identity is not signed with the bridge secret")
        signed = json.loads(payload_text)
        check(signed.get("v") == 1 and abs(signed.get("iat", 0) - time.time()) < 60, f"bad v/iat in {signed!r}")
        want = self.django.identity_of(case.get("user"))
        who = signed.get("identity", {})
        keys = ("authenticated", "user_id", "username", "is_staff", "is_superuser", "groups", "permissions")
        check(all(who.get(k) == want[k] for k in keys), f"signed identity {who!r}, expected {want!r}")
        check(signed.get("query") == sent["router_data"]["query"], f"signed query {signed.get('query')!r}")
        context = signed.get("context", {})
        missing = {k: v for k, v in expect.fields.items() if context.get(k) != v}
        check(not missing, f"signed context {context!r} lacks {missing!r}")
        user = who.get("username") or "an anonymous visitor"
        return f"reached Reflex signed for {user}, context {json.dumps(context)}"

    async def refused(self, tab: Tab, expect: Expect, event: dict[str, Any]) -> str:
        """The page is told (a login redirect or a console error) and Reflex never sees
        the event."""
        answer = await tab.until(
            lambda f: gateway_answer(f) is not None, "refusal from the gateway", reached(event["name"])
        )
        script = gateway_answer(answer)
        assert script is not None
        if expect.login_url is not None or (expect.forbidden is None and "location.assign" in script):
            target = call_argument(script, "window.location.assign")
            page = event["router_data"]["asPath"]
            if expect.login_url is not None:
                sep = "&" if "?" in expect.login_url else "?"
                want = f"{expect.login_url}{sep}next={quote(page, safe='/')}"
                check(target == want, f"the page is sent to {target!r} ({script}), expected {want!r}")
            note = f"page sent to {target}"
        else:
            logged = call_argument(script, "console.error")
            want = f"isthmus: event refused ({expected_refusal_text(expect)})"
            check(
                logged is not None and (expect.forbidden is None or logged == want),
                f"script {script!r}, expected console.error({want!r})",
            )
            note = f"console.error({logged!r})"
        await self.barrier(tab)
        check(
            not any(event["name"] in f for f in self.reflex.sockets[tab.token].frames),
            "the refused event reached Reflex",
        )
        return note + ", nothing reached Reflex"

    async def closed_as(
        self, tab: Tab, expect: Expect, what: str, leaked: Callable[[str], bool], unless: Forbidden
    ) -> str:
        """The gateway closes the socket with 1008 and the policy's reason; Reflex never
        sees `what` (no frame it got is `leaked`; the client sees no frame `unless` flags)."""
        closed = await tab.until_closed("close from the gateway", unless)
        check(closed.code == 1008, f"socket closed with {closed.code} {closed.reason!r}, expected 1008")
        check(
            expect.reason is None or closed.reason == expect.reason.encode()[:120].decode(errors="ignore"),
            f"close reason {closed.reason!r}, expected {expect.reason!r}",
        )
        upstream = self.reflex.sockets.get(tab.token)
        if upstream is not None:
            try:
                await asyncio.wait_for(upstream.ended.wait(), WAIT)
            except TimeoutError:
                raise Failed("the gateway left the Reflex socket open after closing the client's") from None
            check(not any(leaked(f) for f in upstream.frames), f"Reflex got {what} before the close: {upstream.frames}")
        return f"closed 1008 {closed.reason!r}, nothing reached Reflex"

    async def barrier(self, tab: Tab) -> None:
        """Frames go up one socket in order: once a probe sent after the refused packet
        comes back from Reflex, the refused packet would have come first if forwarded.
        (A socket event not named `event` reaches no handler: the gateway relays it.)"""
        probe = uuid.uuid4().hex
        await tab.send("42", ["probe", probe])
        await tab.until(lambda f: (echo_of(f, "event") or [None, None])[1] == probe, "echoed probe")


def reflex_event(ev: dict[str, Any]) -> dict[str, Any]:
    """A case's event as Reflex's page sends it, with a forged identity in router_data."""
    route, query = ev.get("route", "/"), ev.get("query", "")
    router = {
        "pathname": route,
        "asPath": route + (f"?{query}" if query else ""),
        "query": dict(parse_qsl(query)),
        "isthmus": FORGED,
    }
    return {"name": ev["name"], "payload": json.loads(ev.get("payload") or "{}"), "router_data": router}


def expected_refusal_text(expect: Expect) -> str | None:
    """How the gateway words a refusal to the client (host/src/policy/mod.rs, Display)."""
    if expect.login_url is not None:
        return f"login_required:{expect.login_url}"
    if expect.forbidden is not None:
        return f"forbidden:{expect.forbidden}"
    return None


# Every template's example logic promises at least these; a cases.toml that stops
# exercising one would let the traffic test pass vacuously.
MUST_SEE = ["allow (signed in)", "refuse login_required", "refuse forbidden", "close"]


async def main(args: argparse.Namespace, gateway: Gateway) -> int:
    cases = tomllib.loads(Path(args.cases).read_text())
    check(cases.get("world") == "bridge", f"{args.cases} is not a bridge's cases")
    django, reflex = StubDjango(), StubReflex()
    runners = []
    try:
        for stub in (django, reflex):
            runners.append(await listen(stub.app()))
        (_, django_port), (_, reflex_port) = runners
        site = Path(args.dir)
        config, port = write_config(site, args, cases, django_port, reflex_port)
        # What a plugin author runs first: the config and the plugin, checked offline.
        checked = subprocess.run(
            [args.isthmus, "check", "--config", str(config)], capture_output=True, text=True, timeout=START
        )
        check(checked.returncode == 0, f"isthmus check failed:\n{checked.stdout}{checked.stderr}")
        gateway.start(args.isthmus, config)
        started = time.monotonic()
        await gateway.ready()
        ready = time.monotonic() - started
        print(f"isthmus serve :{port} ready in {ready:.1f} s; stub Django :{django_port}, stub Reflex :{reflex_port}")
        run = Run(f"http://127.0.0.1:{port}", django, reflex, cases)
        await run.run()
        problems = list(run.failures)
        problems += [f"stub Django: {r}" for r in dict.fromkeys(django.refused)]
        if any(c.get("user") for c in run.cases) and django.lookups == 0:
            problems.append("the gateway never asked Django who a session belongs to")
        problems += [f"no case checked `{o}` through the gateway" for o in MUST_SEE if o not in run.seen]
        if problems:
            print(f"\nbridge traffic: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
            print(f"\nlast lines of {gateway.log}:\n{gateway.tail()}")
            return 1
        print(f"bridge traffic: {run.passed} exchanges as cases.toml promises ({django.lookups} identity lookups)")
        return 0
    finally:
        gateway.stop()
        for runner, _ in runners:
            await runner.cleanup()


def parse_args() -> argparse.Namespace:
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--isthmus", default=str(repo / "target/debug/isthmus"), help="the gateway binary")
    p.add_argument("--plugin", required=True, help="the bridge policy component")
    p.add_argument("--cases", required=True, help="its cases.toml")
    p.add_argument("--dir", required=True, help="folder for the site (config, plugins, gateway.log)")
    p.add_argument(
        "--router", default=str(repo / "target/plugins/prefix_router.wasm"), help="the router sending /_event to reflex"
    )
    p.add_argument("--cache", default=str(Path("/tmp/isthmus-plugin-cache")), help="compiled-plugin cache")
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    gateway = Gateway()
    # templates.sh's cleanup sends SIGTERM: leave through the finally that stops the gateway.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        code = asyncio.run(asyncio.wait_for(main(args, gateway), START + 300))
    except Failed as e:
        print(f"bridge traffic: {e}\n{gateway.tail()}", file=sys.stderr)
        code = 1
    except TimeoutError:
        print("bridge traffic: gave up after the overall timeout", file=sys.stderr)
        code = 1
    finally:
        gateway.stop()
    sys.exit(code)
