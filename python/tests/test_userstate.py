"""UserState (vars from the verified identity on every event) and the per-event locale."""

import asyncio

import pytest

rx = pytest.importorskip("reflex")

from django.utils import timezone, translation  # noqa: E402

from isthmus_reflex import make_injection  # noqa: E402
from isthmus_reflex.bridge import Identity  # noqa: E402
from isthmus_reflex.locale import activate_for, csrf_token_for, install_locale, language_for  # noqa: E402
from isthmus_reflex.userstate import REFRESH_EVENT, UserState  # noqa: E402
from tests.conftest import BRIDGE_SECRET, shared_reflex_app  # noqa: E402

ALICE = {
    "authenticated": True,
    "user_id": "7",
    "username": "alice",
    "email": "a@x.org",
    "first_name": "Alice",
    "last_name": "Liddell",
    "is_staff": True,
    "is_superuser": False,
    "groups": ["editors", "writers"],
    "permissions": ["shop.add_product"],
    "session": {},
}


def router_data(ident=None, *, headers=None, secret=BRIDGE_SECRET):
    data = {
        "pathname": "/",
        "asPath": "/",
        "query": {},
        "headers": {"origin": "http://127.0.0.1:3000", **(headers or {})},
        "token": "tok",
        "sid": "sid",
    }
    if ident is not None:
        data["isthmus"] = make_injection(ident, secret)
    return data


def user_state(ident=None, **kw):
    root = rx.State(_reflex_internal_init=True)
    root.router_data = root._update_router_vars(router_data(ident, **kw), root.router_data)
    return root, root.get_substate(UserState.get_full_name().split("."))


@pytest.fixture(autouse=True)
def _reset_locale():
    yield
    translation.deactivate()
    timezone.deactivate()


# --- UserState --------------------------------------------------------------------------


def test_vars_come_from_the_verified_identity():
    _, state = user_state(ALICE)
    assert state.is_authenticated is True
    assert (state.user_id, state.username, state.email) == ("7", "alice", "a@x.org")
    assert (state.first_name, state.last_name, state.full_name) == ("Alice", "Liddell", "Alice Liddell")
    assert (state.is_staff, state.is_superuser) == (True, False)
    assert state.groups == ["editors", "writers"]


def test_full_name_falls_back_to_the_username():
    _, state = user_state({**ALICE, "first_name": "", "last_name": ""})
    assert state.full_name == "alice"


@pytest.mark.parametrize("how", ["none", "forged", "no router data"])
def test_unverified_or_absent_identity_is_anonymous(how):
    if how == "no router data":
        state = rx.State(_reflex_internal_init=True).get_substate(UserState.get_full_name().split("."))
    else:
        _, state = user_state(None if how == "none" else ALICE, secret="not-the-bridge-secret")
    assert state.is_authenticated is False
    assert (state.username, state.full_name, state.groups, state.is_staff) == ("", "", [], False)


def test_vars_are_uncached_so_every_event_sends_them():
    names = {
        "is_authenticated",
        "username",
        "full_name",
        "is_staff",
        "is_superuser",
        "groups",
        "language",
        "timezone",
        "csrf_token",
        "first_name",
        "last_name",
        "email",
        "user_id",
    }
    assert names <= set(UserState.computed_vars)
    assert names <= UserState._always_dirty_computed_vars
    # The root includes the substate in every delta, whichever state's handler ran.
    assert UserState.get_name() in rx.State._always_dirty_substates


def test_a_changed_identity_shows_in_the_next_delta():
    root, state = user_state(ALICE)
    assert state.username == "alice"
    # The next event carries another identity (the gateway re-read the session).
    root.router_data = root._update_router_vars(router_data({**ALICE, "username": "bob"}), root.router_data)
    root._mark_dirty()
    delta = root.get_delta()
    mine = delta[UserState.get_full_name()]
    assert any(key.startswith("username") and value == "bob" for key, value in mine.items()), mine


def test_refresh_is_a_handler_and_its_full_name_is_documented():
    assert "refresh" in UserState.event_handlers
    assert f"{UserState.get_full_name()}.refresh" == REFRESH_EVENT


def test_uservars_in_components():
    # What the issue asks for: rx.cond on UserState.is_authenticated compiles.
    shared_reflex_app()
    component = rx.cond(UserState.is_authenticated, rx.text("Hello, ", UserState.full_name), rx.text("Hi"))
    assert "is_authenticated" in str(component)


# --- CSRF ---------------------------------------------------------------------------------


def test_csrf_token_is_the_browsers_cookie():
    _, state = user_state(ALICE, headers={"cookie": "sessionid=s; csrftoken=Tok123; theme=dark"})
    assert state.csrf_token == "Tok123"
    assert csrf_token_for(router_data(headers={})) == ""


def test_csrf_token_follows_the_cookie_the_browser_reports_after_a_login():
    _, state = user_state(ALICE, headers={"cookie": "csrftoken=" + "a" * 32})
    assert state.csrf_token == "a" * 32
    # Django rotated the token at a login in this tab; refresh reads it back.
    events = UserState.refresh.fn(state)
    script = events[1].args[0][1]._var_value
    assert '"csrftoken="' in script
    UserState.receive_csrf.fn(state, "B" * 64)
    assert state.csrf_token == "B" * 64
    # What is not a token's shape is not taken.
    for bad in ["", "x" * 31, "a" * 32 + ";", 5, None]:
        UserState.receive_csrf.fn(state, bad)
        assert state.csrf_token == "B" * 64


def test_csrf_cookie_name_setting_and_sessions(settings):
    settings.CSRF_COOKIE_NAME = "mycsrf"
    assert csrf_token_for(router_data(headers={"cookie": "csrftoken=a; mycsrf=b"})) == "b"
    settings.CSRF_USE_SESSIONS = True
    assert csrf_token_for(router_data(headers={"cookie": "mycsrf=b"})) == ""


# --- language and time zone ----------------------------------------------------------------


def test_language_from_the_identity_wins():
    data = router_data({**ALICE, "language": "de"}, headers={"accept-language": "fr"})
    assert activate_for(data) == ("de", "")
    assert translation.get_language() == "de"


def test_language_from_the_handshake_as_locale_middleware_would():
    data = router_data(ALICE, headers={"accept-language": "fr-CH, fr;q=0.9"})
    assert activate_for(data)[0] == "fr"
    assert translation.get_language() == "fr"
    cookie = router_data(ALICE, headers={"accept-language": "fr", "cookie": "django_language=es"})
    assert language_for(Identity(), cookie) == "es"


def test_anonymous_visitors_get_their_language_and_timezone_too():
    data = router_data({"authenticated": False, "user_id": None, "language": "it", "timezone": "Asia/Tokyo"})
    assert activate_for(data) == ("it", "Asia/Tokyo")
    assert timezone.get_current_timezone_name() == "Asia/Tokyo"


def test_each_event_resets_what_the_previous_one_activated(settings):
    activate_for(router_data({**ALICE, "language": "de", "timezone": "Europe/Paris"}))
    assert timezone.get_current_timezone_name() == "Europe/Paris"
    # No hint at all: LocaleMiddleware's choice, LANGUAGE_CODE's supported variant.
    assert activate_for(router_data(ALICE)) == ("en", "")
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE
    assert translation.get_language() == "en"


def test_unknown_timezone_is_the_default(settings):
    assert activate_for(router_data({**ALICE, "timezone": "Mars/Olympus"}))[1] == ""
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE


def test_the_middleware_activates_before_the_handler():
    app = shared_reflex_app()
    before = list(app._middlewares)
    try:
        middleware = install_locale(app)
        assert app._middlewares[0] is middleware
        root, _ = user_state({**ALICE, "language": "fr", "timezone": "Europe/Paris"})

        async def event():
            # The handler runs in the same task, after preprocess.
            assert await middleware.preprocess(app=app, state=root, event=None) is None
            return translation.get_language(), timezone.get_current_timezone_name()

        assert asyncio.run(event()) == ("fr", "Europe/Paris")
    finally:
        app._middlewares[:] = before


# --- messages -----------------------------------------------------------------------------


def test_received_messages_are_checked_and_capped():
    _, state = user_state(ALICE)
    fn = UserState.event_handlers["receive_messages"].fn
    fn(
        state,
        {
            "messages": [
                {"tag": "success extra-css", "text": "Saved."},
                {"tag": "bogus", "text": "Hm"},
                {"tag": "error", "text": ""},
                "junk",
                {"text": 3},
            ]
        },
    )
    assert state.messages == [{"tag": "success", "text": "Saved."}, {"tag": "info", "text": "Hm"}]
    fn(state, {"messages": "not a list"})
    fn(state, {"messages": [{"tag": "info", "text": "x" * 10_000}] * 80})
    assert len(state.messages) == 50
    assert len(state.messages[-1]["text"]) == 2000


def test_dismiss_and_clear():
    _, state = user_state(ALICE)
    state.messages = [{"tag": "info", "text": "a"}, {"tag": "info", "text": "b"}]
    UserState.event_handlers["dismiss_message"].fn(state, 0)
    UserState.event_handlers["dismiss_message"].fn(state, 5)
    assert state.messages == [{"tag": "info", "text": "b"}]
    UserState.event_handlers["clear_messages"].fn(state)
    assert state.messages == []


def test_a_handler_adds_a_message_from_another_state():
    from isthmus_reflex import add_message

    class OrderState(rx.State):
        @rx.event
        async def place(self):
            await add_message(self, "Order placed.", "success")

    root, user = user_state(ALICE)
    order = root.get_substate(OrderState.get_full_name().split("."))
    asyncio.run(OrderState.event_handlers["place"].fn(order))
    assert user.messages == [{"tag": "success", "text": "Order placed."}]


def test_fetch_messages_calls_the_view_and_refresh_returns_it():
    from isthmus_reflex import fetch_messages

    spec = fetch_messages()
    assert "/_isthmus/messages" in str(spec.args)
    with pytest.raises(ValueError, match="prefix"):
        fetch_messages("//evil.example/")
    _, state = user_state(ALICE)
    assert UserState.event_handlers["refresh"].fn(state) is not None
