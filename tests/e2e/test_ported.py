"""The port of reflex-django's tutorial app (examples/ported/: "Tutorial: your first app",
a todo list where signed-in users see only their rows, plus its cookbook's account page)
running for real: `isthmus run` starting its Django (uvicorn) and Reflex backend, in a
temporary folder of its own, driven as the tutorial's "Run" section says: visit `/`
without logging in, sign in at `/admin/`, return to `/`, add a todo and tick it off.

This module's `stack` is the ported app's, so conftest's `browser` and `sockets` talk
to its gateway; the shop's stack is not started for it.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from bridge_client import ROOT, login_redirect
from stack import PASSWORD, PORTED, running_stack
from test_bridge_rules import assert_login_redirect, call
from test_user_state import user

TODO = f"{ROOT}.shop___views____todo_state"


@pytest.fixture(scope="module")
def stack():
    def prepare(s) -> None:
        s.manage("migrate", "--noinput", "-v0")
        s.manage("collectstatic", "--noinput", "-v0")
        # The tutorial's `createsuperuser`, for two people whose lists stay apart.
        for name in ("alice", "bob"):
            s.manage(
                "createsuperuser", "--noinput", "--username", name, "--email", f"{name}@example.org",
                DJANGO_SUPERUSER_PASSWORD=PASSWORD,
            )  # fmt: skip

    with running_stack(PORTED, prepare) as s:
        yield s


def todos_in_db(stack, username: str) -> list[tuple[str, bool]]:
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        rows = db.execute(
            "SELECT t.title, t.done FROM shop_todo t JOIN auth_user u ON u.id = t.owner_id"
            " WHERE u.username = ? ORDER BY t.id",
            (username,),
        ).fetchall()
    return [(title, bool(done)) for title, done in rows]


def titles(sock) -> list[str]:
    return [t["title"] for t in sock.get(TODO, "todos", [])]


async def add(sock, title: str) -> None:
    """Type `title` into the input and press Add, as the page does."""
    await sock.call(f"{TODO}.set_new_title", {"value": title})
    await sock.call(f"{TODO}.add_todo", {})
    await sock.until_state(lambda: title in titles(sock))
    assert sock.get(TODO, "new_title") == "" and sock.get(TODO, "error", "") == ""


async def signed_in(browser, sockets, username: str, route: str = "/"):
    b = browser()
    b.admin_login(username)  # "Open /admin/, sign in."
    sock = await sockets(b, route=route)
    await sock.until_state(lambda: user(sock, "username") == username)
    return sock


def test_one_origin_for_django_and_the_spa(stack):
    """What reflex-django's mount and proxy did, done by the gateway's prefix router."""
    base = stack.gateways["main"].url
    admin = httpx.get(f"{base}/admin/login/", timeout=10)
    assert admin.status_code == 200 and "csrfmiddlewaretoken" in admin.text
    assert httpx.get(f"{base}/static/admin/css/base.css", timeout=10).status_code == 200
    assert httpx.get(f"{base}/ping", timeout=10).text.strip('"') == "pong"  # Reflex's own
    page = httpx.get(f"{base}/", timeout=10)  # a Reflex page: the SPA's index.html
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # The router's Django prefixes are still what config/urls.py has ([django] in isthmus.toml).
    check = stack.check(stack.gateways["main"].config_path)
    assert check.returncode == 0, check.stderr


async def test_anonymous_visitor_gets_the_login_prompt(stack, sockets):
    sock = await sockets(route="/")
    await sock.until_state(lambda: user(sock, "is_authenticated") is False)
    assert sock.get(TODO, "todos") in (None, [])
    await sock.call(f"{TODO}.set_new_title", {"value": "Sneak in"})
    await sock.call(f"{TODO}.add_todo", {})
    await sock.until_state(lambda: sock.get(TODO, "error") == "Please log in at /admin/ first.")
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        assert db.execute("SELECT COUNT(*) FROM shop_todo WHERE title = 'Sneak in'").fetchone() == (0,)


async def test_signed_in_users_see_and_change_only_their_own_rows(stack, browser, sockets):
    alice = await signed_in(browser, sockets, "alice")
    await add(alice, "Buy milk")
    await add(alice, "Write the port")
    assert titles(alice) == ["Write the port", "Buy milk"]  # newest first (Meta.ordering)
    milk = next(t for t in alice.get(TODO, "todos") if t["title"] == "Buy milk")
    await alice.call(f"{TODO}.toggle", {"todo_id": milk["id"]})
    await alice.until_state(lambda: any(t["title"] == "Buy milk" and t["done"] for t in alice.get(TODO, "todos")))
    assert todos_in_db(stack, "alice") == [("Buy milk", True), ("Write the port", False)]
    empty = await alice.call(f"{TODO}.add_todo", {})
    assert alice.get(TODO, "error") == "Type something first.", empty

    bob = await signed_in(browser, sockets, "bob")
    assert bob.get(TODO, "todos", []) == []  # on_load ran as bob: none of alice's rows
    await add(bob, "Bob's own")
    assert titles(bob) == ["Bob's own"]
    # Bob sends the id of one of alice's rows: the handler looks it up among his own
    # (owner_id=django_user.pk), finds nothing, and changes nothing.
    await call(stack, bob, f"{TODO}.toggle", refused=False, payload={"todo_id": milk["id"]})
    assert todos_in_db(stack, "alice") == [("Buy milk", True), ("Write the port", False)]
    assert todos_in_db(stack, "bob") == [("Bob's own", False)]


@pytest.fixture(scope="module")
def open_gateway(stack):
    """A second gateway whose bridge policy lets every event through: only the handler's
    @login_required stands in the way."""
    policy = {"plugin": "builtin:django-bridge", "config": {"login_url": "/admin/login/", "default": "any"}}
    gw = stack.start_gateway("open", bridge={"policy": policy})
    yield gw
    stack.stop_gateway("open")


async def test_ticking_off_needs_a_login_at_the_gateway_and_in_the_handler(stack, sockets, open_gateway):
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        todo_id, done = db.execute("SELECT id, done FROM shop_todo ORDER BY id LIMIT 1").fetchone()
    # isthmus.toml's rule: refused by the gateway, Reflex never sees the event.
    anonymous = await sockets(route="/")
    assert_login_redirect(await call(stack, anonymous, f"{TODO}.toggle", refused=True, payload={"todo_id": todo_id}))
    # Without the rule, the handler's @login_required refuses it in the Reflex process.
    behind_open = await sockets(route="/", gateway="open")
    toggle = {"todo_id": todo_id}
    assert_login_redirect(await call(stack, behind_open, f"{TODO}.toggle", gateway="open", refused=False, payload=toggle))
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        assert db.execute("SELECT done FROM shop_todo WHERE id = ?", (todo_id,)).fetchone() == (done,)


async def test_account_page_sends_anonymous_visitors_to_log_in(stack, browser, sockets):
    # The cookbook's `@page(..., login_required=True)`: the gateway's page guard answers
    # the first load, before any of the SPA ...
    first_load = httpx.get(f"{stack.gateways['main'].url}/account", timeout=10)
    assert first_load.status_code == 302, first_load.text[:300]
    assert first_load.headers["location"] == "/admin/login/?next=/account"
    b = browser()
    b.admin_login("alice")
    assert b.http.get("/account").status_code == 200
    # ... and guard_pages the page's events (client-side navigation), hydrate included.
    anonymous = await sockets(route="/account")
    await anonymous.until_state(lambda: login_redirect(anonymous.all_updates) is not None)
    assert_login_redirect(anonymous.all_updates, "/account")

    alice = await signed_in(browser, sockets, "alice", route="/account")
    assert user(alice, "username") == "alice"
    assert login_redirect(alice.all_updates) is None, alice.all_updates
