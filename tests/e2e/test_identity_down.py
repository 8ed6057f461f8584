"""The identity endpoint down: public events still work as anonymous, rules that need a
login refuse (default `on_identity_error = "anonymous"`), or everything is refused
(`"deny"`). Each case runs a second gateway whose Django upstream is a dead port, in
front of the same Reflex backend; the main gateway keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time

import httpx
import pytest

from bridge_client import SHOP, is_refusal, login_redirect
from stack import dead_port, tail, wait_until
from test_bridge_identity import whoami


@pytest.fixture(scope="module")
def down_gateway(stack):
    gw = stack.start_gateway("django-down", django_port=dead_port())
    yield gw
    stack.stop_gateway("django-down")


@pytest.fixture(scope="module")
def slow_port():
    """A loopback 'Django' that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    srv.close()


@pytest.fixture(scope="module")
def slow_gateway(stack, slow_port):
    gw = stack.start_gateway("django-slow", django_port=slow_port, bridge={"identity_timeout": "500ms"})
    yield gw
    stack.stop_gateway("django-slow")


async def test_slow_identity_endpoint_times_out_to_anonymous(stack, browser, sockets, slow_gateway):
    staff = browser()
    staff.admin_login("staffer")
    t = time.monotonic()
    sock = await sockets(staff, gateway="django-slow")
    seen = await whoami(sock)
    assert seen["authenticated"] is False and seen["verified"] is True
    updates = await sock.call(f"{SHOP}.deactivate_all")
    assert is_refusal(updates[-1]) and login_redirect(updates) == "/admin/login/?next=/"
    assert time.monotonic() - t < 10
    assert "identity unavailable" in slow_gateway.log()


@pytest.fixture(scope="module")
def down_deny_gateway(stack):
    # The bridge's own refusal of the CONNECT, so without the example's routers that need
    # the user (staff_reports, and the prefix router's page guards): a router that needs
    # the user makes the gateway resolve it before routing, and in deny mode a request
    # carrying a session cookie (the WebSocket's handshake too) is then answered 503
    # before it reaches the bridge (see the test below).
    def without_page_guards(config):
        for router in config["routing"]["routers"]:
            router.get("config", {}).pop("pages", None)

    gw = stack.start_gateway(
        "django-down-deny",
        django_port=dead_port(),
        bridge={"on_identity_error": "deny"},
        without_routers=("staff_reports.wasm",),
        edit=without_page_guards,
    )
    yield gw
    stack.stop_gateway("django-down-deny")


@pytest.fixture(scope="module")
def down_deny_guarded_gateway(stack):
    gw = stack.start_gateway("django-down-deny-guarded", django_port=dead_port(), bridge={"on_identity_error": "deny"})
    yield gw
    stack.stop_gateway("django-down-deny-guarded")


async def test_public_events_run_as_anonymous(stack, browser, sockets, down_gateway):
    staff = browser()
    staff.admin_login("staffer")  # through the main gateway: a real staff session
    sock = await sockets(staff, gateway="django-down", route="/")
    await sock.until_state(lambda: len(sock.get(SHOP, "products") or []) >= 1)
    assert sock.get(SHOP, "greeting") == "Hello, anonymous"
    seen = await whoami(sock)
    assert seen["authenticated"] is False and seen["verified"] is True


async def test_staff_action_refused(stack, browser, sockets, down_gateway):
    staff = browser()
    staff.admin_login("staffer")
    sock = await sockets(staff, gateway="django-down")
    t = time.monotonic()
    before = down_gateway.refusals(f"{SHOP}.deactivate_all")
    updates = await sock.call(f"{SHOP}.deactivate_all")
    assert is_refusal(updates[-1])
    assert login_redirect(updates) == "/admin/login/?next=/"
    assert down_gateway.refusals_settled(f"{SHOP}.deactivate_all", before + 1) == before + 1
    assert time.monotonic() - t < 5  # a refused connection is answered fast
    log = down_gateway.proc.log.read_text(errors="replace")
    assert "identity unavailable" in log


async def test_django_http_answers_a_generic_502(stack, down_gateway):
    """The client learns the status and the request id; what failed (the upstream's name,
    the system's error text) is in the gateway's log under that id."""
    r = httpx.get(f"{down_gateway.url}/api/shop/active/", timeout=10)
    assert r.status_code == 502
    request_id = r.headers["x-request-id"]
    assert r.text == f"502 Bad Gateway\nrequest id: {request_id}\n"
    def logged() -> str:
        lines = down_gateway.proc.log.read_text(errors="replace").splitlines()
        return next((ln for ln in lines if request_id in ln and "request failed" in ln), "")

    # The gateway writes its log from a thread of its own: the line may trail the answer.
    wait_until("the failure's log line", lambda: bool(logged()), timeout=5)
    assert "upstream `django` is unreachable" in logged(), logged()
    assert httpx.get(f"{down_gateway.url}/ping", timeout=10).text.strip('"') == "pong"


async def test_deny_mode_refuses_every_event(stack, browser, sockets, down_deny_gateway):
    staff = browser()
    staff.admin_login("staffer")
    # The CONNECT itself needs the identity: refused with a Socket.IO CONNECT_ERROR.
    with pytest.raises(ConnectionRefusedError, match="identity unavailable"):
        await sockets(staff, gateway="django-down-deny")


async def test_deny_mode_with_a_router_that_needs_the_user(stack, browser, down_deny_guarded_gateway):
    """The staff_reports router needs the user: in deny mode, with Django unreachable, a
    session cookie gets 503 (never the guarded page); without one there is nobody to
    look up, and the visitor is sent to log in as usual."""
    staff = browser()
    staff.admin_login("staffer")  # through the main gateway: a real staff session
    gw = down_deny_guarded_gateway
    r = httpx.get(f"{gw.url}/reports/stock/", cookies={"sessionid": staff.session_id}, timeout=10)
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.text == f"503 Service Unavailable\nrequest id: {r.headers['x-request-id']}\n"
    assert r.headers["retry-after"] == "2"
    r = httpx.get(f"{gw.url}/reports/stock/", timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/admin/login/?next=/reports/stock/"
    assert httpx.get(f"{gw.url}/ping", timeout=10).text.strip('"') == "pong"


async def test_main_gateway_unaffected(stack, browser, sockets):
    b = browser()
    b.admin_login("staffer")
    sock = await sockets(b)
    assert (await whoami(sock))["username"] == "staffer"


async def test_django_hangs_then_recovers(stack, browser, sockets):
    """Django stops answering under the main gateway (SIGSTOP): an open socket keeps
    serving public events as anonymous once the cached identity expires, the staff
    action is refused; once Django answers again the user is recognised again."""
    b = browser()
    b.admin_login("staffer")
    sock = await sockets(b)
    assert (await whoami(sock))["username"] == "staffer"
    django = stack.child_pid("django")
    os.killpg(django, signal.SIGSTOP)
    try:
        await asyncio.sleep(2.5)  # identity_ttl = 2s
        seen = await whoami(sock)
        assert seen["authenticated"] is False
        updates = await sock.call(f"{SHOP}.deactivate_all")
        assert is_refusal(updates[-1])
    finally:
        os.killpg(django, signal.SIGCONT)
    await asyncio.sleep(2.5)
    assert (await whoami(sock))["username"] == "staffer"


async def test_django_crash_is_restarted_by_isthmus_run(stack, browser, sockets):
    """Django dies (SIGKILL to its process group): `isthmus run` logs it, answers 503
    with Retry-After while it restarts it, and the session is recognised again."""
    b = browser()
    b.admin_login("staffer")
    sock = await sockets(b)
    assert (await whoami(sock))["username"] == "staffer"
    gw = stack.gateways["main"]
    old = stack.child_pid("django")
    restarts = gw.log().count("restarted upstream=django")
    os.killpg(old, signal.SIGKILL)
    statuses = []
    deadline = time.monotonic() + 90
    while True:
        r = httpx.get(f"{gw.url}/api/shop/active/", timeout=10)
        statuses.append(r.status_code)
        if r.status_code == 200 and gw.log().count("restarted upstream=django") > restarts:
            break
        if r.status_code == 503:
            assert r.headers["retry-after"] == "2", r.headers
        assert r.status_code in (200, 502, 503), (r.status_code, r.text)
        assert time.monotonic() < deadline, (statuses[-20:], tail(gw.proc.log))
        await asyncio.sleep(0.1)
    assert 503 in statuses, statuses
    assert stack.child_pid("django") != old
    assert "upstream=django" in gw.log() and "exited (signal: 9" in gw.log()
    await asyncio.sleep(2.5)
    assert (await whoami(sock))["username"] == "staffer"
