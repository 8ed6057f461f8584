"""The handler guards on plain objects: every handler kind, refusal targets, options."""

import asyncio
import inspect
import json
import logging
from types import SimpleNamespace

import pytest

pytest.importorskip("reflex")

from isthmus_reflex import (
    decorators,
    group_required,
    login_required,
    make_injection,
    permission_required,
    staff_required,
    superuser_required,
)
from tests.conftest import BRIDGE_SECRET

USER = {
    "authenticated": True,
    "user_id": "4",
    "username": "dana",
    "email": "",
    "is_staff": False,
    "is_superuser": False,
    "groups": ["editors"],
    "permissions": ["shop.add_product", "shop.change_product"],
    "session": {},
}
ANON = {**USER, "authenticated": False, "user_id": None, "username": "", "groups": [], "permissions": []}


def state(ident, as_path="/orders?tab=open&x=%2F"):
    data = {"pathname": "/orders", "asPath": as_path}
    if ident is not None:
        data["isthmus"] = make_injection(ident, BRIDGE_SECRET)
    return SimpleNamespace(router_data=data, calls=[])


def target(spec):
    args = {str(k): getattr(v, "_var_value", None) for k, v in spec.args}
    if spec.handler.fn.__qualname__ == "_redirect":
        return "spa", args["path"]
    code = args["javascript_code"]
    return "document", json.loads(code[len("window.location.assign(") : -1])


def run(result):
    async def drain(r):
        if inspect.isawaitable(r):
            return await r
        if inspect.isasyncgen(r):
            return [x async for x in r]
        return r

    if inspect.isgenerator(result):
        out = []
        try:
            while True:
                out.append(next(result))
        except StopIteration as stop:
            return out, stop.value
    return asyncio.run(drain(result))


# --- the four kinds of handler --------------------------------------------------------------


def make_handlers(guard):
    @guard
    def plain(self, n=1):
        self.calls.append(("plain", n))
        return "plain-result"

    @guard
    async def coro(self, n=1):
        self.calls.append(("coro", n))
        return "coro-result"

    @guard
    def gen(self, n=1):
        self.calls.append(("gen", n))
        yield "g1"
        yield "g2"
        return "gen-return"

    @guard
    async def agen(self, n=1):
        self.calls.append(("agen", n))
        yield "a1"
        yield "a2"

    return plain, coro, gen, agen


@pytest.mark.parametrize("guard", [login_required, login_required()])
def test_kinds_allowed(guard):
    plain, coro, gen, agen = make_handlers(guard)
    s = state(USER)
    assert run(plain(s, n=2)) == "plain-result"
    assert run(coro(s, 3)) == "coro-result"
    assert run(gen(s)) == (["g1", "g2"], "gen-return")
    assert run(agen(s)) == ["a1", "a2"]
    assert s.calls == [("plain", 2), ("coro", 3), ("gen", 1), ("agen", 1)]


@pytest.mark.parametrize("guard", [login_required, login_required()])
def test_kinds_refused(guard):
    plain, coro, gen, agen = make_handlers(guard)
    s = state(ANON)
    expected = ("document", "/accounts/login/?next=/orders%3Ftab%3Dopen%26x%3D%252F")
    assert target(run(plain(s))) == expected
    assert target(run(coro(s))) == expected
    events, returned = run(gen(s))
    assert [target(e) for e in events] == [expected]
    assert returned is None
    assert [target(e) for e in run(agen(s))] == [expected]
    assert s.calls == []


def test_wrappers_keep_identity_and_kind():
    plain, coro, gen, agen = make_handlers(permission_required("shop.add_product"))
    assert [f.__name__ for f in (plain, coro, gen, agen)] == ["plain", "coro", "gen", "agen"]
    assert inspect.iscoroutinefunction(coro)
    assert not inspect.iscoroutinefunction(plain)
    assert inspect.isgeneratorfunction(gen)
    assert inspect.isasyncgenfunction(agen)
    assert list(inspect.signature(plain).parameters) == ["self", "n"]
    assert plain.__wrapped__.__name__ == "plain"


def test_markers_set_before_the_guard_survive():
    def handler(self):
        return None

    handler._reflex_background_task = True
    assert login_required(handler)._reflex_background_task is True


# --- which user passes which guard ------------------------------------------------------------


CASES = [
    (login_required, USER, True),
    (login_required, ANON, False),
    (permission_required("shop.add_product"), USER, True),
    (permission_required(["shop.add_product", "shop.change_product"]), USER, True),
    (permission_required(("shop.add_product", "shop.delete_product")), USER, False),
    (permission_required("shop.delete_product"), {**USER, "is_superuser": True}, True),
    (permission_required("shop.add_product"), ANON, False),
    (group_required("editors"), USER, True),
    (group_required(["admins", "editors"]), USER, True),
    (group_required("admins"), USER, False),
    (group_required("admins"), {**USER, "is_superuser": True}, False),
    (group_required("editors"), {**ANON, "groups": ["editors"]}, False),
    (staff_required, USER, False),
    (staff_required, {**USER, "is_staff": True}, True),
    (staff_required(), {**ANON, "is_staff": True}, False),
    (superuser_required, {**USER, "is_staff": True}, False),
    (superuser_required, {**USER, "is_superuser": True}, True),
    (superuser_required(), ANON, False),
    (login_required, None, False),
]


@pytest.mark.parametrize(("guard", "ident", "allowed"), CASES)
def test_decisions(guard, ident, allowed):
    @guard
    def handler(self):
        return "ran"

    result = handler(state(ident))
    assert (result == "ran") is allowed


def test_unsigned_identity_never_passes():
    s = state(None)
    s.router_data["isthmus"] = {"payload": json.dumps({"v": 1, "iat": 0, "identity": USER}), "sig": "0" * 64}

    @superuser_required
    def handler(self):
        return "ran"

    assert handler(s) != "ran"


# --- refusal targets and options --------------------------------------------------------------


def test_logged_in_user_goes_to_redirect_anonymous_to_login():
    @permission_required("shop.delete_product", redirect="/denied", login_url="/login/")
    def handler(self):
        return "ran"

    assert target(handler(state(USER))) == ("document", "/denied")
    assert target(handler(state(ANON, as_path="/a"))) == ("document", "/login/?next=/a")


def test_login_url_with_query_uses_ampersand():
    @login_required(login_url="/login/?source=app")
    def handler(self):
        return "ran"

    assert target(handler(state(ANON, as_path="/p"))) == ("document", "/login/?source=app&next=/p")


def test_login_url_from_settings_and_url_names(settings):
    @login_required
    def handler(self):
        return "ran"

    settings.LOGIN_URL = "/custom/login/"
    assert target(handler(state(ANON, as_path="/")))[1] == "/custom/login/?next=/"
    settings.LOGIN_URL = "admin:login"
    assert target(handler(state(ANON, as_path="/")))[1] == "/admin/login/?next=/"


def test_login_url_fallback_without_django(monkeypatch):
    monkeypatch.setattr(decorators, "_django_setting", lambda name, default: default)
    assert decorators.resolve_login_url() == "/admin/login/"
    assert decorators.resolve_login_url("/x/") == "/x/"


@pytest.mark.parametrize(
    ("as_path", "next_value"),
    [
        ("/", "/"),
        ("/a b/ü", "/a%20b/%C3%BC"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("", "/"),
    ],
)
def test_next_is_a_quoted_local_path(as_path, next_value):
    @login_required
    def handler(self):
        return "ran"

    s = state(ANON, as_path=as_path)
    if not as_path:
        del s.router_data["asPath"]
        s.router_data["pathname"] = ""
    assert target(handler(s))[1] == f"/accounts/login/?next={next_value}"


def test_spa_navigation(settings):
    @login_required(full_page=False)
    def spa(self):
        return "ran"

    @login_required
    def default(self):
        return "ran"

    assert target(spa(state(ANON, as_path="/p")))[0] == "spa"
    assert target(default(state(ANON, as_path="/p")))[0] == "document"
    settings.ISTHMUS_FULL_PAGE_REDIRECT = False
    assert target(default(state(ANON, as_path="/p"))) == ("spa", "/accounts/login/?next=/p")


def test_on_denied_sync_and_async():
    seen = []

    def denied(s):
        seen.append(s)
        return "denied-event"

    async def adenied(s):
        return "async-denied-event"

    @staff_required(on_denied=denied)
    def handler(self):
        return "ran"

    @staff_required(on_denied=adenied)
    async def ahandler(self):
        return "ran"

    s = state(USER)
    assert handler(s) == "denied-event"
    assert seen == [s]
    assert asyncio.run(ahandler(s)) == "async-denied-event"


def test_refusal_logs_a_debug_line(caplog):
    caplog.set_level(logging.DEBUG, logger="isthmus_reflex")

    @group_required("admins")
    def handler(self):
        return "ran"

    handler(state(USER))
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("group_required" in line and "user 4 (dana)" in line for line in lines)


@pytest.mark.parametrize("bad", ["", [], [""], [1], None])
def test_bad_arguments(bad):
    with pytest.raises(TypeError):
        permission_required(bad)
    with pytest.raises(TypeError):
        group_required(bad)


def test_stacked_guards():
    @login_required
    @permission_required("shop.add_product")
    def handler(self):
        return "ran"

    assert handler(state(USER)) == "ran"
    assert handler(state(ANON)) != "ran"


def test_on_a_page_function_the_guard_renders_loading_and_checks_on_mount():
    import reflex as rx

    @decorators.staff_required(redirect="/denied")
    def reports() -> rx.Component:
        return rx.text("the reports")

    component = reports()
    assert "the reports" in str(component)
    assert "Loading" in str(component)
    guard = decorators.PAGE_GUARDS[
        f"{__name__}.test_on_a_page_function_the_guard_renders_loading_and_checks_on_mount.<locals>.reports"
    ]
    assert target(guard.refusal(state(ANON), "reports")) == (
        "document",
        "/accounts/login/?next=/orders%3Ftab%3Dopen%26x%3D%252F",
    )
    assert target(guard.refusal(state(USER), "reports")) == ("document", "/denied")
    assert guard.refusal(state({**USER, "is_staff": True}), "reports") is None
    with pytest.raises(TypeError, match="on_denied= applies to handlers only"):
        login_required(on_denied=lambda s: None)(lambda: rx.text("x"))
