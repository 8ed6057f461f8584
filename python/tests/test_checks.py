"""System checks isthmus.W001-W010 / E001-E004."""

import pytest
from django.core import checks
from django.core.management import call_command

from isthmus_django import checks as isthmus_checks

pytestmark = pytest.mark.django_db(databases=[])


def ids(**_):
    return sorted(
        m.id
        for fn in (
            isthmus_checks.check_identity_secret,
            isthmus_checks.check_proxy_settings,
            isthmus_checks.check_hosts_and_origins,
            isthmus_checks.check_middleware_and_keys,
            isthmus_checks.check_tls_settings,
        )
        for m in fn()
    )


def test_well_configured_project_is_clean():
    assert ids() == []


def test_registered_with_django():
    registered = {m.id for m in checks.run_checks() if m.id.startswith("isthmus.")}
    assert registered == set()
    call_command("check", "--fail-level", "WARNING")


def test_registered_messages_show_up(settings):
    settings.SECURE_PROXY_SSL_HEADER = None
    assert "isthmus.W001" in {m.id for m in checks.run_checks()}


@pytest.mark.parametrize("value", [None, ("HTTP_X_FORWARDED_PROTOCOL", "https"), ("HTTP_X_FORWARDED_PROTO", "on")])
def test_w001_proxy_ssl_header(settings, value):
    settings.SECURE_PROXY_SSL_HEADER = value
    assert ids() == ["isthmus.W001"]


def test_w001_accepts_a_list(settings):
    settings.SECURE_PROXY_SSL_HEADER = ["HTTP_X_FORWARDED_PROTO", "https"]
    assert ids() == []


def test_w002_forwarded_host(settings):
    settings.USE_X_FORWARDED_HOST = False
    assert ids() == ["isthmus.W002"]


def test_w003_csrf_trusted_origins_empty_outside_debug(settings):
    settings.CSRF_TRUSTED_ORIGINS = []
    del settings.ISTHMUS_PUBLIC_ORIGIN
    assert ids() == ["isthmus.W003"]
    settings.DEBUG = True
    assert ids() == []


def test_w004_allowed_hosts_empty(settings):
    settings.ALLOWED_HOSTS = []
    assert ids() == ["isthmus.W004"]
    # In DEBUG Django allows localhost names with an empty list, and so does the check.
    settings.DEBUG = True
    assert ids() == []


def test_w005_public_host_not_allowed(settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.ISTHMUS_PUBLIC_ORIGIN = "https://app.example.com"
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com"]
    assert ids() == ["isthmus.W005"]
    settings.ALLOWED_HOSTS = [".example.com"]
    assert ids() == []


def test_w005_ipv6_and_wildcard(settings):
    settings.ISTHMUS_PUBLIC_ORIGIN = "http://[::1]:3000"
    settings.CSRF_TRUSTED_ORIGINS = ["http://[::1]:3000"]
    assert ids() == ["isthmus.W005"]
    settings.ALLOWED_HOSTS = ["[::1]"]
    assert ids() == []
    settings.ALLOWED_HOSTS = ["*"]
    assert ids() == []


def test_w006_public_origin_not_trusted(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["http://127.0.0.1:8000"]
    assert ids() == ["isthmus.W006"]
    settings.CSRF_TRUSTED_ORIGINS = ["http://127.0.0.1:3000/"]
    assert ids() == []


def test_e003_malformed_public_origin(settings):
    settings.ISTHMUS_PUBLIC_ORIGIN = "127.0.0.1:3000"
    assert ids() == ["isthmus.E003"]


def test_e001_missing_secret(settings, monkeypatch):
    settings.ISTHMUS_IDENTITY_SECRET = ""
    monkeypatch.delenv("ISTHMUS_IDENTITY_SECRET", raising=False)
    assert ids() == ["isthmus.E001"]
    monkeypatch.setenv("ISTHMUS_IDENTITY_SECRET", "e" * 32)
    assert ids() == []


def test_e001_short_secret(settings):
    settings.ISTHMUS_IDENTITY_SECRET = "x" * 31
    assert ids() == ["isthmus.E001"]
    settings.ISTHMUS_IDENTITY_SECRET = "x" * 32
    assert ids() == []


def test_e001_blocks_manage_py_check(settings):
    from django.core.management.base import SystemCheckError

    settings.ISTHMUS_IDENTITY_SECRET = "short"
    with pytest.raises(SystemCheckError, match=r"isthmus\.E001"):
        call_command("check")


def test_w007_middleware(settings):
    settings.MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
    assert ids() == ["isthmus.W007"]


@pytest.mark.parametrize("value", ["cart_id", ["cart_id", 3], 7])
def test_e002_session_keys_type(settings, value):
    settings.ISTHMUS_SESSION_KEYS = value
    assert ids() == ["isthmus.E002"]


def test_w008_auth_session_keys(settings):
    settings.ISTHMUS_SESSION_KEYS = ["cart_id", "_auth_user_hash"]
    assert ids() == ["isthmus.W008"]


def test_silencing(settings):
    settings.USE_X_FORWARDED_HOST = False
    settings.SILENCED_SYSTEM_CHECKS = ["isthmus.W002"]
    call_command("check", "--fail-level", "WARNING")


def test_tls_checks_only_for_an_https_origin(settings):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    assert ids() == []  # the test settings' origin is http
    settings.ISTHMUS_PUBLIC_ORIGIN = "https://shop.example"
    settings.CSRF_TRUSTED_ORIGINS = ["https://shop.example"]
    settings.ALLOWED_HOSTS = ["shop.example"]
    assert ids() == ["isthmus.W009", "isthmus.W010"]
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    assert ids() == []


def test_e004_https_origin_without_the_proxy_ssl_header(settings):
    settings.ISTHMUS_PUBLIC_ORIGIN = "https://shop.example"
    settings.CSRF_TRUSTED_ORIGINS = ["https://shop.example"]
    settings.ALLOWED_HOSTS = ["shop.example"]
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_PROXY_SSL_HEADER = None
    assert ids() == ["isthmus.E004", "isthmus.W001"]
    messages = [m for m in isthmus_checks.check_tls_settings() if m.id == "isthmus.E004"]
    assert "403" in (messages[0].hint or "")
    assert messages[0].level == checks.ERROR
