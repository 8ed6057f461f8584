"""Session writes from Reflex handlers (`update_session`), through the gateway to Django."""

from __future__ import annotations

import json

import httpx

from bridge_client import WHOAMI, var
from isthmus_reflex import make_injection
from isthmus_reflex.session import signed_request


async def whoami(sock) -> dict:
    before = sock.get(WHOAMI, "calls", 0)
    await sock.emit(f"{WHOAMI}.whoami", {}, route="/whoami")
    await sock.until(lambda u: (u.get("delta") or {}).get(WHOAMI, {}).get(var("calls"), before) > before)
    return {k[: -len("_rx_state_")]: v for k, v in sock.state[WHOAMI].items()}


async def call(sock, handler: str, payload: dict, done) -> dict:
    """Run a WhoamiState handler; wait until ``done(vars)`` holds (the page's boot event
    sends WhoamiState deltas of its own)."""
    seen = lambda: {k[: -len("_rx_state_")]: v for k, v in (sock.state.get(WHOAMI) or {}).items()}  # noqa: E731
    await sock.emit(f"{WHOAMI}.{handler}", payload, route="/whoami")
    await sock.until_state(lambda: done(seen()))
    return seen()


def wrote(cart: str):
    return lambda v: v.get("cart_id") == cart or bool(v.get("session_error"))


def failed(v) -> bool:
    return bool(v.get("session_error"))


def django_cart(b) -> object:
    r = b.http.get("/api/shop/cart/")
    assert r.status_code == 200, r.text
    return r.json()["cart_id"]


async def test_a_handler_writes_the_session_and_the_next_event_and_django_see_it(stack, browser, sockets):
    b = browser()
    b.login("clerk")
    assert b.post_form("/api/shop/cart/", {"cart_id": "42"}).status_code == 200
    sock = await sockets(b, route="/whoami")
    assert (await whoami(sock))["cart_id"] == "42"  # the gateway now caches that identity

    seen = await call(sock, "set_cart", {"cart_id": 77}, wrote("77"))
    assert seen["session_error"] == "", seen["session_error"]
    assert seen["cart_id"] == "77"
    assert django_cart(b) == 77, "Django's own views see the write"
    assert (await whoami(sock))["cart_id"] == "77", "the next event sees it"
    # Another page of the same browser (another socket, a token of its own) sees it at once:
    # the gateway that passed the write dropped its cached identity of that session.
    other = await sockets(b, route="/whoami")
    assert (await whoami(other))["cart_id"] == "77"
    # A later write by a Django view wins over what the handler wrote.
    assert b.post_form("/api/shop/cart/", {"cart_id": "5"}).status_code == 200
    assert (await whoami(sock))["cart_id"] == "5"


async def test_an_anonymous_visitor_s_session_is_written_too(stack, browser, sockets):
    b = browser()
    assert b.post_form("/api/shop/cart/", {"cart_id": "1"}).status_code == 200  # a session, no user
    sock = await sockets(b, route="/whoami")
    seen = await call(sock, "set_cart", {"cart_id": 2}, wrote("2"))
    assert seen["session_error"] == "" and seen["cart_id"] == "2"
    assert django_cart(b) == 2


async def test_without_a_session_the_handler_gets_a_clear_error(stack, browser, sockets):
    sock = await sockets(browser(), route="/whoami")
    seen = await call(sock, "set_cart", {"cart_id": 3}, failed)
    assert seen["session_error"].startswith("SessionWriteError: "), seen
    assert "no Django session" in seen["session_error"]


async def test_a_key_outside_the_whitelist_is_refused_and_nothing_written(stack, browser, sockets):
    b = browser()
    b.login("clerk")
    assert b.post_form("/api/shop/cart/", {"cart_id": "8"}).status_code == 200
    sock = await sockets(b, route="/whoami")
    seen = await call(sock, "set_unlisted", {}, failed)
    assert seen["session_error"] == "SessionKeyRefused: is_admin"
    assert django_cart(b) == 8, "cart_id, sent with it, was not written either"


def _identity_for(stack, b) -> dict:
    """What the gateway fetches for this browser (its sealed session_ref included)."""
    r = httpx.get(
        f"http://127.0.0.1:{stack.django_port}/_isthmus/identity",
        headers={"Cookie": b.cookie_header(), "X-Isthmus-Secret": stack.identity_secret, "Host": "127.0.0.1"},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_forged_or_replayed_calls_are_refused(stack, browser):
    b = browser()
    b.login("clerk")
    assert b.post_form("/api/shop/cart/", {"cart_id": "11"}).status_code == 200
    url = f"{stack.gateways['main'].url}/_isthmus/session"
    identity = _identity_for(stack, b)
    assert identity["session_ref"].startswith("v1.")
    assert b.session_id not in json.dumps(identity), "the reference does not show the session key"

    def send(injection, body_set, secret=stack.bridge_secret, nonce=None, headers=None):
        body = json.dumps({"injection": injection, "set": body_set}).encode()
        sent = signed_request(url, body, secret, nonce=nonce)
        if headers is not None:
            sent = headers
        return httpx.post(url, content=body, headers=sent)

    good = make_injection(identity, stack.bridge_secret)
    # Unsigned, or signed with another secret: refused.
    assert send(good, {"cart_id": 12}, headers={"Content-Type": "application/json"}).status_code == 403
    assert send(good, {"cart_id": 12}, secret="x" * 64).status_code == 403
    # An injection the gateway did not sign (another bridge secret): refused.
    assert send(make_injection(identity, "y" * 64), {"cart_id": 12}).status_code == 403
    # A made-up reference in a validly signed injection: refused.
    made_up = {**identity, "session_ref": "v1." + "A" * 80}
    assert send(make_injection(made_up, stack.bridge_secret), {"cart_id": 12}).status_code == 403
    assert django_cart(b) == 11

    # The real thing once, then the same request again: the replay is refused.
    first = send(good, {"cart_id": 13}, nonce="c" * 32)
    assert first.status_code == 200, first.text
    assert "x-isthmus-session-written" not in first.headers, "the gateway keeps Django's word to itself"
    assert "set-cookie" not in first.headers
    again = send(good, {"cart_id": 14}, nonce="c" * 32)
    assert again.status_code == 403
    again_same = httpx.post(url, content=first.request.content, headers=dict(first.request.headers))
    assert again_same.status_code == 403
    assert again_same.json()["error"] == "replayed request"
    assert django_cart(b) == 13
