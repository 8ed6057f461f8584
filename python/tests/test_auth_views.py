"""The JSON auth views for Reflex pages: /_isthmus/csrf, login, logout, password."""

import json

import pytest
from django.contrib.auth import user_logged_in, user_logged_out, user_login_failed
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from tests import auth_backends

IDENTITY_SECRET = "test-identity-secret-0123456789abcdefghijklmnop"
INVALID_LOGIN = "Please enter a correct username and password. Note that both fields may be case-sensitive."

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", "a@x.org", "pw-alice-1", first_name="Alice")


@pytest.fixture
def browser():
    """A browser: Django's test client with the CSRF checks a real request gets."""
    return Client(enforce_csrf_checks=True)


def token(client):
    response = client.get("/_isthmus/csrf")
    assert response.status_code == 200
    return response.json()["csrfToken"]


def post(client, view, data=None, *, csrf=True, **extra):
    headers = {"HTTP_X_CSRFTOKEN": token(client)} if csrf else {}
    return client.post(f"/_isthmus/{view}", json.dumps(data or {}), content_type="application/json", **headers, **extra)


def who(client):
    """What the gateway's identity endpoint says about this browser's cookies."""
    response = client.get("/_isthmus/identity", HTTP_X_ISTHMUS_SECRET=IDENTITY_SECRET)
    assert response.status_code == 200
    return response.json()


def no_store(response):
    assert "no-store" in response["Cache-Control"]


@pytest.fixture
def signals():
    """The auth signals sent during a test: (name, kwargs)."""
    got = []

    def recorder(name):
        def receive(sender, **kwargs):
            got.append((name, kwargs))

        return receive

    receivers = {
        user_logged_in: recorder("logged_in"),
        user_logged_out: recorder("logged_out"),
        user_login_failed: recorder("login_failed"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    yield got
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


# --- csrf ------------------------------------------------------------------------------------


def test_csrf_gives_the_token_and_sets_the_cookie(browser):
    response = browser.get("/_isthmus/csrf")
    assert response.status_code == 200
    no_store(response)
    body = response.json()
    assert set(body) == {"csrfToken", "header"}
    assert body["header"] == "X-CSRFToken"
    assert len(body["csrfToken"]) == 64
    assert browser.cookies["csrftoken"].value
    # No session is created for it.
    assert not browser.cookies.get("sessionid")


def test_csrf_works_with_an_httponly_cookie(browser, settings):
    settings.CSRF_COOKIE_HTTPONLY = True
    response = browser.get("/_isthmus/csrf")
    assert browser.cookies["csrftoken"]["httponly"]
    # The script cannot read the cookie, but the body carries a token that passes.
    csrf_token = response.json()["csrfToken"]
    answer = browser.post("/_isthmus/logout", "{}", content_type="application/json", HTTP_X_CSRFTOKEN=csrf_token)
    assert answer.status_code == 200


def test_csrf_custom_header_name(browser, settings):
    settings.CSRF_HEADER_NAME = "HTTP_X_MY_CSRF"
    body = browser.get("/_isthmus/csrf").json()
    assert body["header"] == "X-My-Csrf"
    answer = browser.post("/_isthmus/logout", "{}", content_type="application/json", HTTP_X_MY_CSRF=body["csrfToken"])
    assert answer.status_code == 200


def test_csrf_with_sessions_storage(browser, settings):
    settings.CSRF_USE_SESSIONS = True
    assert post(browser, "logout").status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_csrf_is_get_only(browser, method):
    response = getattr(browser, method)("/_isthmus/csrf")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


# --- login -----------------------------------------------------------------------------------


def test_login_success(browser, alice, signals):
    response = post(browser, "login", {"username": "alice", "password": "pw-alice-1"})
    assert response.status_code == 200, response.content
    no_store(response)
    assert response.json() == {
        "ok": True,
        "user": {
            "id": str(alice.pk),
            "username": "alice",
            "email": "a@x.org",
            "first_name": "Alice",
            "last_name": "",
            "is_staff": False,
            "is_superuser": False,
        },
        "next": None,
    }
    assert b"pw-alice-1" not in response.content
    # Django's own session cookie, HttpOnly as Django always sets it.
    cookie = browser.cookies["sessionid"]
    assert cookie.value
    assert cookie["httponly"]
    assert who(browser)["username"] == "alice"
    assert [name for name, _ in signals] == ["logged_in"]
    _, kwargs = signals[0]
    assert kwargs["user"] == alice
    assert kwargs["request"].path == "/_isthmus/login"
    alice.refresh_from_db()
    assert alice.last_login is not None


def test_login_rotates_the_session_key_and_the_csrf_token(browser, alice):
    session = browser.session
    session["cart_id"] = 3
    session.save()
    before = browser.cookies["sessionid"].value
    csrf_before = token(browser)
    response = browser.post(
        "/_isthmus/login",
        json.dumps({"username": "alice", "password": "pw-alice-1"}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf_before,
    )
    assert response.status_code == 200
    after = browser.cookies["sessionid"].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    # The anonymous session's data carries over (Django's login keeps it for the same user).
    assert who(browser)["session"] == {"cart_id": "3"}
    # login() rotates the CSRF token: the old one no longer passes.
    stale = browser.post("/_isthmus/logout", "{}", content_type="application/json", HTTP_X_CSRFTOKEN=csrf_before)
    assert stale.status_code == 403


def test_login_form_encoded(browser, alice):
    csrf_token = token(browser)
    response = browser.post(
        "/_isthmus/login",
        {"username": "alice", "password": "pw-alice-1", "csrfmiddlewaretoken": csrf_token},
    )
    assert response.status_code == 200
    assert response.json()["ok"] is True


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong"), ("nobody", "pw-alice-1"), ("ALICE", "pw-alice-1")],
)
def test_bad_credentials_same_answer(browser, alice, signals, username, password):
    """A wrong password and an unknown user get Django's one message: nothing tells them apart."""
    response = post(browser, "login", {"username": username, "password": password})
    assert response.status_code == 400
    no_store(response)
    assert response.json() == {"ok": False, "errors": {"__all__": [INVALID_LOGIN]}}
    assert who(browser)["authenticated"] is False
    assert [name for name, _ in signals] == ["login_failed"]
    # The password is cleansed from what the signal carries.
    assert signals[0][1]["credentials"]["password"] != password


def test_inactive_user_is_refused_without_saying_so(browser, alice):
    alice.is_active = False
    alice.save()
    response = post(browser, "login", {"username": "alice", "password": "pw-alice-1"})
    assert response.status_code == 400
    assert response.json() == {"ok": False, "errors": {"__all__": [INVALID_LOGIN]}}


def test_missing_fields(browser):
    response = post(browser, "login", {"username": "alice", "password": 123})
    assert response.status_code == 400
    assert response.json() == {"ok": False, "errors": {"password": ["This field is required."]}}


@pytest.mark.parametrize("body", ["[1, 2]", "not json", '"text"'])
def test_body_not_an_object(browser, body):
    response = browser.post("/_isthmus/login", body, content_type="application/json", HTTP_X_CSRFTOKEN=token(browser))
    assert response.status_code == 400
    assert response.json()["ok"] is False


def test_login_without_csrf_token_is_403(browser, alice):
    browser.get("/_isthmus/csrf")  # the cookie is there, the header is not
    response = post(browser, "login", {"username": "alice", "password": "pw-alice-1"}, csrf=False)
    assert response.status_code == 403
    assert who(browser)["authenticated"] is False


def test_login_with_a_wrong_csrf_token_is_403(browser, alice):
    browser.get("/_isthmus/csrf")
    response = browser.post(
        "/_isthmus/login",
        json.dumps({"username": "alice", "password": "pw-alice-1"}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN="x" * 64,
    )
    assert response.status_code == 403


def test_login_from_another_origin_is_403(browser, alice):
    response = post(
        browser, "login", {"username": "alice", "password": "pw-alice-1"}, HTTP_ORIGIN="https://evil.example"
    )
    assert response.status_code == 403


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "options"])
@pytest.mark.parametrize("view", ["login", "logout", "password"])
def test_post_only_405_before_csrf(browser, method, view):
    response = getattr(browser, method)(f"/_isthmus/{view}")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["ok"] is False


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/orders?page=2", "/orders?page=2"),
        ("https://evil.example/", None),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("http://testserver/x", None),
        ("", None),
    ],
)
def test_next_is_a_local_path_or_null(browser, alice, given, expected):
    response = post(browser, "login", {"username": "alice", "password": "pw-alice-1", "next": given})
    assert response.json()["next"] == expected


def test_authenticate_gets_the_request(browser, alice, settings):
    settings.AUTHENTICATION_BACKENDS = ["tests.auth_backends.RecordingBackend"]
    auth_backends.seen_requests.clear()
    assert post(browser, "login", {"username": "alice", "password": "pw-alice-1"}).status_code == 200
    assert len(auth_backends.seen_requests) == 1
    assert auth_backends.seen_requests[0].path == "/_isthmus/login"


def test_rate_limiting_backend_refuses_even_the_right_password(browser, alice, settings, signals):
    settings.AUTHENTICATION_BACKENDS = [
        "tests.auth_backends.LockoutBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    response = post(browser, "login", {"username": "alice", "password": "pw-alice-1"}, HTTP_X_TEST_LOCKED="1")
    assert response.status_code == 400
    assert response.json()["errors"] == {"__all__": [INVALID_LOGIN]}
    assert [name for name, _ in signals] == ["login_failed"]
    assert post(browser, "login", {"username": "alice", "password": "pw-alice-1"}).status_code == 200


def test_login_required_middleware_does_not_redirect(browser, alice, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    assert browser.get("/_isthmus/csrf").status_code == 200
    assert post(browser, "login", {"username": "alice", "password": "pw-alice-1"}).status_code == 200


# --- logout ----------------------------------------------------------------------------------


def test_logout(browser, alice, signals):
    post(browser, "login", {"username": "alice", "password": "pw-alice-1"})
    key = browser.cookies["sessionid"].value
    response = post(browser, "logout")
    assert response.status_code == 200
    no_store(response)
    assert response.json() == {"ok": True}
    assert who(browser)["authenticated"] is False
    assert not Session.objects.filter(session_key=key).exists()
    assert [name for name, _ in signals] == ["logged_in", "logged_out"]


def test_logout_anonymous_is_ok(browser):
    assert post(browser, "logout").json() == {"ok": True}


def test_logout_without_csrf_is_403(browser, alice):
    post(browser, "login", {"username": "alice", "password": "pw-alice-1"})
    assert post(browser, "logout", csrf=False).status_code == 403
    assert who(browser)["authenticated"] is True


# --- password --------------------------------------------------------------------------------

STRICT_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


def change(client, old, new1, new2=None):
    return post(
        client,
        "password",
        {"old_password": old, "new_password1": new1, "new_password2": new1 if new2 is None else new2},
    )


def test_password_change(browser, alice):
    other = Client()
    other.force_login(alice)
    assert who(other)["authenticated"] is True
    post(browser, "login", {"username": "alice", "password": "pw-alice-1"})
    key = browser.cookies["sessionid"].value
    response = change(browser, "pw-alice-1", "a much better secret 42")
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True}
    alice.refresh_from_db()
    assert alice.check_password("a much better secret 42")
    # This browser stays logged in, under a new session key; the other one is logged out.
    assert browser.cookies["sessionid"].value != key
    assert who(browser)["username"] == "alice"
    assert who(other)["authenticated"] is False


def test_password_validators_apply(browser, alice, settings):
    settings.AUTH_PASSWORD_VALIDATORS = STRICT_VALIDATORS
    post(browser, "login", {"username": "alice", "password": "pw-alice-1"})
    response = change(browser, "pw-alice-1", "password")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"new_password2"}
    assert "This password is too short. It must contain at least 12 characters." in errors["new_password2"]
    assert "This password is too common." in errors["new_password2"]
    alice.refresh_from_db()
    assert alice.check_password("pw-alice-1")


def test_password_wrong_old_password_and_mismatch(browser, alice):
    post(browser, "login", {"username": "alice", "password": "pw-alice-1"})
    response = change(browser, "nope", "a much better secret 42")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"old_password"}
    response = change(browser, "pw-alice-1", "a much better secret 42", "another secret 43")
    assert response.status_code == 400
    assert response.json()["errors"] == {"new_password2": ["The two password fields didn\u2019t match."]}


def test_password_anonymous_is_403(browser):
    response = change(browser, "x", "a much better secret 42")
    assert response.status_code == 403
    assert response.json()["ok"] is False


def test_password_without_csrf_is_403(browser, alice):
    post(browser, "login", {"username": "alice", "password": "pw-alice-1"})
    response = post(
        browser,
        "password",
        {
            "old_password": "pw-alice-1",
            "new_password1": "a much better secret 42",
            "new_password2": "a much better secret 42",
        },
        csrf=False,
    )
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.check_password("pw-alice-1")
