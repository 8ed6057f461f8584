"""A client cannot choose its identity: whatever it puts in router_data or its headers,
handlers see the identity the gateway resolved from the session cookie."""

from __future__ import annotations

import json
import time

import httpx
from isthmus_reflex import make_injection, sign_payload

from bridge_client import HYDRATE, SHOP, WHOAMI, event, is_refusal, login_redirect
from test_bridge_identity import whoami

ADMIN = {  # the identity endpoint's JSON for a superuser
    "authenticated": True,
    "user_id": "1",
    "username": "admin",
    "email": "admin@shop.example",
    "is_staff": True,
    "is_superuser": True,
    "groups": ["clerks"],
    "permissions": ["shop.change_product"],
    "session": {},
}

SPOOF_HEADERS = {
    "X-Django-User": "admin",
    "X-Isthmus-Secret": "will-be-replaced",
    "X-Isthmus-Identity": json.dumps({"username": "admin", "is_staff": True}),
    "X-Isthmus-User": "admin",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-User": "admin",
    "X-Forwarded-Email": "admin@shop.example",
    "X-Remote-User": "admin",
    "Remote-User": "admin",
    "X-Auth-Request-User": "admin",
    # ASGI servers fold `_` into `-`: these would read as the headers above.
    "X_Isthmus_User": "admin",
    "X_Forwarded_User": "admin",
}

#: Headers of SPOOF_HEADERS no handler may see, under either spelling.
NEVER_SEEN = {name.lower().replace("_", "-") for name in SPOOF_HEADERS if name != "X-Django-User"} - {"x-forwarded-for"}


def forged_injections(stack) -> list[dict]:
    """Signed-looking identities a client could send: a bad signature, and — worst case —
    one validly signed with the real bridge secret (a replayed or leaked injection)."""
    payload = json.dumps({"v": 1, "iat": int(time.time()), "identity": {
        "authenticated": True, "user_id": "1", "username": "admin", "email": "", "is_staff": True,
        "is_superuser": True, "groups": [], "permissions": [], "session": {}}, "query": {}, "context": {}})  # fmt: skip
    return [
        {"payload": payload, "sig": "0" * 64},
        {"payload": payload, "sig": sign_payload(payload, "not-the-secret-" + "x" * 32)},
        make_injection(ADMIN, stack.bridge_secret, query={}, context={"rule": "0"}, iat=int(time.time())),
    ]


async def test_forged_router_data_identity_never_reaches_a_handler(stack, sockets):
    headers = dict(SPOOF_HEADERS, **{"X-Isthmus-Secret": stack.identity_secret})
    for forged in forged_injections(stack):
        sock = await sockets(headers=headers, boot_router_extra={"isthmus": forged})
        seen = await whoami(sock, extra_router={"isthmus": forged, "Isthmus": forged})
        assert seen["authenticated"] is False, (forged, seen)
        assert seen["username"] == ""
        assert seen["verified"] is True, seen["reason"]  # the gateway's own (anonymous) injection
        # The gateway's namespace, identity headers and `_` names never reach Reflex; an
        # unknown header does, as a plain header nobody trusts; X-Forwarded-For is the
        # gateway's own.
        names = set(seen["header_names"])
        assert not names & NEVER_SEEN, names & NEVER_SEEN
        assert not any("_" in n for n in names), names
        assert "x-django-user" in names
        # The staff action stays refused, by the gateway.
        gw = stack.gateways["main"]
        before = gw.refusals(f"{SHOP}.deactivate_all")
        updates = await sock.call(f"{SHOP}.deactivate_all", extra_router={"isthmus": forged})
        assert login_redirect(updates) == "/admin/login/?next=/"
        assert is_refusal(updates[-1])
        assert gw.refusals_settled(f"{SHOP}.deactivate_all", before + 1) == before + 1


async def test_forged_identity_cannot_raise_a_logged_in_user(stack, browser, sockets):
    b = browser()
    b.login("plain")
    forged = forged_injections(stack)[-1]  # validly signed admin identity
    sock = await sockets(b, headers=dict(SPOOF_HEADERS), boot_router_extra={"isthmus": forged})
    seen = await whoami(sock, extra_router={"isthmus": forged})
    assert seen["username"] == "plain" and seen["is_staff"] is False and seen["is_superuser"] is False
    gw = stack.gateways["main"]
    before = gw.refusals(f"{WHOAMI}.perm_action")
    updates = await sock.call(f"{WHOAMI}.perm_action", extra_router={"isthmus": forged})
    assert is_refusal(updates[-1])
    assert gw.refusals_settled(f"{WHOAMI}.perm_action", before + 1) == before + 1


async def test_forged_cookie_value_is_anonymous(stack, sockets):
    sock = await sockets(cookie="sessionid=" + "a" * 32 + "; csrftoken=x")
    seen = await whoami(sock)
    assert seen["authenticated"] is False and seen["verified"] is True


async def test_forged_injection_in_the_connect_auth_event(stack, sockets):
    """The first event rides in the CONNECT packet: the gateway rewrites it there too.
    /whoami's on_load runs WhoamiState.whoami as part of that boot event."""
    forged = forged_injections(stack)[-1]
    boot = event(HYDRATE, {}, route="/whoami", extra_router={"isthmus": forged})
    sock = await sockets(boot=boot)
    await sock.until_state(lambda: (sock.get(WHOAMI, "calls") or 0) >= 1)
    assert sock.get(WHOAMI, "authenticated") is False
    assert sock.get(WHOAMI, "username") == ""


async def test_other_socketio_events_and_namespaces_carry_no_identity(stack, sockets):
    """Packets the bridge relays unjudged (a non-`event` Socket.IO event, the default
    namespace) reach no handler that could run with a forged identity."""
    forged = forged_injections(stack)[-1]
    sock = await sockets()
    ev = event(f"{SHOP}.deactivate_all", extra_router={"isthmus": forged})
    await sock.send_raw("42/_event," + json.dumps(["ping", ev]))
    await sock.send_raw("42" + json.dumps(["event", ev]))  # namespace "/"
    before = httpx.get(f"{stack.gateways['main'].url}/api/shop/active/").json()["results"]
    seen = await whoami(sock)
    assert seen["authenticated"] is False
    after = httpx.get(f"{stack.gateways['main'].url}/api/shop/active/").json()["results"]
    assert len(after) == len(before) and len(after) >= 3


async def test_control_forged_injection_is_valid_without_the_gateway(stack):
    """Control for the tests above: sent straight to the Reflex backend (bypassing the
    gateway, which only loopback allows), the validly signed injection *is* accepted, so
    it is the gateway's stripping that keeps it from handlers."""
    from bridge_client import BridgeClient

    forged = forged_injections(stack)[-1]
    sock = await BridgeClient.connect(f"ws://127.0.0.1:{stack.reflex_port}")
    try:
        seen = await whoami(sock, extra_router={"isthmus": forged})
        assert seen["verified"] is True and seen["username"] == "admin"
    finally:
        await sock.close()


async def test_odd_and_duplicate_session_cookies_resolve_as_django_reads_them(stack, browser, sockets):
    """A second `sessionid` (tossed in by a sibling subdomain, or sent by hand) and the
    spellings Django's cookie parser forgives: the user the bridge resolves is, for each
    Cookie header, the one Django's own views see (here: the admin index, 200 for staff,
    302 to its login page for anyone else)."""
    staff = browser()
    staff.admin_login("staffer")
    key = staff.session_id
    gw = stack.gateways["main"]
    cases = [
        (f"sessionid={key}", True),
        (f"sessionid=junk; sessionid={key}", True),  # Django reads the last duplicate
        (f"sessionid={key}; sessionid=junk", False),
        (f"sessionid={key}; sessionid=", False),
        (f"sessionid ={key}", True),  # both sides are stripped
        (f"sessionid= {key};theme=dark", True),
        (f'sessionid="{key}"', True),  # quotes are removed
    ]
    for header, staff_expected in cases:
        r = httpx.get(f"{gw.url}/admin/", headers={"Cookie": header}, timeout=10)
        django_staff = r.status_code == 200
        assert r.status_code in (200, 302), (header, r.status_code)
        sock = await sockets(cookie=header)
        seen = await whoami(sock)
        assert django_staff is staff_expected, (header, r.status_code)
        assert (seen["username"] == "staffer") is staff_expected, (header, seen["username"])
