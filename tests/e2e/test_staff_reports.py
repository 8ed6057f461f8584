"""The shop's Python router policy (examples/shop/policies/staff_reports), first in the
example's router chain beside the Rust defaults: a page guard for /reports. Anonymous
visitors are sent to log in, logged-in users who are not staff get 403 from the gateway
(Django never sees the request), staff reach Django's stock report, which checks staff
again itself; every other path goes on to the prefix router as before."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time

import httpx
import pytest

from stack import Gateway

REPORT = "/reports/stock/"
DEMO_SKUS = ("COF-ESP-1000", "KIT-KETTLE-01", "MUG-CER-350")


def access_target(gw: Gateway, response: httpx.Response, timeout: float = 5.0) -> str:
    """Where the gateway's access log says this response came from (`upstream:django`,
    `refused:staff_reports`, …), found by its request id. The log is written by a
    non-blocking writer: wait for the line."""
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + timeout
    while True:
        for line in gw.log().splitlines():
            if "isthmus::access" in line and re.search(rf'\brequest_id="?{re.escape(request_id)}\b', line):
                found = re.search(r"\btarget=(\S+)", line)
                assert found, line
                return found.group(1)
        assert time.monotonic() < deadline, f"no access log line for request {request_id}"
        time.sleep(0.05)


@pytest.mark.timeout(600)  # the harness compiles the component unless its cache has it
def test_cases_toml_passes_isthmus_plugin_test(stack):
    """The component the gateway runs passes its project's cases.toml in the harness."""
    cases = stack.app / "policies" / "staff_reports" / "cases.toml"
    out = subprocess.run(
        [str(stack.isthmus), "plugin", "test", str(stack.plugins_dir / "staff_reports.wasm"), str(cases)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^\d+ passed, 0 failed$", out.stdout, re.M), out.stdout


def test_the_chain_is_the_python_router_then_the_prefix_router(stack):
    out = stack.check(stack.gateways["main"].config_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "routers: staff_reports → prefix_router" in out.stdout, out.stdout
    route = subprocess.run(
        [str(stack.isthmus), "route", "--config", str(stack.gateways["main"].config_path), "GET", "/api/shop/active/"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert route.returncode == 0, route.stdout + route.stderr
    assert "1. staff_reports: pass" in route.stdout, route.stdout
    assert "decided by `prefix_router`" in route.stdout, route.stdout


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_anonymous_is_sent_to_the_login_page(stack, browser, method):
    gw = stack.gateways["main"]
    r = browser().http.request(method, REPORT)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["location"] == "/admin/login/?next=/reports/stock/"
    assert access_target(gw, r) == "refused:staff_reports"


def test_anonymous_next_keeps_the_query(stack, browser):
    r = browser().http.get(REPORT, params={"format": "csv"})
    assert r.status_code == 302
    # Escaped as Django's redirect_to_login does.
    assert r.headers["location"] == "/admin/login/?next=/reports/stock/%3Fformat%3Dcsv"
    # An unknown session cookie is anonymous too.
    r = httpx.get(f"{stack.gateways['main'].url}{REPORT}", cookies={"sessionid": "not-a-session"}, timeout=20)
    assert r.status_code == 302 and r.headers["location"] == "/admin/login/?next=/reports/stock/"


@pytest.mark.parametrize("username", ["plain", "clerk"])
def test_logged_in_non_staff_get_403_from_the_gateway(stack, browser, username):
    gw = stack.gateways["main"]
    b = browser()
    b.login(username)
    r = b.http.get(REPORT)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.text.strip() == "forbidden: staff only"
    # Refused by the Python router: Django never saw it.
    assert access_target(gw, r) == "refused:staff_reports"
    # The same session still gets everything else as before.
    r = b.http.get("/api/shop/active/")
    assert r.status_code == 200 and access_target(gw, r) == "upstream:django"


@pytest.mark.parametrize("username", ["staffer", "admin"])
def test_staff_get_the_report_from_django(stack, browser, username):
    gw = stack.gateways["main"]
    b = browser()
    b.admin_login(username)
    r = b.http.get(REPORT)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>Stock report</h1>" in r.text
    assert f"For {username} (staff)" in r.text
    for sku in DEMO_SKUS:
        assert f"<td>{sku}</td>" in r.text
    active = len(b.http.get("/api/shop/active/").json()["results"])
    assert f'<strong id="in-stock">{active}</strong>' in r.text
    assert access_target(gw, r) == "upstream:django"


def test_django_checks_staff_itself(stack, browser):
    """Defence in depth: straight to Django, without the gateway, the view's own
    staff_member_required sends a non-staff session to the login page and lets staff in."""
    django = f"http://127.0.0.1:{stack.django_port}"
    plain = browser()
    plain.login("plain")
    r = httpx.get(f"{django}{REPORT}", cookies={"sessionid": plain.session_id}, timeout=20)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["location"] == "/admin/login/?next=/reports/stock/"
    r = httpx.get(f"{django}{REPORT}", timeout=20)
    assert r.status_code == 302 and r.headers["location"].startswith("/admin/login/")
    staff = browser()
    staff.admin_login("staffer")
    r = httpx.get(f"{django}{REPORT}", cookies={"sessionid": staff.session_id}, timeout=20)
    assert r.status_code == 200 and "<h1>Stock report</h1>" in r.text


def test_staff_demoted_in_django_is_refused_within_the_ttl(stack, browser):
    """The router asks the gateway for the user, which asks Django (cached for
    identity_ttl, 2 s here): a staff member demoted in Django gets 403 soon after."""
    gw = stack.gateways["main"]
    b = browser()
    b.admin_login("staffer")
    assert b.http.get(REPORT).status_code == 200
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        db.execute("UPDATE auth_user SET is_staff = 0 WHERE username = 'staffer'")
    try:
        time.sleep(2.5)
        r = b.http.get(REPORT)
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert access_target(gw, r) == "refused:staff_reports"
    finally:
        with sqlite3.connect(stack.db_path, timeout=20) as db:
            db.execute("UPDATE auth_user SET is_staff = 1 WHERE username = 'staffer'")
    time.sleep(2.5)
    assert b.http.get(REPORT).status_code == 200


def test_logout_makes_the_session_anonymous_at_once(stack, browser):
    """Logging out through the gateway drops the cached identity of the old cookie."""
    b = browser()
    b.admin_login("staffer")
    old = b.session_id
    assert b.http.get(REPORT).status_code == 200
    b.logout()
    r = httpx.get(f"{stack.gateways['main'].url}{REPORT}", cookies={"sessionid": old}, timeout=20)
    assert r.status_code == 302, (r.status_code, r.text[:300])


def test_other_paths_are_served_as_before(stack, browser):
    """Outside /reports the Python router passes: the prefix router decides, for
    anonymous visitors and logged-in users alike."""
    gw = stack.gateways["main"]
    anon, plain = browser(), browser()
    plain.login("plain")
    for b in (anon, plain):
        r = b.http.get("/api/shop/active/")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert access_target(gw, r) == "upstream:django"
        r = b.http.get("/admin/login/")
        assert r.status_code == 200 and "csrfmiddlewaretoken" in r.text
        r = b.http.get("/ping")
        assert r.status_code == 200 and r.text.strip('"') == "pong"
        assert access_target(gw, r) == "upstream:reflex"
        r = b.http.get("/static/admin/css/base.css")
        assert r.status_code == 200 and access_target(gw, r) == "static:django_static"
        # The SPA, and its fallback for a path that only looks like the guarded area.
        for path in ("/", "/reportsx"):
            r = b.http.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (path, r.status_code)
            assert access_target(gw, r) == "static:frontend"
