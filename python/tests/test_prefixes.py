"""manage.py isthmus_prefixes and the prefix discovery behind it."""

import importlib
import json
import sys
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(databases=[])


def run(*args):
    out = StringIO()
    call_command("isthmus_prefixes", *args, stdout=out)
    return json.loads(out.getvalue())


def test_root_urlconf(settings):
    report = run()
    assert report == {
        "settings_module": "tests.settings",
        "root_urlconf": "tests.urls",
        "prefixes": ["/_isthmus", "/accounts", "/admin", "/api", "/webhooks"],
        "static_url": "/static/",
        "static_root": settings.STATIC_ROOT,
        "media_url": None,
        "media_root": None,
        "unresolved": [],
        "identity_path": "/_isthmus/identity",
        "login_url": "/accounts/login/",
        "session_cookie": "sessionid",
        "asgi_application": None,
    }


def test_awkward_urlconf():
    report = run("--urlconf", "tests.prefix_urls")
    assert report["prefixes"] == ["/_isthmus", "/about", "/api", "/blog", "/legacy"]
    # Django's own "/", a dynamic first segment, and non-literal heads cannot be prefixes.
    unresolved = report["unresolved"]
    assert len(unresolved) == 4
    assert unresolved[0].startswith("/ (")
    assert "<slug:page>/" in unresolved
    assert r"^feed\.xml$" in unresolved
    assert "item<int:n>" in unresolved


def test_indent_and_media(settings, tmp_path):
    settings.MEDIA_URL = "/media/"
    settings.MEDIA_ROOT = tmp_path
    out = StringIO()
    call_command("isthmus_prefixes", "--indent", "2", stdout=out)
    assert out.getvalue().startswith("{\n  ")
    report = json.loads(out.getvalue())
    assert report["media_url"] == "/media/"
    assert report["media_root"] == str(tmp_path)


def test_static_root_unset(settings):
    settings.STATIC_ROOT = None
    assert run()["static_root"] is None


def test_i18n_patterns(settings):
    from django.conf.urls.i18n import i18n_patterns
    from django.http import HttpResponse
    from django.urls import path

    from isthmus_django.prefixes import discover_prefixes

    settings.LANGUAGES = [("en", "English"), ("fr", "French")]
    patterns = [path("api/", lambda r: HttpResponse()), *i18n_patterns(path("shop/", lambda r: HttpResponse()))]
    assert discover_prefixes(patterns) == (["/api", "/en", "/fr"], [])


def test_identity_path_follows_the_include():
    # tests.prefix_urls mounts the companion at /_isthmus/ too; a URLconf without it has none.
    assert run("--urlconf", "tests.prefix_urls")["identity_path"] == "/_isthmus/identity"
    assert run("--urlconf", "django.contrib.auth.urls")["identity_path"] is None


def test_login_url_name_is_resolved_and_cookie_name_reported(settings):
    settings.LOGIN_URL = "isthmus:identity"
    settings.SESSION_COOKIE_NAME = "shop_session"
    report = run()
    assert report["login_url"] == "/_isthmus/identity"
    assert report["session_cookie"] == "shop_session"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A startproject-like package `proj` (settings, wsgi, asgi) on sys.path."""
    package = tmp_path / "proj"
    package.mkdir()
    for name in ("__init__", "settings", "wsgi", "asgi"):
        (package / f"{name}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [m for m in sys.modules if m == "proj" or m.startswith("proj.")]:
        del sys.modules[name]


def test_asgi_application_candidates(settings, project):
    settings.WSGI_APPLICATION = "proj.wsgi.application"
    assert run()["asgi_application"] == "proj.asgi:application"
    # ASGI_APPLICATION (Channels) wins when its module exists.
    settings.ASGI_APPLICATION = "proj.settings.app"
    assert run()["asgi_application"] == "proj.settings:app"
    # Beside the settings module, as startproject lays it out.
    del settings.ASGI_APPLICATION
    settings.WSGI_APPLICATION = None
    settings.SETTINGS_MODULE = "proj.settings"
    assert run()["asgi_application"] == "proj.asgi:application"
    (project / "asgi.py").unlink()
    importlib.invalidate_caches()
    assert run()["asgi_application"] is None
