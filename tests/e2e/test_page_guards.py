"""Page guards at both levels, as a visitor meets them, with the shop's own rule
`{ page = "/account*", require = "authenticated" }` (examples/shop/isthmus.toml):

- the gateway: an anonymous first load of /account is a 302 to the Reflex login page
  with `?next=`, before any of the SPA is served; a logged-in visitor gets the page;
- the login page brings the visitor back to /account once Django has logged them in;
- the companion (isthmus_reflex.guard_pages in the Reflex app): after logging out, the
  browser's Back button takes the still-running SPA to /account by client-side
  navigation, with no HTTP request the gateway could refuse; the page's events are
  refused in the Reflex process and the page leaves for the login page.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from chromium import Page
from spa import PASSWORD_INPUT, SUBMIT, USERNAME_INPUT, open_shop, start_spa_gateway, wait_shop
from stack import PASSWORD, Gateway

pytestmark = pytest.mark.timeout(240)

NAME = "guards"
HEADING = "Change your password"


@pytest.fixture(scope="module")
def gw(stack, spa_export) -> Gateway:
    gateway = start_spa_gateway(stack, NAME, spa_export)
    yield gateway
    stack.stop_gateway(NAME)


def at_login(url: str) -> dict[str, list[str]]:
    parts = urlsplit(url)
    assert parts.path == "/login/", url
    return parse_qs(parts.query)


def test_the_gateway_refuses_the_first_load_before_the_spa(gw, browser):
    anonymous = httpx.get(f"{gw.url}/account?tab=password", timeout=10)
    assert anonymous.status_code == 302, anonymous.text[:300]
    assert anonymous.headers["location"] == "/login/?next=/account%3Ftab%3Dpassword"
    assert "<html" not in anonymous.text.lower()
    # Open pages are served to everyone; the login page itself is not guarded.
    for path in ("/", "/login/"):
        assert httpx.get(f"{gw.url}{path}", timeout=10).status_code == 200, path
    member = browser(gw.url)
    member.login("plain")
    page = member.http.get("/account/", follow_redirects=True)
    assert page.status_code == 200
    assert "<html" in page.text.lower()


def test_login_brings_the_visitor_back_and_back_after_logout_is_refused(gw, chromium):
    user = "plain"
    tab: Page = chromium.context().page()
    tab.goto(f"{gw.url}/account")
    assert at_login(tab.wait_for_path("/login/")) == {"next": ["/account"]}
    tab.wait_for(f"document.querySelector({USERNAME_INPUT!r}) !== null")
    tab.fill(USERNAME_INPUT, user)
    tab.fill(PASSWORD_INPUT, PASSWORD)
    tab.click(SUBMIT)
    tab.wait_for_path("/account")
    tab.wait_for_text("h1, h2, h3", f"t === {HEADING!r}")
    # To the shop inside the app, then log out there: the page follows (anonymous).
    tab.click("a[href='/']")
    wait_shop(tab, f"Hello, {user}")
    tab.click("#logout")
    wait_shop(tab, "Hello, anonymous")
    # Back: the SPA shows /account again without asking the gateway; the companion
    # refuses the page's events and sends it to the login page, to come back after.
    tab.evaluate("history.back()")
    assert at_login(tab.wait_for_path("/login/")) == {"next": ["/account"]}


def test_a_logged_in_visitor_opens_the_guarded_page(gw, chromium):
    user = "plain"
    tab: Page = chromium.context().page()
    open_shop(tab, gw)
    tab.goto(f"{gw.url}/login/?next=/")
    tab.wait_for(f"document.querySelector({USERNAME_INPUT!r}) !== null")
    tab.fill(USERNAME_INPUT, user)
    tab.fill(PASSWORD_INPUT, PASSWORD)
    tab.click(SUBMIT)
    wait_shop(tab, f"Hello, {user}")
    # The "Change password" link: client-side navigation, allowed by both levels.
    tab.click("#account")
    tab.wait_for_path("/account")
    tab.wait_for_text("h1, h2, h3", f"t === {HEADING!r}")
    assert urlsplit(tab.url).path == "/account"
