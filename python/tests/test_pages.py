"""Page guards in the Reflex process: the rule syntax, the config file, the middleware."""

import asyncio
import json
from types import SimpleNamespace

import pytest

pytest.importorskip("reflex")

from isthmus_reflex import make_injection
from isthmus_reflex.pages import (
    CONFIG_ENV,
    PageGuardError,
    PageGuards,
    compile_glob,
    guard_pages,
    load_page_guards,
    parse_requirement,
)
from tests.conftest import BRIDGE_SECRET
from tests.test_decorators import ANON, USER, target

PAGES = [
    {"page": "/orders/new", "require": "perm:shop.add_order"},
    {"page": "/orders*", "require": "authenticated"},
    {"page": "/staff/*", "require": ["staff", "group:managers"]},
    {"page": "/closed", "require": "deny"},
]


def state(ident, path):
    data = {"pathname": path.split("?")[0], "asPath": path}
    if ident is not None:
        data["isthmus"] = make_injection(ident, BRIDGE_SECRET)
    return SimpleNamespace(router_data=data)


def test_globs_match_whole_paths_as_the_gateway_does():
    assert compile_glob("/orders*").fullmatch("/orders/7/edit")
    assert compile_glob("/orders*").fullmatch("/orders")
    assert not compile_glob("/orders/*").fullmatch("/orders")
    assert compile_glob("/a?c").fullmatch("/abc")
    assert not compile_glob("/a?c").fullmatch("/ac")
    # Everything but * and ? is literal, unlike fnmatch's classes.
    assert compile_glob("/[x].html").fullmatch("/[x].html")
    assert not compile_glob("/[x].html").fullmatch("/x.html")


def test_requirements_parse_as_in_the_gateway():
    for text in ["any", "authenticated", "anonymous", "staff", "superuser", "deny", "group:a b", "perm:shop.x"]:
        assert parse_requirement(text).text == text
    with pytest.raises(PageGuardError, match=r"unknown requirement 'Staff'.*did you mean 'staff'"):
        parse_requirement("Staff")
    with pytest.raises(PageGuardError, match=r"expected perm:app_label\.codename"):
        parse_requirement("perm:nodot")
    with pytest.raises(PageGuardError, match="empty group name"):
        parse_requirement("group:")
    with pytest.raises(PageGuardError, match="whitespace"):
        parse_requirement("group: a")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"page": "/x"}, r"pages: expected a list"),
        ([{"page": "/x"}], r'pages\[0\]: missing key "require"'),
        ([{"require": "any"}], r'pages\[0\]: missing key "page"'),
        ([{"page": "x", "require": "any"}], r'pages\[0\].page: .x. must start with "/"'),
        ([{"page": "/x", "require": []}], r"pages\[0\].require: expected a requirement"),
        ([{"page": "/x", "require": "any", "event": "*"}], r"pages\[0\]: unknown key 'event'"),
        ([{"page": "/x", "require": "any"}, {"page": "/y", "require": "staf"}], r"pages\[1\].require: unknown"),
    ],
)
def test_bad_guards_name_the_entry(entries, message):
    with pytest.raises(PageGuardError, match=message):
        PageGuards.from_list(entries)


def who(guards, ident, path):
    """Where an event of ``path`` sent by ``ident`` goes: None (it runs) or the redirect."""
    refusal = guards.refusal(state(ident, path))
    return None if refusal is None else target(refusal)


def test_the_first_matching_guard_decides_with_the_verified_identity():
    guards = PageGuards.from_list(PAGES, login_url="/accounts/login/")
    login = ("document", "/accounts/login/?next=/orders/7%3Ftab%3Dx")
    assert who(guards, ANON, "/orders/7?tab=x") == login
    assert who(guards, USER, "/orders/7?tab=x") is None
    # /orders/new needs a permission dana lacks: to the login page, as Django does.
    assert who(guards, USER, "/orders/new")[1].startswith("/accounts/login/?next=/orders/new")
    assert who(guards, {**USER, "permissions": ["shop.add_order"]}, "/orders/new") is None
    assert who(guards, {**USER, "is_superuser": True}, "/orders/new") is None
    assert who(guards, USER, "/staff/x") is not None
    assert who(guards, {**USER, "is_staff": True, "groups": ["managers"]}, "/staff/x") is None
    assert who(guards, {**USER, "is_superuser": True, "is_staff": True}, "/closed") is not None
    # Open pages, and events whose signature does not verify (anonymous), on open pages.
    assert who(guards, ANON, "/") is None
    assert who(guards, None, "/") is None
    assert who(guards, None, "/orders") is not None


def test_forbidden_url_takes_logged_in_visitors_elsewhere():
    guards = PageGuards.from_list(PAGES, login_url="/accounts/login/", forbidden_url="/denied")
    assert who(guards, USER, "/staff/x") == ("document", "/denied")
    assert who(guards, ANON, "/staff/x")[1].startswith("/accounts/login/?next=")


def write_config(tmp_path, text):
    path = tmp_path / "isthmus.toml"
    path.write_text(text)
    return path


ROUTERS = """
[[routing.routers]]
plugin = "guard.wasm"
config = { areas = ["/reports"] }

[[routing.routers]]
plugin = "prefix_router.wasm"
config = { login_url = "/accounts/login/", pages = [
    { page = "/orders*", require = "authenticated" },
] }
"""


def test_guards_come_from_the_config_isthmus_run_names(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, str(write_config(tmp_path, ROUTERS)))
    guards = load_page_guards()
    assert [r.page for r in guards.rules] == ["/orders*"]
    assert guards.login_url == "/accounts/login/"
    monkeypatch.delenv(CONFIG_ENV)
    assert load_page_guards().rules == ()


def test_a_bad_guard_in_the_config_names_file_and_key(tmp_path):
    path = write_config(tmp_path, ROUTERS.replace('"authenticated"', '"staf"'))
    with pytest.raises(PageGuardError, match=r"isthmus.toml: routing.routers\[1\].config.pages\[0\].require: unknown"):
        load_page_guards(path)


def test_the_middleware_answers_a_refused_event_with_the_redirect_and_nothing_else(tmp_path):
    app = SimpleNamespace(middlewares=[])
    app.add_middleware = lambda m, index: app.middlewares.insert(index, m)
    guards = guard_pages(app, PAGES, login_url="/accounts/login/")
    assert len(guards.rules) == 4
    assert len(app.middlewares) == 1
    middleware = app.middlewares[0]
    event = SimpleNamespace(name="state.order_state.load", token="t")
    update = asyncio.run(middleware.preprocess(app, state(ANON, "/orders"), event))
    assert update.delta == {}
    [redirect] = update.events
    assert redirect.name.endswith("call_script")
    assert (
        redirect.payload["javascript_code"] == f"window.location.assign({json.dumps('/accounts/login/?next=/orders')})"
    )
    assert asyncio.run(middleware.preprocess(app, state(USER, "/orders"), event)) is None
    # No guards, no middleware: an app without pages pays nothing per event.
    empty = SimpleNamespace(middlewares=[])
    empty.add_middleware = lambda m, index: empty.middlewares.insert(index, m)
    assert guard_pages(empty, config=write_config(tmp_path, "")).rules == ()
    assert empty.middlewares == []
