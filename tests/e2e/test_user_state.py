"""isthmus_reflex.UserState, the per-event locale and Django's messages, through the gateway."""

from __future__ import annotations

from bridge_client import ROOT, SHOP, var

USER = f"{ROOT}.isthmus_reflex___userstate____user_state"


def user(sock, name: str):
    return sock.get(USER, name)


async def test_user_state_follows_the_identity_with_language_and_csrf(stack, browser, sockets):
    b = browser()
    b.admin_login("staffer")
    sock = await sockets(b, route="/", headers={"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.5"})
    await sock.until_state(lambda: user(sock, "username") == "staffer")
    assert user(sock, "is_authenticated") is True
    assert user(sock, "is_staff") is True and user(sock, "is_superuser") is False
    assert user(sock, "full_name")  # the name, else the username
    assert user(sock, "language") == "fr"  # LocaleMiddleware's choice for the handshake
    # The browser's own CSRF cookie, what a form posting to Django must send back.
    assert user(sock, "csrf_token") == b.http.cookies["csrftoken"]
    # A logout in Django shows on the open page with its next event (any state's).
    b.logout()
    await sock.emit(f"{SHOP}.load", {})
    await sock.until(lambda u: (u.get("delta") or {}).get(USER, {}).get(var("is_authenticated")) is False, timeout=20)
    assert user(sock, "username") == ""


async def test_anonymous_user_state(stack, sockets):
    sock = await sockets(route="/")
    await sock.until_state(lambda: user(sock, "is_authenticated") is False)
    assert user(sock, "username") == "" and user(sock, "groups") == []
    assert user(sock, "language") == "en"  # no hint: LANGUAGE_CODE's supported variant


def test_django_messages_are_handed_out_once(stack, browser):
    b = browser()
    b.admin_login("admin")  # (staffer has no permission on products: the admin answers 403)
    # The admin warns (Django's messages framework) about an object that does not exist.
    r = b.http.get("/admin/shop/product/999999/change/")
    assert r.status_code == 302, r.status_code
    first = b.http.get("/_isthmus/messages")
    assert first.status_code == 200
    texts = [m["text"] for m in first.json()["messages"]]
    assert any("999999" in t for t in texts), texts
    assert b.http.get("/_isthmus/messages").json() == {"messages": []}
