"""manage.py isthmus_prefixes and the prefix discovery behind it."""

import json
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
        "prefixes": ["/_isthmus", "/accounts", "/admin", "/api", "/webhooks"],
        "static_url": "/static/",
        "static_root": settings.STATIC_ROOT,
        "media_url": None,
        "media_root": None,
        "unresolved": [],
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
    assert report["media_url"] == "/media/" and report["media_root"] == str(tmp_path)


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
