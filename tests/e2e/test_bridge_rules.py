"""Each rule kind of the django-bridge policy (examples/shop/isthmus.toml) allows and
denies, judged by the gateway before the event reaches Reflex; and the handler
decorators as the second line behind it."""

from __future__ import annotations

import tomllib

import httpx
import pytest

from bridge_client import SHOP, WHOAMI, console_errors, is_refusal, login_redirect


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


async def call(stack, sock, name: str, *, gateway: str = "main", refused: bool, **kw):
    """Emit `name`; check whether the gateway refused it (its log says so: a gateway
    refusal and a handler decorator's look alike on the wire)."""
    gw = stack.gateways[gateway]
    before = gw.refusals(name)
    updates = await sock.call(name, **kw)
    expected = before + (1 if refused else 0)
    assert gw.refusals_settled(name, expected) == expected, (name, refused, updates)
    if refused:
        assert is_refusal(updates[-1]), updates
    return updates


def assert_login_redirect(updates, next_path: str = "/"):
    assert login_redirect(updates) == f"/admin/login/?next={next_path}", updates


def assert_forbidden(updates, requirement: str):
    errors = console_errors(updates)
    assert errors and f"isthmus: event refused (forbidden:{requirement})" in errors[0], updates


# -- staff -------------------------------------------------------------------------------
async def test_staff_rule_anonymous_is_sent_to_login(stack, browser, sockets):
    before = active_count(stack)
    sock = await socket_for(sockets, browser, None, route="/")
    updates = await call(stack, sock, f"{SHOP}.deactivate_all", refused=True, route="/", query={"tab": "all"})
    assert_login_redirect(updates, "/?tab=all")  # back to the page, query included
    assert active_count(stack) == before  # nothing ran


async def test_staff_rule_plain_user_is_sent_to_login(stack, browser, sockets):
    """As Django's staff_member_required: a logged-in user who is not staff goes to the
    login page (where Django's admin says who is logged in and not authorized)."""
    before = active_count(stack)
    sock = await socket_for(sockets, browser, "plain")
    updates = await call(stack, sock, f"{SHOP}.deactivate_all", refused=True)
    assert_login_redirect(updates)
    assert active_count(stack) == before
    assert sock.get(SHOP, "message", "") == ""


async def test_staff_rule_staff_user_changes_the_database(stack, browser, sockets):
    assert active_count(stack) >= 3
    sock = await socket_for(sockets, browser, "staffer", route="/")
    try:
        await call(stack, sock, f"{SHOP}.deactivate_all", refused=False)
        assert "deactivated by staffer" in sock.get(SHOP, "message")
        assert sock.get(SHOP, "products") == []
        assert active_count(stack) == 0
    finally:
        await call(stack, sock, f"{SHOP}.restock", refused=False)
    assert "restocked by staffer" in sock.get(SHOP, "message")
    assert active_count(stack) >= 3
    assert len(sock.get(SHOP, "products")) == active_count(stack)


async def test_staff_rule_superuser_with_staff_flag(stack, browser, sockets):
    sock = await socket_for(sockets, browser, "admin")
    await call(stack, sock, f"{SHOP}.restock", refused=False)
    assert "restocked by admin" in sock.get(SHOP, "message")


# -- group:clerks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "outcome"),
    # A superuser is not a member of every group (Django's semantics).
    [(None, "login"), ("plain", "login"), ("admin", "login"), ("clerk", "ran")],
)
async def test_group_rule(stack, browser, sockets, username, outcome):
    sock = await socket_for(sockets, browser, username)
    updates = await call(stack, sock, f"{WHOAMI}.clerk_action", refused=outcome != "ran")
    if outcome == "login":
        assert_login_redirect(updates)
    else:
        assert sock.get(WHOAMI, "last_action") == "clerk_action by clerk"


# -- perm:shop.change_product ------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "outcome"),
    [(None, "login"), ("plain", "login"), ("clerk", "login"), ("buyer", "ran"), ("admin", "ran")],
)
async def test_perm_rule(stack, browser, sockets, username, outcome):
    sock = await socket_for(sockets, browser, username)
    updates = await call(stack, sock, f"{WHOAMI}.perm_action", refused=outcome != "ran")
    if outcome == "login":
        assert_login_redirect(updates)
    else:
        # Superusers hold every permission (Django's has_perm), so admin passes too.
        assert sock.get(WHOAMI, "last_action") == f"perm_action by {username}"


# -- raise_exception: logged-in users told which requirement failed ------------------------
@pytest.fixture(scope="module")
def raising_gateway(stack):
    """The example's rules with `raise_exception = true` (Django's PermissionDenied)."""
    with open(stack.app / "isthmus.toml", "rb") as f:
        policy = tomllib.load(f)["bridge"]["policy"]
    policy["config"]["raise_exception"] = True
    gw = stack.start_gateway("raising", bridge={"policy": policy})
    yield gw
    stack.stop_gateway("raising")


@pytest.mark.parametrize(
    ("username", "event", "requirement"),
    [
        ("plain", f"{SHOP}.deactivate_all", "staff"),
        ("admin", f"{WHOAMI}.clerk_action", "group:clerks"),
        ("clerk", f"{WHOAMI}.perm_action", "perm:shop.change_product"),
    ],
)
async def test_raise_exception_answers_forbidden(stack, browser, sockets, raising_gateway, username, event, requirement):
    before = active_count(stack)
    sock = await socket_for(sockets, browser, username, gateway="raising", base_url=raising_gateway.url)
    updates = await call(stack, sock, event, gateway="raising", refused=True)
    assert_forbidden(updates, requirement)
    assert login_redirect(updates) is None, updates
    assert active_count(stack) == before
    # Anonymous users are still sent to log in.
    anon = await socket_for(sockets, browser, None, gateway="raising")
    assert_login_redirect(await call(stack, anon, event, gateway="raising", refused=True))


# -- authenticated -----------------------------------------------------------------------
@pytest.mark.parametrize(("username", "outcome"), [(None, "login"), ("plain", "ran")])
async def test_authenticated_rule(stack, browser, sockets, username, outcome):
    sock = await socket_for(sockets, browser, username)
    updates = await call(stack, sock, f"{WHOAMI}.members_action", refused=outcome != "ran", route="/whoami", query={"x": "1"})
    if outcome == "login":
        assert_login_redirect(updates, "/whoami?x=1")
    else:
        assert sock.get(WHOAMI, "last_action") == "members_action by plain"


# -- any / default -----------------------------------------------------------------------
async def test_any_and_default_rules(stack, browser, sockets):
    sock = await socket_for(sockets, browser, None)
    await call(stack, sock, f"{WHOAMI}.whoami", refused=False)
    assert sock.get(WHOAMI, "rule") == "2"  # rules[2]: whoami → any
    # ShopState.load is in no rule: `default = "any"` lets everyone run it.
    await call(stack, sock, f"{SHOP}.load", refused=False)
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
    updates = await call(stack, sock, f"{SHOP}.deactivate_all", gateway="open", refused=False)
    # Reached Reflex (no gateway refusal), refused there by @staff_required with a
    # full-page navigation to the login page.
    assert login_redirect(updates) == "/admin/login/?next=/", updates
    assert active_count(stack) == before

    updates = await call(stack, sock, f"{WHOAMI}.clerk_action", gateway="open", refused=False)
    assert login_redirect(updates) == "/admin/login/?next=/"
    assert sock.get(WHOAMI, "last_action", "") == ""


async def test_decorators_allow_the_right_user(stack, browser, sockets, open_gateway):
    sock = await socket_for(sockets, browser, "clerk", gateway="open", base_url=open_gateway.url)
    await call(stack, sock, f"{WHOAMI}.clerk_action", gateway="open", refused=False)
    assert sock.get(WHOAMI, "last_action") == "clerk_action by clerk"
    await call(stack, sock, f"{WHOAMI}.whoami", gateway="open", refused=False)
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


# -- on_connect ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def members_gateway(stack):
    """A gateway whose policy wants a login for the WebSocket itself (`on_connect`)."""
    config = {"on_connect": "authenticated", "default": "any"}
    gw = stack.start_gateway("members", bridge={"policy": {"plugin": "django_bridge.wasm", "config": config}})
    yield gw
    stack.stop_gateway("members")


async def test_on_connect_rule(stack, browser, sockets, members_gateway):
    # Anonymous: the Socket.IO CONNECT is refused (CONNECT_ERROR with the reason).
    with pytest.raises(ConnectionRefusedError, match="login_required:/admin/login/"):
        await sockets(gateway="members")
    sock = await socket_for(sockets, browser, "plain", gateway="members", base_url=members_gateway.url)
    await call(stack, sock, f"{WHOAMI}.whoami", gateway="members", refused=False)
    assert sock.get(WHOAMI, "username") == "plain"
    assert sock.get(WHOAMI, "rule") == "default"
