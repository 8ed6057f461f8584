"""A Reflex 0.10.1 client speaking Engine.IO v4 / Socket.IO v5 frames over a raw
WebSocket, the way the browser's socket.io-client does (see reflex_base's
.templates/web/utils/state.js):

    GET /_event/?EIO=4&transport=websocket&token=<uuid>    Sec-WebSocket-Protocol: 0.10.1
    << 0{"sid":…,"upgrades":[],"pingInterval":25000,…}
    >> 40/_event,{"event":{"name":"reflex___state____state.hydrate_and_load",…}}
    << 40/_event,{"sid":…}
    >> 42/_event,["event",{"name":"<state path>.<handler>","payload":{…},"router_data":{…}}]
    << 42/_event,["event",{"delta":{…},"events":[…],"final":true}]

Raw frames let the tests also send what a browser never would (oversized frames,
broken packets, spoofed keys) and read the WebSocket close code and reason.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote

import aiohttp

REFLEX_VERSION = "0.10.1"
NS = "/_event"
ROOT = "reflex___state____state"
SHOP = f"{ROOT}.shop_frontend___state____shop_state"
WHOAMI = f"{ROOT}.shop_frontend___state____whoami_state"
HYDRATE = f"{ROOT}.hydrate_and_load"


def var(name: str) -> str:
    """How Reflex 0.10.1 names a state var in a delta."""
    return f"{name}_rx_state_"


def router_data(route: str = "/", query: dict[str, str] | None = None) -> dict[str, Any]:
    query = query or {}
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    data: dict[str, Any] = {"pathname": route, "asPath": route + (f"?{qs}" if qs else "")}
    if query:
        data["query"] = dict(query)
    return data


def event(name: str, payload: dict | None = None, *, route: str = "/", query: dict[str, str] | None = None, extra_router: dict | None = None) -> dict[str, Any]:
    rd = router_data(route, query)
    rd.update(extra_router or {})
    return {"name": name, "payload": payload or {}, "router_data": rd}


@dataclass
class Closed:
    code: int | None
    reason: str


class BridgeClient:
    """One browser tab's socket: a token, a cookie, a merged view of the state."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, token: str):
        self.session = session
        self.ws = ws
        self.token = token
        self.sid: str | None = None
        self.connect_error: Any = None
        self.updates: asyncio.Queue[dict] = asyncio.Queue()
        self.all_updates: list[dict] = []
        self.raw_frames: list[str] = []
        self.state: dict[str, dict[str, Any]] = {}
        self.closed: asyncio.Future[Closed] = asyncio.get_running_loop().create_future()
        self._connected = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    # -- connection ------------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        base_ws_url: str,
        *,
        cookie: str | None = None,
        token: str | None = None,
        boot: dict | None | bool = True,
        route: str = "/",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth_extra: dict | None = None,
        boot_router_extra: dict | None = None,
        wait: bool = True,
        timeout: float = 20,
    ) -> "BridgeClient":
        token = token or str(uuid.uuid4())
        hdrs = dict(headers or {})
        if cookie:
            hdrs["Cookie"] = cookie
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(
                f"{base_ws_url}/_event/?EIO=4&transport=websocket&token={token}",
                protocols=(REFLEX_VERSION,),
                headers=hdrs,
                autoclose=False,
                autoping=True,
                max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
            )
        except BaseException:
            await session.close()
            raise
        client = cls(session, ws, token)
        auth: dict[str, Any] = {}
        if boot is True:
            boot = event(HYDRATE, {}, route=route, query=query, extra_router=boot_router_extra)
        if boot:
            auth["event"] = boot
        auth.update(auth_extra or {})
        await client.send_raw(f"40{NS},{json.dumps(auth)}")
        if wait:
            try:
                await client.wait_connected(timeout)
                if boot and boot.get("name") == HYDRATE:
                    await client.wait_hydrated(timeout)
            except BaseException:
                await client.close()
                raise
        return client

    async def wait_hydrated(self, timeout: float = 20) -> None:
        """The boot event is done once Reflex sets `is_hydrated` (after the page's on_load)."""
        if self.get(ROOT, "is_hydrated") is True:
            return
        await self.until(lambda u: (u.get("delta") or {}).get(ROOT, {}).get(var("is_hydrated")) is True or is_refusal(u), timeout)

    async def wait_connected(self, timeout: float = 20) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)
        if self.connect_error is not None:
            raise ConnectionRefusedError(f"CONNECT refused: {self.connect_error}")

    async def close(self) -> None:
        self._reader.cancel()
        try:
            await self._reader
        except BaseException:
            pass
        if not self.ws.closed:
            await self.ws.close()
        await self.session.close()

    async def __aenter__(self) -> "BridgeClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- frames ----------------------------------------------------------------------------
    async def send_raw(self, text: str | bytes) -> None:
        if isinstance(text, bytes):
            await self.ws.send_bytes(text)
        else:
            await self.ws.send_str(text)

    async def emit(self, name: str, payload: dict | None = None, **kw: Any) -> None:
        await self.send_raw(f"42{NS},{json.dumps(['event', event(name, payload, **kw)])}")

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._frame(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    continue
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    self._set_closed(Closed(msg.data, msg.extra or ""))
                    await self.ws.close()
                    return
                else:  # CLOSING / CLOSED / ERROR
                    self._set_closed(Closed(self.ws.close_code, str(msg.extra or msg.data or "")))
                    return
        finally:
            self._set_closed(Closed(self.ws.close_code, "reader stopped"))
            self._connected.set()

    def _set_closed(self, closed: Closed) -> None:
        if not self.closed.done():
            self.closed.set_result(closed)

    def _frame(self, text: str) -> None:
        self.raw_frames.append(text)
        if text == "2":  # Engine.IO ping: answer pong, as the browser does
            asyncio.get_running_loop().create_task(self.ws.send_str("3"))
            return
        if text.startswith(f"40{NS},"):
            self.sid = json.loads(text[len(f"40{NS},") :]).get("sid")
            self._connected.set()
            return
        if text.startswith(f"44{NS},"):
            self.connect_error = json.loads(text[len(f"44{NS},") :])
            self._connected.set()
            return
        if text.startswith(f"42{NS},"):
            args = json.loads(text[len(f"42{NS},") :])
            if args and args[0] == "event" and len(args) > 1 and isinstance(args[1], dict):
                update = args[1]
                for state, delta in (update.get("delta") or {}).items():
                    self.state.setdefault(state, {}).update(delta)
                self.all_updates.append(update)
                self.updates.put_nowait(update)

    # -- reading results -------------------------------------------------------------------
    def get(self, state: str, name: str, default: Any = None) -> Any:
        return self.state.get(state, {}).get(var(name), default)

    async def next_update(self, timeout: float = 15) -> dict:
        get = asyncio.ensure_future(self.updates.get())
        done, _ = await asyncio.wait({get, self.closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        if self.closed.done():
            raise ConnectionError(f"socket closed: {self.closed.result()}")
        raise TimeoutError(f"no update within {timeout}s")

    async def until(self, pred: Callable[[dict], bool], timeout: float = 15) -> list[dict]:
        """Updates until one satisfies `pred` (included); TimeoutError otherwise."""
        seen: list[dict] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            update = await self.next_update(max(0.01, deadline - loop.time()))
            seen.append(update)
            if pred(update):
                return seen

    async def until_state(self, pred: Callable[[], bool], timeout: float = 15) -> None:
        """Until the merged state satisfies `pred` (checked now, then after each update).
        Page on_load handlers may finish after `is_hydrated` is set, so tests that read
        what on_load produced wait for it this way."""
        if pred():
            return
        await self.until(lambda _u: pred(), timeout)

    async def call(self, name: str, payload: dict | None = None, *, timeout: float = 15, **kw: Any) -> list[dict]:
        """Emit an event and collect its updates up to the first that answers it: a delta
        of the handler's state, events (a redirect, a script), or the gateway's refusal.
        (Reflex 0.10.1 no longer marks the last update of an event with `final`.)"""
        state_path = name.rpartition(".")[0]
        self.drain()
        await self.emit(name, payload, **kw)
        return await self.until(lambda u: is_refusal(u) or state_path in (u.get("delta") or {}) or bool(u.get("events")), timeout)

    def drain(self) -> list[dict]:
        out = []
        while not self.updates.empty():
            out.append(self.updates.get_nowait())
        return out

    async def wait_closed(self, timeout: float = 10) -> Closed:
        return await asyncio.wait_for(asyncio.shield(self.closed), timeout)


# -- what a refusal looks like ---------------------------------------------------------------
def events_of(updates: list[dict] | dict) -> list[dict]:
    if isinstance(updates, dict):
        updates = [updates]
    return [e for u in updates for e in (u.get("events") or [])]


_ASSIGN = re.compile(r"window\.location\.(?:assign|replace|href\s*=)\(?\s*\"([^\"]+)\"")


def navigation_target(ev: dict) -> str | None:
    """The URL an event sends the browser to: `_redirect` or a `location.assign` script."""
    payload = ev.get("payload") or {}
    if ev.get("name") == "_redirect":
        return payload.get("path")
    if ev.get("name") == "_call_script":
        m = _ASSIGN.search(payload.get("javascript_code", ""))
        if m:
            return json.loads(f'"{m.group(1)}"')
    return None


def login_redirect(updates: list[dict] | dict) -> str | None:
    """The login URL (with its decoded next=) the updates send the browser to, if any."""
    for ev in events_of(updates):
        target = navigation_target(ev)
        if target:
            return unquote(target)
    return None


def console_errors(updates: list[dict] | dict) -> list[str]:
    return [
        e["payload"]["javascript_code"]
        for e in events_of(updates)
        if e.get("name") == "_call_script" and "console.error" in (e.get("payload") or {}).get("javascript_code", "")
    ]


def is_refusal(update: dict) -> bool:
    """The gateway's answer to a refused event: events only, no delta."""
    return "delta" not in update and bool(update.get("events"))
