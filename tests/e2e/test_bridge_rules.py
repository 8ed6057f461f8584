"""Each rule kind of the django-bridge policy (examples/shop/isthmus.toml) allows and
denies, judged by the gateway before the event reaches Reflex; and the handler
decorators as the second line behind it."""

from __future__ import annotations

import httpx
import pytest

from bridge_client import SHOP, WHOAMI, console_errors, is_refusal, login_redirect, var


def active_count(stack) -> int:
    r = httpx.get(f"{stack.gateways['main'].url}/api/shop/active/", timeout=10)
    r.raise_for_status()
    return len(r.json()["results"])


async def socket_for(sockets, browser, username: str | None, *, gateway: str = "main", **kw):
    b = browser(kw.pop("base_url", None))
    if username == "admin" or username == "staffer":
        b.admin_login(username)
    elif username:
        b.login(username)
    return await sockets(b if username else None, gateway=gateway, **kw)


def assert_login_redirect(updates, next_path: str = "/"):
    assert is_refusal(updates[-1]), updates
    assert login_redirect(updates) == f"/admin/login/?next={next_path}", updates


def assert_forbidden(updates, requirement: str):
    assert is_refusal(updates[-1]), updates
    errors = console_errors(updates)
    assert errors and f"forbidden:{requirement}" in errors[0], updates


# -- staff -------------------------------------------------------------------------------
async def test_staff_rule_anonymous_is_sent_to_login(stack, browser, sockets):
    before = active_count(stack)
    sock = await socket_for(sockets, browser, None, route="/")
    updates = await sock.call(f"{SHOP}.deactivate_all", route="/", query={"tab": "all"})
    assert_login_redirect(updates, "/")
    assert active_count(stack) == before  # nothing ran


async def test_staff_rule_plain_user_is_forbidden(stack, browser, sockets):
    before = active_count(stack)
    sock = await socket_for(sockets, browser, "plain")
    updates = await sock.call(f"{SHOP}.deactivate_all")
    assert_forbidden(updates, "staff")
    assert active_count(stack) == before
    assert sock.get(SHOP, "message", "") == ""


async def test_staff_rule_staff_user_changes_the_database(stack, browser, sockets):
    assert active_count(stack) >= 3
    sock = await socket_for(sockets, browser, "staffer", route="/")
    try:
        updates = await sock.call(f"{SHOP}.deactivate_all")
        assert not is_refusal(updates[-1])
        assert "deactivated by staffer" in sock.get(SHOP, "message")
        assert sock.get(SHOP, "products") == []
        assert active_count(stack) == 0
    finally:
        updates = await sock.call(f"{SHOP}.restock")
    assert "restocked by staffer" in sock.get(SHOP, "message")
    assert active_count(stack) >= 3
    assert len(sock.get(SHOP, "products")) == active_count(stack)


async def test_superuser_without_staff_flag_is_not_staff(stack, browser, sockets):
    """The admin is a superuser *and* staff: allowed. (A superuser is staff only with
    is_staff set, as with Django's staff_member_required.)"""
    sock = await socket_for(sockets, browser, "admin")
    updates = await sock.call(f"{SHOP}.restock")
    assert not is_refusal(updates[-1])
    assert "restocked by admin" in sock.get(SHOP, "message")


# -- group:clerks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "outcome"),
    [(None, "login"), ("plain", "forbidden"), ("admin", "forbidden"), ("clerk", "ran")],
)
async def test_group_rule(stack, browser, sockets, username, outcome):
    sock = await socket_for(sockets, browser, username)
    updates = await sock.call(f"{WHOAMI}.clerk_action")
    if outcome == "login":
        assert_login_redirect(updates)
    elif outcome == "forbidden":
        # A superuser is not a member of every group (Django's semantics).
        assert_forbidden(updates, "group:clerks")
    else:
        assert sock.get(WHOAMI, "last_action") == "clerk_action by clerk"


# -- perm:shop.change_product ------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "outcome"),
    [(None, "login"), ("plain", "forbidden"), ("clerk", "forbidden"), ("buyer", "ran"), ("admin", "ran")],
)
async def test_perm_rule(stack, browser, sockets, username, outcome):
    sock = await socket_for(sockets, browser, username)
    updates = await sock.call(f"{WHOAMI}.perm_action")
    if outcome == "login":
        assert_login_redirect(updates)
    elif outcome == "forbidden":
        assert_forbidden(updates, "perm:shop.change_product")
    else:
        # Superusers hold every permission (Django's has_perm), so admin passes too.
        assert sock.get(WHOAMI, "last_action") == f"perm_action by {username}"


# -- authenticated -----------------------------------------------------------------------
@pytest.mark.parametrize(("username", "outcome"), [(None, "login"), ("plain", "ran")])
async def test_authenticated_rule(stack, browser, sockets, username, outcome):
    sock = await socket_for(sockets, browser, username)
    updates = await sock.call(f"{WHOAMI}.members_action", route="/whoami", query={"x": "1"})
    if outcome == "login":
        assert_login_redirect(updates, "/whoami")
    else:
        assert sock.get(WHOAMI, "last_action") == "members_action by plain"


# -- any / default -----------------------------------------------------------------------
async def test_any_and_default_rules(stack, browser, sockets):
    sock = await socket_for(sockets, browser, None)
    await sock.call(f"{WHOAMI}.whoami")
    assert sock.get(WHOAMI, "rule") == "2"  # rules[2]: whoami → any
    # ShopState.load is in no rule: `default = "any"` lets everyone run it.
    updates = await sock.call(f"{SHOP}.load")
    assert not is_refusal(updates[-1])
    assert sock.get(SHOP, "greeting") == "Hello, anonymous"


# -- the decorators behind the gateway ---------------------------------------------------
@pytest.fixture(scope="module")
def open_gateway(stack):
    """A second gateway whose policy lets every event through: only the handlers'
    decorators (@staff_required, @group_required, …) stand in the way."""
    gw = stack.start_gateway("open", bridge={"policy": {"plugin": "django_bridge.wasm", "config": {"default": "any"}}})
    yield gw
    stack.stop_gateway("open")


async def test_decorators_refuse_what_the_gateway_lets_through(stack, browser, sockets, open_gateway):
    before = active_count(stack)
    sock = await socket_for(sockets, browser, "plain", gateway="open", base_url=open_gateway.url)
    updates = await sock.call(f"{SHOP}.deactivate_all")
    # Reached Reflex (no gateway refusal), refused there by @staff_required with a
    # full-page navigation to the login page.
    assert not is_refusal(updates[-1])
    assert login_redirect(updates) == "/admin/login/?next=/", updates
    assert active_count(stack) == before

    updates = await sock.call(f"{WHOAMI}.clerk_action")
    assert login_redirect(updates) == "/admin/login/?next=/"
    assert sock.get(WHOAMI, "last_action", "") == ""


async def test_decorators_allow_the_right_user(stack, browser, sockets, open_gateway):
    sock = await socket_for(sockets, browser, "clerk", gateway="open", base_url=open_gateway.url)
    await sock.call(f"{WHOAMI}.clerk_action")
    assert sock.get(WHOAMI, "last_action") == "clerk_action by clerk"
    assert sock.get(WHOAMI, "rule", "") == ""  # whoami not called; rule var untouched
    await sock.call(f"{WHOAMI}.whoami")
    assert sock.get(WHOAMI, "rule") == "default"  # the open gateway has no rules


async def test_direct_to_reflex_without_gateway_is_anonymous(stack, browser):
    """An event that does not come through the gateway carries no valid signed identity:
    handlers see anonymous and the staff action is refused by the decorator."""
    from bridge_client import BridgeClient

    b = browser()
    b.admin_login("staffer")
    sock = await BridgeClient.connect(f"ws://127.0.0.1:{stack.reflex_port}", cookie=b.cookie_header())
    try:
        await sock.call(f"{WHOAMI}.whoami")
        assert sock.get(WHOAMI, "authenticated") is False
        assert sock.get(WHOAMI, "verified") is False
        before = active_count(stack)
        updates = await sock.call(f"{SHOP}.deactivate_all")
        assert login_redirect(updates) == "/admin/login/?next=/"
        assert active_count(stack) == before
    finally:
        await sock.close()
