"""Session writes from Reflex handlers: the session reference, POST /_isthmus/session, and
isthmus_reflex.write_session talking to that view."""

import asyncio
import json
import time

import httpx
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from isthmus_django.session_ref import open_session_ref, seal_session_ref
from isthmus_django.session_write import NONCES_KEY
from isthmus_reflex import SessionKeyRefused, SessionWriteError, make_injection, write_session
from isthmus_reflex import session as rsession
from isthmus_reflex.session import overlaid_session, signed_request
from tests.conftest import BRIDGE_SECRET

URL = "/_isthmus/session"
FULL_URL = "http://testserver" + URL
IDENTITY_SECRET = django_settings.ISTHMUS_IDENTITY_SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_overlays():
    rsession._reset_overlays()
    yield
    rsession._reset_overlays()


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", "a@x.org", "pw-alice-1")


@pytest.fixture
def logged_in(alice):
    client = Client()
    client.force_login(alice)
    return client


def identity_of(client):
    """What the gateway would fetch for this client's cookie."""
    response = client.get("/_isthmus/identity", HTTP_X_ISTHMUS_SECRET=IDENTITY_SECRET)
    assert response.status_code == 200
    return json.loads(response.content)


def router_data_for(identity, secret=BRIDGE_SECRET, iat=None):
    return {"isthmus": make_injection(identity, secret, iat=iat)}


def post(body, *, secret=BRIDGE_SECRET, now=None, nonce=None, headers=None):
    raw = json.dumps(body).encode()
    sent = signed_request(FULL_URL, raw, secret, now=now, nonce=nonce)
    sent.update(headers or {})
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in sent.items() if k != "Content-Type"}
    return Client().post(URL, data=raw, content_type="application/json", **extra)


def stored(client):
    return SessionStore(client.cookies["sessionid"].value).load()


# --- the reference ------------------------------------------------------------------------


def test_a_reference_opens_to_its_key_only_under_the_same_secret():
    ref = seal_session_ref("abc123xyz", IDENTITY_SECRET)
    assert ref.startswith("v1.")
    assert "abc123xyz" not in ref
    assert open_session_ref(ref, IDENTITY_SECRET) == "abc123xyz"
    assert seal_session_ref("abc123xyz", IDENTITY_SECRET) != ref, "a fresh nonce each time"
    with pytest.raises(ValueError, match="not sealed"):
        open_session_ref(ref, "another-secret-0123456789abcdefghijklmnop")
    tampered = ref[:-2] + ("A" if ref[-2] != "A" else "B") + ref[-1]
    with pytest.raises(ValueError, match="not sealed"):
        open_session_ref(tampered, IDENTITY_SECRET)
    with pytest.raises(ValueError, match="expired"):
        open_session_ref(ref, IDENTITY_SECRET, now=time.time() + 3601)
    for junk in ("", "v1.", "v1.!!!", "v2." + ref[3:], "v1.AAAA"):
        with pytest.raises(ValueError, match="session reference"):
            open_session_ref(junk, IDENTITY_SECRET)


def test_the_gateway_s_test_vector(monkeypatch):
    """host/src/identity/written.rs opens this same text."""
    from isthmus_django import session_ref

    monkeypatch.setattr(session_ref.secrets, "token_bytes", lambda n: bytes(range(n)))
    sealed = seal_session_ref("q1w2e3r4t5y6u7i8o9p0asdfghjklzxc", IDENTITY_SECRET, now=1750000000)
    assert sealed == (
        "v1.AAECAwQFBgcICQoLDA0OD0T9LK-Yp-n2KNRSFitdr98TdLsIL_M5Pv7isjHiiFa5Gl1pUuZKkyXEu_ovK3JOk1jdZ79Ia"
        "cKWNOcZaqpo4ZSUZFVU1JWHFTXEdg"
    )


def test_the_identity_carries_a_reference_to_the_browser_s_session(logged_in):
    ref = identity_of(logged_in)["session_ref"]
    assert open_session_ref(ref) == logged_in.cookies["sessionid"].value


def test_no_reference_without_a_stored_session(client):
    assert "session_ref" not in identity_of(client)
    client.cookies["sessionid"] = "no-such-session-0123456789abcdef"
    assert "session_ref" not in identity_of(client)


# --- the view ------------------------------------------------------------------------------


def test_a_write_sets_and_deletes_at_once_and_django_sees_it(logged_in):
    session = logged_in.session
    session["theme"] = "dark"
    session["unlisted"] = "kept"
    session.save()
    rd = router_data_for(identity_of(logged_in))
    response = post({"injection": rd["isthmus"], "set": {"cart_id": 42, "prefs": {"a": [1]}}, "delete": ["theme"]})
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    assert open_session_ref(response["X-Isthmus-Session-Written"]) == logged_in.cookies["sessionid"].value
    assert json.loads(response.content) == {"ok": True, "session": {"cart_id": "42", "prefs": '{"a": [1]}'}}
    data = stored(logged_in)
    assert data["cart_id"] == 42
    assert data["prefs"] == {"a": [1]}
    assert "theme" not in data
    assert data["unlisted"] == "kept"
    assert data["_auth_user_id"] == str(logged_in.session["_auth_user_id"])
    # The next identity fetch (what the gateway's next fetch gives the next event) has it.
    assert identity_of(logged_in)["session"] == {"cart_id": "42", "prefs": '{"a": [1]}'}


def test_keys_outside_the_whitelist_are_refused_and_nothing_is_written(logged_in):
    rd = router_data_for(identity_of(logged_in))
    response = post({"injection": rd["isthmus"], "set": {"cart_id": 1, "is_admin": True}, "delete": ["_auth_user_id"]})
    assert response.status_code == 403
    assert json.loads(response.content)["refused"] == ["_auth_user_id", "is_admin"]
    data = stored(logged_in)
    assert "cart_id" not in data
    assert "is_admin" not in data
    assert "_auth_user_id" in data


@pytest.mark.parametrize(
    "tamper",
    ["bad_signature", "wrong_secret", "old", "future", "unsigned", "body_changed", "path_changed"],
)
def test_a_forged_or_stale_request_is_refused(logged_in, tamper):
    rd = router_data_for(identity_of(logged_in))
    body = {"injection": rd["isthmus"], "set": {"cart_id": 9}}
    raw = json.dumps(body).encode()
    headers = signed_request(FULL_URL, raw, BRIDGE_SECRET)
    if tamper == "bad_signature":
        headers["Isthmus-Signature"] = "0" * 64
    elif tamper == "wrong_secret":
        headers = signed_request(FULL_URL, raw, "not-the-bridge-secret-0123456789abcdef")
    elif tamper in ("old", "future"):
        headers = signed_request(FULL_URL, raw, BRIDGE_SECRET, now=time.time() + (-120 if tamper == "old" else 120))
    elif tamper == "unsigned":
        headers = {}
    elif tamper == "body_changed":
        raw = json.dumps({**body, "set": {"cart_id": 10}}).encode()
    elif tamper == "path_changed":
        headers = signed_request("http://testserver/_isthmus/other", raw, BRIDGE_SECRET)
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k != "Content-Type"}
    response = Client().post(URL, data=raw, content_type="application/json", **extra)
    assert response.status_code == 403, response.content
    assert "cart_id" not in stored(logged_in)


def test_a_replayed_request_is_refused(logged_in):
    rd = router_data_for(identity_of(logged_in))
    body = {"injection": rd["isthmus"], "set": {"cart_id": 1}}
    assert post(body, nonce="a" * 32).status_code == 200
    again = post(body, nonce="a" * 32)
    assert again.status_code == 403
    assert json.loads(again.content)["error"] == "replayed request"
    assert post(body, nonce="b" * 32).status_code == 200, "another nonce is another request"
    assert set(stored(logged_in)[NONCES_KEY]) == {"a" * 32, "b" * 32}


def test_the_injection_must_be_the_gateway_s_and_fresh(logged_in):
    identity = identity_of(logged_in)
    forged = router_data_for(identity, secret="not-the-bridge-secret-0123456789abcdef")["isthmus"]
    assert post({"injection": forged, "set": {"cart_id": 1}}).status_code == 403
    old = router_data_for(identity, iat=int(time.time()) - 301)["isthmus"]
    assert post({"injection": old, "set": {"cart_id": 1}}).status_code == 403
    assert post({"set": {"cart_id": 1}}).status_code == 400


def test_a_reference_the_reflex_process_made_up_is_refused(logged_in):
    identity = {
        **identity_of(logged_in),
        "session_ref": seal_session_ref("guessed", "a-secret-only-reflex-would-know-01234"),
    }
    response = post({"injection": router_data_for(identity)["isthmus"], "set": {"cart_id": 1}})
    assert response.status_code == 403


def test_no_session_is_409_and_a_gone_one_410(logged_in, client):
    anonymous = identity_of(client)
    assert post({"injection": router_data_for(anonymous)["isthmus"], "set": {"cart_id": 1}}).status_code == 409
    rd = router_data_for(identity_of(logged_in))
    logged_in.logout()  # flushes the session: the reference names a session that is gone
    response = post({"injection": rd["isthmus"], "set": {"cart_id": 1}})
    assert response.status_code == 410


def test_a_session_now_of_another_user_is_refused(logged_in, alice):
    identity = {**identity_of(logged_in), "user_id": str(alice.pk + 1)}
    response = post({"injection": router_data_for(identity)["isthmus"], "set": {"cart_id": 1}})
    assert response.status_code == 409


def test_an_anonymous_session_can_be_written():
    store = SessionStore()
    store["theme"] = "light"
    store.create()
    client = Client()
    client.cookies["sessionid"] = store.session_key
    rd = router_data_for(identity_of(client))
    assert post({"injection": rd["isthmus"], "set": {"cart_id": 5}}).status_code == 200
    assert SessionStore(store.session_key).load()["cart_id"] == 5


@pytest.mark.parametrize(
    "engine", ["django.contrib.sessions.backends.cache", "django.contrib.sessions.backends.cached_db"]
)
def test_other_session_backends(settings, alice, engine):
    settings.SESSION_ENGINE = engine
    client = Client()
    client.force_login(alice)
    rd = router_data_for(identity_of(client))
    assert post({"injection": rd["isthmus"], "set": {"cart_id": 7}}).status_code == 200
    assert identity_of(client)["session"] == {"cart_id": "7"}


def test_method_configuration_and_signed_cookies(settings, monkeypatch, logged_in):
    get = Client().get(URL)
    assert get.status_code == 405
    assert get["Allow"] == "POST"
    rd = router_data_for(identity_of(logged_in))
    monkeypatch.delenv("ISTHMUS_BRIDGE_SECRET")
    assert post({"injection": rd["isthmus"], "set": {"cart_id": 1}}).status_code == 503
    monkeypatch.setenv("ISTHMUS_BRIDGE_SECRET", BRIDGE_SECRET)
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    assert post({"injection": rd["isthmus"], "set": {"cart_id": 1}}).status_code == 501


# --- isthmus_reflex.write_session against the view -------------------------------------------


@pytest.fixture
def through_django(monkeypatch):
    """httpx requests go to Django's test client instead of the network."""

    from asgiref.sync import sync_to_async

    def answer_of(request: httpx.Request) -> httpx.Response:
        extra = {
            "HTTP_" + k.upper().replace("-", "_"): v
            for k, v in request.headers.items()
            if k.lower().startswith("isthmus-")
        }
        answer = Client().post(request.url.path, data=request.content, content_type="application/json", **extra)
        return httpx.Response(
            answer.status_code, content=answer.content, headers={"Content-Type": answer["Content-Type"]}
        )

    async def handle(request: httpx.Request) -> httpx.Response:
        return await sync_to_async(answer_of)(request)

    real = httpx.AsyncClient

    def client(*args, **kwargs):
        return real(*args, transport=httpx.MockTransport(handle), **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", client)
    rsession.set_session_url(FULL_URL)
    yield
    rsession.set_session_url(None)


def run(coro):
    from asgiref.sync import async_to_sync

    async def wrapped():
        return await coro

    return async_to_sync(wrapped)()


@pytest.mark.django_db(transaction=True)
def test_write_session_writes_and_the_process_s_next_events_see_it(logged_in, through_django):
    identity = identity_of(logged_in)
    rd = router_data_for(identity)
    assert run(write_session(rd, {"cart_id": 42})) == {"cart_id": 42}
    assert stored(logged_in)["cart_id"] == 42
    # An event the gateway signs from its cached identity (same reference, old snapshot)...
    later = router_data_for(identity)
    assert overlaid_session(later, {}) == {"cart_id": 42}
    # ...while one from a fresh fetch (a new reference) shows Django's own answer.
    fresh = router_data_for(identity_of(logged_in))
    assert overlaid_session(fresh, {"cart_id": 41}) == {"cart_id": 41}


@pytest.mark.django_db(transaction=True)
def test_write_session_raises_clearly(logged_in, client, through_django):
    rd = router_data_for(identity_of(logged_in))
    with pytest.raises(SessionKeyRefused) as refused:
        run(write_session(rd, {"is_admin": True}))
    assert refused.value.keys == ("is_admin",)
    assert refused.value.status == 403
    assert "is_admin" in str(refused.value)
    with pytest.raises(SessionWriteError, match="no Django session"):
        run(write_session(router_data_for(identity_of(client)), {"cart_id": 1}))
    with pytest.raises(SessionWriteError, match="no verified identity"):
        run(write_session({}, {"cart_id": 1}))
    with pytest.raises(SessionWriteError, match="no session write URL"):
        run(write_session(rd, {"cart_id": 1}, url=""))


def test_write_session_unreachable():
    identity = {"authenticated": False, "user_id": None, "session": {}, "session_ref": "v1.x"}
    with pytest.raises(SessionWriteError, match="failed"):
        asyncio.run(
            write_session(
                router_data_for(identity), {"cart_id": 1}, url="http://127.0.0.1:9/_isthmus/session", timeout=2
            )
        )
