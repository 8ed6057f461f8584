"""The Django identity in Reflex handlers, through the gateway's event bridge."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid

import aiohttp
import socketio

from bridge_client import HYDRATE, SHOP, WHOAMI, event, var
from stack import PASSWORD


async def whoami(sock, **kw) -> dict:
    """Call the whoami handler; return the vars it stored (what the handler saw)."""
    before = sock.get(WHOAMI, "calls", 0)
    await sock.emit(f"{WHOAMI}.whoami", {}, **kw)
    await sock.until(lambda u: (u.get("delta") or {}).get(WHOAMI, {}).get(var("calls"), before) > before)
    return {k[: -len("_rx_state_")]: v for k, v in sock.state[WHOAMI].items()}


async def test_anonymous_user(stack, sockets):
    sock = await sockets()
    seen = await whoami(sock)
    assert seen["authenticated"] is False
    assert seen["username"] == "" and seen["user_id"] == ""
    assert seen["verified"] is True, seen["reason"]  # a signed anonymous identity
    assert seen["rule"] == "2"  # rules[2] of isthmus.toml: whoami → any


async def test_logged_in_staff_user_and_products_page(stack, browser, sockets):
    b = browser()
    b.admin_login("staffer")
    sock = await sockets(b, route="/")
    # The boot event (hydrate_and_load on "/") runs the page's on_load: ShopState.load,
    # which reads the products with the async ORM and greets the Django user.
    await sock.until_state(lambda: sock.get(SHOP, "greeting") == "Hello, staffer")
    assert sock.get(SHOP, "is_staff") is True
    skus = {p["sku"] for p in sock.get(SHOP, "products")}
    assert "COF-ESP-1000" in skus
    price = next(p["price"] for p in sock.get(SHOP, "products") if p["sku"] == "COF-ESP-1000")
    assert price == "24.90"  # Decimal, exact, as a string (isthmus_reflex.ModelSerializer)

    seen = await whoami(sock)
    assert seen["authenticated"] is True and seen["verified"] is True
    assert seen["username"] == "staffer" and seen["is_staff"] is True and seen["is_superuser"] is False
    assert seen["user_id"].isdigit()


async def test_anonymous_greeting(stack, sockets):
    sock = await sockets(route="/")
    await sock.until_state(lambda: len(sock.get(SHOP, "products") or []) >= 1)
    assert sock.get(SHOP, "greeting") == "Hello, anonymous"


async def test_groups_session_keys_and_query(stack, browser, sockets):
    b = browser()
    b.login("clerk")
    # A whitelisted session key (ISTHMUS_SESSION_KEYS = ["cart_id"]) set by a Django view.
    r = b.post_form("/api/shop/cart/", {"cart_id": "42"})
    assert r.status_code == 200, r.text
    sock = await sockets(b, route="/whoami", query={"page": "2"})
    seen = await whoami(sock, route="/whoami", query={"page": "2", "sort": "price"})
    assert seen["username"] == "clerk"
    assert seen["groups"] == ["clerks"]
    assert seen["cart_id"] == "42"
    assert json.loads(seen["query"]) == {"page": "2", "sort": "price"}


async def test_standard_socketio_client(stack, browser):
    """python-socketio's own client, configured the way Reflex's frontend configures
    socket.io-client (websocket only, path /_event, namespace /_event, token in the
    query, the hydrate event in the CONNECT auth)."""
    b = browser()
    b.admin_login("admin")
    gw = stack.gateways["main"]
    http_session = aiohttp.ClientSession()
    sio = socketio.AsyncClient(reconnection=False, http_session=http_session)
    updates: asyncio.Queue = asyncio.Queue()

    @sio.on("event", namespace="/_event")
    async def on_event(data):
        await updates.put(data)

    token = str(uuid.uuid4())
    boot = event(HYDRATE, {}, route="/whoami")
    await sio.connect(
        f"{gw.url}?token={token}",
        socketio_path="/_event",
        transports=["websocket"],
        namespaces=["/_event"],
        headers={"Cookie": b.cookie_header()},
        auth={"event": boot},
        wait_timeout=10,
    )
    try:
        # /whoami's on_load is WhoamiState.whoami: it ran as part of the boot event (the
        # hydrate snapshot before it carries the initial, empty values).
        seen: dict = {}
        while seen.get(var("calls"), 0) < 1:
            data = await asyncio.wait_for(updates.get(), 15)
            seen.update((data.get("delta") or {}).get(WHOAMI, {}))
        assert seen[var("username")] == "admin"
        assert seen[var("is_superuser")] is True and seen[var("verified")] is True
        await sio.emit("event", event(f"{WHOAMI}.whoami", {}, route="/whoami"), namespace="/_event")
        while seen.get(var("calls"), 0) < 2:
            data = await asyncio.wait_for(updates.get(), 15)
            seen.update((data.get("delta") or {}).get(WHOAMI, {}))
        assert seen[var("username")] == "admin"
        assert sio.connected
    finally:
        await sio.disconnect()
        await http_session.close()


async def test_logout_through_django_is_seen_by_the_next_event(stack, browser, sockets):
    b = browser()
    b.admin_login("staffer")
    sock = await sockets(b)
    assert (await whoami(sock))["username"] == "staffer"
    # Logout in "another tab" with the same cookie, through the gateway: Django deletes
    # the session cookie in its answer, the gateway drops the cached identity at once
    # (no waiting for identity_ttl).
    r = b.logout()
    assert "sessionid=" in r.headers.get("set-cookie", "")
    seen = await whoami(sock)
    assert seen["authenticated"] is False and seen["username"] == ""
    # …and the staff action is refused on that same socket.
    updates = await sock.call(f"{SHOP}.deactivate_all")
    assert updates[-1].get("delta") is None


async def test_login_through_django_is_seen_by_the_next_connection(stack, browser, sockets):
    """Identity follows the WebSocket handshake's cookie (as with reflex-django): a login
    in the same browser gives a new session cookie, which the open socket does not
    carry; the page's next socket (same Reflex token: same tab, same state) does."""
    b = browser()
    b.csrf()  # an anonymous visitor with a csrftoken, no session
    token = str(uuid.uuid4())
    first = await sockets(b, token=token)
    assert (await whoami(first))["authenticated"] is False
    b.login("plain")
    assert (await whoami(first))["authenticated"] is False  # the handshake had no session
    await first.close()
    await asyncio.sleep(0.5)  # let Reflex unlink the token from the closed socket
    second = await sockets(b, token=token)
    seen = await whoami(second)
    assert seen["username"] == "plain" and seen["authenticated"] is True
    assert seen["calls"] == 3  # the same Reflex state (token) as before the login


async def test_session_deleted_in_django_is_seen_within_the_ttl(stack, browser, sockets):
    """A session ended without any response through the gateway (deleted server-side,
    e.g. an admin kills it) is noticed once the cached identity expires (2 s here)."""
    b = browser()
    b.login("buyer")
    sock = await sockets(b)
    assert (await whoami(sock))["username"] == "buyer"
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        db.execute("DELETE FROM django_session WHERE session_key = ?", (b.session_id,))
    await asyncio.sleep(3)
    assert (await whoami(sock))["authenticated"] is False


async def test_identity_is_cached_between_events(stack, browser, sockets):
    """Many events within the TTL cost one identity lookup: all see the same user fast."""
    b = browser()
    b.login("plain")
    sock = await sockets(b)
    loop = asyncio.get_running_loop()
    t = loop.time()
    for _ in range(20):
        assert (await whoami(sock))["username"] == "plain"
    assert loop.time() - t < 10


async def test_password_change_logs_other_sessions_out(stack, browser, sockets):
    """Django's session-auth-hash check runs in the identity endpoint: after a password
    change elsewhere, the old session is anonymous for the bridge too (within the TTL)."""
    b = browser()
    b.login("buyer")
    sock = await sockets(b)
    assert (await whoami(sock))["username"] == "buyer"
    other = browser()
    other.login("buyer")
    r = other.post_form(
        "/api/auth/password_change/",
        {"old_password": PASSWORD, "new_password1": PASSWORD + "-2", "new_password2": PASSWORD + "-2"},
    )
    try:
        assert r.status_code in (200, 302), r.text[:300]
        await asyncio.sleep(3)
        assert (await whoami(sock))["authenticated"] is False
    finally:
        stack.manage("shop_demo_users", "--password", PASSWORD, "--only", "buyer")


async def test_handshake_answers_like_reflex(stack, sockets):
    """The browser asks for subprotocol `0.10.1`; through the gateway the 101 answer and
    the Engine.IO open packet look as they do straight from Reflex."""
    from bridge_client import BridgeClient

    direct = await BridgeClient.connect(f"ws://127.0.0.1:{stack.reflex_port}")
    try:
        via = await sockets()
        assert via.ws.protocol == direct.ws.protocol
        open_direct = json.loads(direct.raw_frames[0][1:])
        open_via = json.loads(via.raw_frames[0][1:])
        assert via.raw_frames[0][0] == "0" and set(open_via) == set(open_direct)
        assert open_via["upgrades"] == [] and open_via["maxPayload"] == open_direct["maxPayload"]
    finally:
        await direct.close()
