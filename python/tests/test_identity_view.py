"""The identity endpoint the gateway calls: GET /_isthmus/identity."""

import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission, User
from django.contrib.sessions.models import Session
from django.test import Client

URL = "/_isthmus/identity"
SECRET = django_settings.ISTHMUS_IDENTITY_SECRET

pytestmark = pytest.mark.django_db


def ask(client, secret=SECRET, method="get", **extra):
    headers = {} if secret is None else {"HTTP_X_ISTHMUS_SECRET": secret}
    return getattr(client, method)(URL, **headers, **extra)


def ident(response):
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    assert not response.cookies
    body = json.loads(response.content)
    # The sealed session key (test_session_write.py opens it); only with a stored session.
    ref = body.pop("session_ref", None)
    assert ref is None or ref.startswith("v1.")
    return body


@pytest.fixture
def alice(db):
    user = User.objects.create_user("alice", "a@x.org", "pw-alice-1", first_name="Alice", last_name="Liddell")
    editors = Group.objects.create(name="editors")
    writers = Group.objects.create(name="writers")
    user.groups.add(writers, editors)
    editors.permissions.add(Permission.objects.get(codename="add_product"))
    user.user_permissions.add(Permission.objects.get(codename="view_tag"))
    return user


ANONYMOUS = {
    "authenticated": False,
    "user_id": None,
    "username": "",
    "email": "",
    "first_name": "",
    "last_name": "",
    "is_staff": False,
    "is_superuser": False,
    "groups": [],
    "permissions": [],
    "session": {},
    "language": "",
    "timezone": "",
}


def test_anonymous(client):
    assert ident(ask(client)) == ANONYMOUS


def test_force_login_full_identity(client, alice):
    client.force_login(alice)
    assert ident(ask(client)) == {
        "authenticated": True,
        "user_id": str(alice.pk),
        "username": "alice",
        "email": "a@x.org",
        "first_name": "Alice",
        "last_name": "Liddell",
        "is_staff": False,
        "is_superuser": False,
        "groups": ["editors", "writers"],
        "permissions": ["testapp.add_product", "testapp.view_tag"],
        "session": {},
        "language": "",
        "timezone": "",
    }


def test_real_login_through_the_login_view(alice):
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-1"})
    assert response.status_code == 302
    body = ident(ask(client))
    assert body["authenticated"]
    assert body["username"] == "alice"


def test_client_login(client, alice):
    assert client.login(username="alice", password="pw-alice-1")
    assert ident(ask(client))["user_id"] == str(alice.pk)


def test_only_the_cookie_header_matters(alice):
    """The gateway copies the browser's Cookie header verbatim: a fresh client with it works."""
    logged_in = Client()
    logged_in.force_login(alice)
    cookie_header = "; ".join(f"{k}={v.value}" for k, v in logged_in.cookies.items())
    gateway = Client()
    response = gateway.get(URL, HTTP_COOKIE="theme=dark; " + cookie_header, HTTP_X_ISTHMUS_SECRET=SECRET)
    assert ident(response)["username"] == "alice"


def test_staff_and_superuser(client):
    boss = User.objects.create_superuser("boss", "boss@x.org", "pw")
    client.force_login(boss)
    body = ident(ask(client))
    assert body["is_staff"] is True
    assert body["is_superuser"] is True
    # A superuser has every permission there is.
    assert len(body["permissions"]) == Permission.objects.count()
    assert body["permissions"] == sorted(body["permissions"])
    assert "testapp.delete_gadget" in body["permissions"]


def test_inactive_user_is_anonymous(client, alice):
    client.force_login(alice)
    alice.is_active = False
    alice.save()
    assert ident(ask(client)) == ANONYMOUS


def test_whitelisted_session_keys_are_json_text(client, alice):
    client.force_login(alice)
    session = client.session
    session["cart_id"] = 3
    session["theme"] = "dark"
    session["prefs"] = {"a": [1, 2], "b": None}
    session["not_listed"] = "hidden"
    session.save()
    body = ident(ask(client))
    assert body["session"] == {"cart_id": "3", "theme": '"dark"', "prefs": '{"a": [1, 2], "b": null}'}
    assert {k: json.loads(v) for k, v in body["session"].items()} == {
        "cart_id": 3,
        "theme": "dark",
        "prefs": {"a": [1, 2], "b": None},
    }


def test_anonymous_session_keys_are_included(client):
    session = client.session
    session["cart_id"] = 7
    session.save()
    assert ident(ask(client)) == {**ANONYMOUS, "session": {"cart_id": "7"}}


def test_session_keys_setting(client, settings):
    settings.ISTHMUS_SESSION_KEYS = []
    session = client.session
    session["cart_id"] = 7
    session.save()
    assert ident(ask(client))["session"] == {}


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET[:-1], SECRET + "x", SECRET.upper()])
def test_wrong_or_absent_secret_is_403(client, alice, secret):
    client.force_login(alice)
    response = ask(client, secret=secret)
    assert response.status_code == 403
    assert b"alice" not in response.content
    assert "Set-Cookie" not in response.headers


def test_non_ascii_secret_header_is_403(client):
    assert ask(client, secret="s\u00e9cret").status_code == 403


def test_missing_secret_is_503(client, settings, monkeypatch):
    settings.ISTHMUS_IDENTITY_SECRET = ""
    monkeypatch.delenv("ISTHMUS_IDENTITY_SECRET", raising=False)
    assert ask(client).status_code == 503
    assert ask(client, secret="").status_code == 503


def test_secret_from_environment(client, settings, monkeypatch):
    del settings.ISTHMUS_IDENTITY_SECRET
    monkeypatch.setenv("ISTHMUS_IDENTITY_SECRET", "env-secret-0123456789abcdefghijklmnop")
    assert ask(client).status_code == 403
    assert ident(ask(client, secret="env-secret-0123456789abcdefghijklmnop")) == ANONYMOUS


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "head", "options"])
def test_only_get(method, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = ask(client, method=method)
    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_no_session_created_for_anonymous(client):
    before = Session.objects.count()
    response = ask(client)
    ident(response)
    assert Session.objects.count() == before
    assert not client.cookies.get("sessionid")


def test_save_every_request_does_not_save_or_extend(client, alice, settings):
    settings.SESSION_SAVE_EVERY_REQUEST = True
    client.force_login(alice)
    key = client.cookies["sessionid"].value
    row = Session.objects.get(session_key=key)
    Session.objects.filter(pk=row.pk).update(expire_date=row.expire_date.replace(microsecond=0))
    expiry = Session.objects.get(session_key=key).expire_date
    last_login = User.objects.get(pk=alice.pk).last_login
    body = ident(ask(client))
    assert body["authenticated"]
    assert Session.objects.get(session_key=key).expire_date == expiry
    assert User.objects.get(pk=alice.pk).last_login == last_login


def test_garbage_session_cookie_is_not_deleted(client):
    client.cookies["sessionid"] = "no-such-session-0123456789abcdef"
    response = ask(client)
    assert ident(response) == ANONYMOUS
    assert Session.objects.count() == 0


def test_stale_session_hash_is_anonymous_and_session_survives(client, alice):
    client.force_login(alice)
    key = client.cookies["sessionid"].value
    alice.set_password("a-new-password")
    alice.save()
    assert ident(ask(client)) == ANONYMOUS
    # Django would flush the session here; the endpoint leaves the store alone.
    assert Session.objects.filter(session_key=key).exists()


def test_secret_key_fallback_does_not_cycle_the_session(client, alice, settings):
    old_key = settings.SECRET_KEY
    client.force_login(alice)
    key = client.cookies["sessionid"].value
    settings.SECRET_KEY = "a-brand-new-secret-key-0123456789-abcdefghijklmnop"
    settings.SECRET_KEY_FALLBACKS = [old_key]
    body = ident(ask(client))
    assert body["username"] == "alice"
    # Django's get_user() calls cycle_key() here; no new session may appear.
    assert list(Session.objects.values_list("session_key", flat=True)) == [key]


def test_session_hash_check_still_passes_for_a_valid_session(client, alice):
    client.force_login(alice)
    assert ident(ask(client))["authenticated"]


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.signed_cookies",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.file",
    ],
)
def test_other_session_backends(engine, settings, alice, tmp_path):
    settings.SESSION_ENGINE = engine
    settings.SESSION_FILE_PATH = str(tmp_path)
    client = Client()
    client.force_login(alice)
    session = client.session
    session["cart_id"] = 5
    session.save()
    if engine.endswith("signed_cookies"):
        # The cookie is the session itself: send the saved one.
        client.cookies["sessionid"] = session.session_key
    body = ident(ask(client))
    assert body["username"] == "alice"
    assert body["session"] == {"cart_id": "5"}
    # And a stale hash is anonymous with every backend.
    alice.set_password("changed-password")
    alice.save()
    assert ident(ask(client))["authenticated"] is False


def test_signed_cookie_session_tampered_is_anonymous(settings, alice):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    client = Client()
    client.force_login(alice)
    value = client.cookies["sessionid"].value
    client.cookies["sessionid"] = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    assert ident(ask(client)) == ANONYMOUS


def test_login_required_middleware_does_not_block(client, settings):
    middleware = "django.contrib.auth.middleware.LoginRequiredMiddleware"
    pytest.importorskip("django.contrib.auth.middleware").__dict__.get("LoginRequiredMiddleware") or pytest.skip(
        "Django < 5.1"
    )
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, middleware]
    assert ident(ask(client)) == ANONYMOUS


def test_works_without_session_and_auth_middleware(client, settings, alice):
    logged = Client()
    logged.force_login(alice)
    settings.MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
    client.cookies["sessionid"] = logged.cookies["sessionid"].value
    assert ident(ask(client))["username"] == "alice"


def test_email_field_of_custom_model(alice):
    from isthmus_django.identity import build_identity

    class NoEmail:
        is_authenticated = True
        pk = 9

        def get_username(self):
            return "robot"

    body = build_identity(NoEmail(), {})
    assert body["email"] == ""
    assert body["username"] == "robot"
    assert body["user_id"] == "9"
    assert body["groups"] == []
    assert body["permissions"] == []


# --- language and time zone ------------------------------------------------------------


def test_language_is_empty_without_a_hint(client):
    # The gateway sends only the session cookie today: the Reflex side then decides.
    assert ident(ask(client))["language"] == ""


def test_language_follows_accept_language_as_locale_middleware_would(client):
    assert ident(ask(client, HTTP_ACCEPT_LANGUAGE="fr-CH, fr;q=0.9, en;q=0.8"))["language"] == "fr"


def test_language_cookie_wins_over_accept_language(client, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"
    assert ident(ask(client, HTTP_ACCEPT_LANGUAGE="fr"))["language"] == "de"


def test_language_is_empty_without_i18n(client, settings):
    settings.USE_I18N = False
    assert ident(ask(client, HTTP_ACCEPT_LANGUAGE="fr"))["language"] == ""


def test_timezone_from_the_session_recipe_key(client, alice):
    client.force_login(alice)
    session = client.session
    session["django_timezone"] = "Europe/Paris"
    session.save()
    assert ident(ask(client))["timezone"] == "Europe/Paris"


def test_timezone_session_key_setting_and_anonymous(client, settings):
    settings.ISTHMUS_TIMEZONE_SESSION_KEY = "tz"
    session = client.session
    session["tz"] = "Asia/Tokyo"
    session.save()
    got = ident(ask(client))
    assert (got["authenticated"], got["timezone"]) == (False, "Asia/Tokyo")
