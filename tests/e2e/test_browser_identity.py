"""One identity per browser, in a real browser: headless Chromium (tests/browser/driver.mjs,
driven step by step from here through chromium.py) against a gateway serving the shop's
exported SPA, with the real Django and Reflex of the stack behind it.

- Two tabs of one browser: a login with the Reflex form (/login/) in one tab re-renders
  the other by itself (the gateway's rebind, then ShopState.on_identity_change), and
  that tab's next staff action runs as staff; a logout in one tab makes the other's next
  staff action a refusal, without reloading it.
- The Reflex login keeps the session cookie HttpOnly, and the password goes to Django
  only: never into a WebSocket frame.
- Uploads carry the user: the handler names the uploader; an anonymous upload is refused
  by the gateway (403) and the page sent to the login page; a forged X-Isthmus-Identity
  never reaches the handler.
- A browser id copied into another browser only makes that browser re-read its own
  (absent) session.
- A wrong password shows Django's message and logs nobody in.
- The control: without `on_identity_change` the other tab still follows the session on
  its next event, but nothing re-renders it (so the first test can fail).

What a handler saw is read from the page (the greeting, "N product(s) restocked by
<user>", "… from <user>" of the upload handler), which the handlers write from
`self.django_user`; what the gateway refused from its log.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from isthmus_reflex import encode_identity_header, make_injection

from bridge_client import ROOT, SHOP, var
from chromium import Page
from spa import (
    open_shop,
    press_staff_action,
    reflex_login,
    say,
    staff_action_ran_as,
    start_spa_gateway,
    wait_response,
    wait_shop,
)
from stack import PASSWORD, Gateway

pytestmark = pytest.mark.timeout(240)

NAME = "identity"  # this module's gateway (serving the exported SPA)
UPLOAD = f"{ROOT}.shop_frontend___state____upload_state"
RECEIVE = f"{UPLOAD}.receive"
STAFF_ACTION = f"{SHOP}.restock"

DJANGO_LOGIN_ERROR = "Please enter a correct username and password"

#: How long another tab may take to show a login or logout by itself.
FOLLOW_TIMEOUT = 10.0


# -- the gateway ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def identity_site(stack, spa_export):
    """A gateway serving the exported SPA on its port, with the example's [bridge]
    (on_identity_change included)."""
    start_spa_gateway(stack, NAME, spa_export)
    r = httpx.get(f"{stack.gateways[NAME].url}/api/shop/products/", timeout=20)
    r.raise_for_status()
    assert any(p["is_active"] for p in r.json()), "no active product: the shop page would stay empty"
    yield spa_export
    if NAME in stack.gateways:
        stack.stop_gateway(NAME)


@pytest.fixture
def gw(stack, identity_site) -> Gateway:
    return stack.gateways[NAME]


# -- steps ------------------------------------------------------------------------------------






def wait_all_responses(tab: Page, path: str, since: int, timeout: float = 15) -> list[dict]:
    """Every response for `path` after `since`, once there is one (the driver logs a
    response when its body has been read, which may be after the page used it)."""
    wait_response(tab, path, since, timeout)
    return tab.responses(path, since)




def mark(tab: Page) -> str:
    """A value in the page's window: still there later means the page was not reloaded."""
    value = secrets.token_hex(6)
    tab.evaluate(f"window.__isthmusMark = {json.dumps(value)}")
    return value


def not_reloaded(tab: Page, value: str) -> bool:
    return tab.evaluate("window.__isthmusMark ?? null") == value


def deltas(tab: Page, state: str, since: int = 0) -> list[dict[str, Any]]:
    """The deltas of `state` the page received on its WebSocket after `since`, in order,
    with var names as in the state (Reflex's `_rx_state_` suffix removed)."""
    out = []
    for frame in tab.ws_frames("ws-received", since):
        if not frame.startswith("42/_event,"):
            continue
        args = json.loads(frame[len("42/_event,") :])
        delta = (args[1].get("delta") or {}).get(state) if len(args) > 1 and isinstance(args[1], dict) else None
        if delta:
            out.append({k.removesuffix("_rx_state_"): v for k, v in delta.items()})
    return out


def events_sent(tab: Page, since: int = 0) -> list[str]:
    """Socket.IO events the page sent after `since` (pings and pongs left out)."""
    return [f for f in tab.ws_frames("ws-sent", since) if f.startswith("42/_event,")]






def sent_to_login(tab: Page, next_: str = "/") -> dict:
    """The page left for Django's login page with `next_` (a full page load)."""
    url = tab.wait_for_path("/admin/login/", timeout=15)
    query = parse_qs(urlsplit(url).query)
    assert query == {"next": [next_]}, url
    tab.wait_for("document.querySelector('form input[name=password]') !== null")
    return {"url": url, "errornote": tab.text(".errornote") or ""}


def refusals(gw: Gateway, name: str = STAFF_ACTION) -> int:
    return gw.refusals(name)


def refused_by_gateway(gw: Gateway, before: int, name: str = STAFF_ACTION) -> bool:
    return gw.refusals_settled(name, before + 1) == before + 1


def upload_refusals(gw: Gateway) -> int:
    """The gateway's `upload refused` log lines for the shop's upload handler."""
    return sum(1 for line in gw.log().splitlines() if "upload refused" in line and f"handler={RECEIVE}" in line)


# -- 1. a login in one tab reaches the other --------------------------------------------------
def test_login_in_one_tab_reaches_the_other(gw, chromium, request):
    """Two tabs of one browser on the shop page, anonymous. Tab 1 logs in as staffer with
    the Reflex form; tab 2, untouched, greets staffer within seconds without a reload
    (the gateway's rebind, then its on_identity_change), and its next staff action runs
    as staffer."""
    browser = chromium.context()
    tab1, tab2 = browser.page(), browser.page()
    open_shop(tab1, gw)
    open_shop(tab2, gw)
    assert browser.cookies()["isthmus_browser"]["value"], "the gateway gave the browser no id"
    page2 = mark(tab2)
    since = chromium.seq()

    answer = reflex_login(tab1, gw, "staffer")
    assert answer["status"] == 200 and json.loads(answer["body"])["ok"] is True, answer

    wait_shop(tab2, "Hello, staffer", timeout=FOLLOW_TIMEOUT)
    followed = time.monotonic() - answer["submitted"]
    wait_shop(tab1, "Hello, staffer")  # the form's handler went back to / (next=/)
    assert not_reloaded(tab2, page2), "tab 2 was reloaded"
    assert tab2.path == "/", tab2.url
    # Pushed, not asked for: tab 2 sent no event; it re-read its session (the rebind
    # request, answered by the gateway) and then received on_identity_change's delta.
    assert events_sent(tab2, since) == [], events_sent(tab2, since)
    rebinds = [r["status"] for r in wait_all_responses(tab2, "/_isthmus/rebind", since)]
    assert rebinds == [204], rebinds
    changes = [d for d in deltas(tab2, SHOP, since) if "identity_changes" in d]
    assert len(changes) == 1, deltas(tab2, SHOP, since)
    assert changes[0]["identity_changes"] == 1 and changes[0]["greeting"] == "Hello, staffer", changes
    assert changes[0]["is_staff"] is True, changes
    # isthmus_reflex.UserState came with that delta, with no handler of the page's own.
    assert tab2.text("#signed-in") == "Signed in as staffer (staff)"

    press_staff_action(tab2)
    assert staff_action_ran_as(tab2, "staffer")
    assert tab2.path == "/"
    say(
        request,
        f"\ntest_login_in_one_tab_reaches_the_other: tab 2 greeted staffer {followed:.1f}s after tab 1 pressed Log in",
    )


# -- 2. a logout in one tab reaches the other -------------------------------------------------
def test_logout_in_one_tab_refuses_the_other(gw, chromium):
    """Both tabs logged in as staffer; tab 1 presses "Log out": tab 2, not reloaded,
    is refused its next staff action by the gateway and sent to the login page."""
    browser = chromium.context()
    tab1, tab2 = browser.page(), browser.page()
    answer = reflex_login(tab1, gw, "staffer")
    assert answer["status"] == 200, answer
    wait_shop(tab1, "Hello, staffer")
    open_shop(tab2, gw, "Hello, staffer")
    page2 = mark(tab2)
    before = refusals(gw)

    since = chromium.seq()
    tab1.click("#logout")
    logout = wait_response(tab1, "/_isthmus/logout", since)
    assert logout["status"] == 200 and json.loads(logout["body"]) == {"ok": True}, logout
    assert "sessionid" not in browser.cookies(), "Django's logout left a session cookie"
    assert not_reloaded(tab2, page2), "tab 2 was reloaded"

    press_staff_action(tab2)
    refused = sent_to_login(tab2, next_="/")
    assert "authenticated as" not in refused["errornote"], refused  # Django sees nobody
    assert refused_by_gateway(gw, before), f"the gateway did not refuse {STAFF_ACTION}:\n{gw.log()[-3000:]}"
    # Nothing ran as staffer after the logout.
    assert not any("restocked by" in (d.get("message") or "") for d in deltas(tab2, SHOP, since))
    # Tab 1 shows the logout too (its own callback and on_identity_change).
    wait_shop(tab1, "Hello, anonymous")


# -- 3. HttpOnly session, no password on the socket ---------------------------------------------
def test_reflex_login_keeps_the_session_httponly_and_the_password_off_the_socket(stack, gw, chromium):
    """The Reflex login form logs in (the page greets staffer) while the page's script
    can read neither the session cookie nor the gateway's browser cookie, and the
    password appears in no WebSocket frame, in either direction, nor in the logs."""
    browser = chromium.context()
    tab = browser.page()
    answer = reflex_login(tab, gw, "staffer")
    assert answer["status"] == 200, answer
    wait_shop(tab, "Hello, staffer")

    cookies = browser.cookies()
    assert cookies["sessionid"]["httpOnly"] is True, cookies["sessionid"]
    assert cookies["isthmus_browser"]["httpOnly"] is True, cookies["isthmus_browser"]
    assert cookies["isthmus_browser"]["sameSite"] == "Lax", cookies["isthmus_browser"]
    visible = tab.evaluate("document.cookie")
    assert "csrftoken=" in visible, visible  # document.cookie is readable at all…
    assert "sessionid" not in visible and "isthmus_browser" not in visible, visible  # …but not these

    # The password went in exactly one request: the form's POST to Django.
    log = tab.log()
    carrying = [e for e in log if e["kind"] == "request" and PASSWORD in (e.get("postData") or "") + e["url"]]
    assert [urlsplit(e["url"]).path for e in carrying] == ["/_isthmus/login"], carrying
    frames = [e for e in log if e["kind"] in ("ws-sent", "ws-received")]
    # The socket carried the login's outcome (LoginState.on_login with Django's answer)…
    assert any("login_state.on_login" in e["payload"] and '"username":"staffer"' in e["payload"] for e in frames)
    # …and never the password.
    leaked = [e for e in frames if PASSWORD in e["payload"]]
    assert not leaked, leaked
    for name in ("isthmus-main", f"isthmus-{NAME}"):  # the main one prints Reflex's output
        assert PASSWORD not in stack.procs[name].log.read_text(errors="replace"), f"the password is in {name}'s log"


# -- 4. uploads carry the user ----------------------------------------------------------------
UPLOAD_INPUT = "#files input[type=file]"
A_FILE = ("hello.txt", "text/plain", b"hello from the e2e suite\n")


def test_upload_names_the_logged_in_uploader(gw, chromium):
    """Logged in (as plain, a customer) with the Reflex form, an upload on /upload
    reaches its @login_required handler, which reports the uploader."""
    tab = chromium.context().page()
    answer = reflex_login(tab, gw, "plain", next_="/upload")
    assert answer["status"] == 200, answer
    tab.wait_for_path("/upload")
    before = upload_refusals(gw)

    since = chromium.seq()
    tab.set_input_files(UPLOAD_INPUT, [A_FILE])
    tab.click("#upload")
    reported = tab.wait_for_text("#last-upload", "t.length > 0")
    assert reported == f"1 file(s), {len(A_FILE[2])} bytes, from plain", reported
    assert [r["status"] for r in wait_all_responses(tab, "/_upload", since)] == [200]
    assert upload_refusals(gw) == before


def test_anonymous_upload_is_refused_and_sent_to_login(gw, chromium):
    """Nobody logged in: the gateway answers the upload 403 before Reflex sees it and
    sends the uploading page to the login page."""
    tab = chromium.context().page()
    tab.goto(f"{gw.url}/upload")
    tab.wait_for("document.querySelector('#upload') !== null")
    # The page's socket is connected (the gateway finds the page by its Reflex token).
    deadline = time.monotonic() + 15
    while not any(f.startswith("40/_event,") for f in tab.ws_frames("ws-received")):
        assert time.monotonic() < deadline, "the upload page did not connect its socket"
        time.sleep(0.1)
    before = upload_refusals(gw)

    since = chromium.seq()
    tab.set_input_files(UPLOAD_INPUT, [A_FILE])
    tab.click("#upload")
    sent_to_login(tab, next_="/upload/")  # the static mount serves /upload as /upload/
    assert [r["status"] for r in wait_all_responses(tab, "/_upload", since)] == [403]
    assert not any(d.get("last_upload") for d in deltas(tab, UPLOAD, since)), "the handler ran"
    deadline = time.monotonic() + 5  # the gateway's log is written asynchronously
    while upload_refusals(gw) < before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upload_refusals(gw) == before + 1, gw.log()[-3000:]


def _last_uploads(ndjson: str) -> list[str]:
    """What the upload handler wrote (UploadState.last_upload) in an upload's NDJSON answer."""
    out = []
    for line in ndjson.splitlines():
        if line.strip():
            delta = (json.loads(line).get("delta") or {}).get(UPLOAD, {})
            if delta.get(var("last_upload")):
                out.append(delta[var("last_upload")])
    return out


def test_forged_upload_identity_never_reaches_the_handler(stack, browser):
    """A raw upload with a forged X-Isthmus-Identity, validly signed with the real bridge
    secret and claiming admin: without a session the gateway refuses it (403); with
    plain's session the handler sees plain (the gateway replaced the header). Sent
    straight to Reflex, the same header *is* believed: the control."""
    gw = stack.gateways["main"]
    admin = {
        "authenticated": True, "user_id": "1", "username": "admin", "email": "", "is_staff": True,
        "is_superuser": True, "groups": [], "permissions": [], "session": {},
    }  # fmt: skip
    forged = encode_identity_header(make_injection(admin, stack.bridge_secret, iat=int(time.time())))

    def upload(base: str, cookies: httpx.Cookies | None = None) -> httpx.Response:
        headers = {
            "Reflex-Client-Token": str(uuid.uuid4()),
            "Reflex-Event-Handler": RECEIVE,
            "Referer": f"{base}/upload/",
            "X-Isthmus-Identity": forged,
        }
        files = {"files": ("forged.txt", b"forged", "text/plain")}
        with httpx.Client(timeout=30, cookies=cookies) as http:
            return http.post(f"{base}/_upload", headers=headers, files=files)

    r = upload(gw.url)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.text.strip() == "upload refused (login_required:/admin/login/)", r.text

    b = browser()
    b.login("plain")
    r = upload(gw.url, cookies=b.http.cookies)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert _last_uploads(r.text) == ["1 file(s), 6 bytes, from plain"], r.text[:2000]

    # The control: Reflex itself trusts a validly signed header, so only the gateway's
    # stripping keeps it out.
    r = upload(f"http://127.0.0.1:{stack.reflex_port}")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert _last_uploads(r.text) == ["1 file(s), 6 bytes, from admin"], r.text[:2000]


# -- 5. a copied browser id ---------------------------------------------------------------------
def test_copied_browser_cookie_does_not_carry_the_login(gw, chromium):
    """A second browser holding a copy of the first one's isthmus_browser cookie and no
    session: when the first logs in, the copier is asked to re-read its session too, and
    stays anonymous (its next staff action is refused)."""
    first = chromium.context()
    first_tab = first.page()
    open_shop(first_tab, gw)
    browser_id = first.cookies()["isthmus_browser"]["value"]

    copier = chromium.context()
    copier.add_cookie("isthmus_browser", browser_id, gw.url)
    copier_tab = copier.page()
    open_shop(copier_tab, gw)
    assert copier.cookies()["isthmus_browser"]["value"] == browser_id, "the gateway replaced the copied id"
    assert "sessionid" not in copier.cookies()
    copier_page = mark(copier_tab)
    since = chromium.seq()

    answer = reflex_login(first.page(), gw, "staffer")
    assert answer["status"] == 200, answer
    wait_shop(first_tab, "Hello, staffer", timeout=FOLLOW_TIMEOUT)  # the real browser follows

    # The copier was asked too (same id) and re-read its own cookies: no session.
    wait_response(copier_tab, "/_isthmus/rebind", since)
    assert [r["status"] for r in copier_tab.responses("/_isthmus/rebind", since)] == [204]
    time.sleep(1.0)  # an identity change would have arrived by now (the first tab's did)
    assert [d for d in deltas(copier_tab, SHOP, since) if "identity_changes" in d] == []
    assert copier_tab.text("#greeting") == "Hello, anonymous"
    assert not_reloaded(copier_tab, copier_page)

    before = refusals(gw)
    press_staff_action(copier_tab)
    refused = sent_to_login(copier_tab, next_="/")
    assert "authenticated as" not in refused["errornote"], refused
    assert refused_by_gateway(gw, before)


# -- 6. a wrong password ------------------------------------------------------------------------
def test_wrong_password_shows_djangos_error(gw, chromium):
    browser = chromium.context()
    tab = browser.page()
    wrong = "wrong-" + secrets.token_hex(4)
    answer = reflex_login(tab, gw, "staffer", password=wrong)
    assert answer["status"] == 400, answer
    shown = tab.wait_for_text("#login-error", "t.length > 0")
    assert DJANGO_LOGIN_ERROR in shown, shown
    assert tab.path in ("/login", "/login/"), tab.url
    assert "sessionid" not in browser.cookies()
    assert not any(wrong in f for f in tab.ws_frames("ws-sent") + tab.ws_frames("ws-received"))
    open_shop(tab, gw, "Hello, anonymous")


# -- the control: without on_identity_change ----------------------------------------------------
def _without_identity_change(config: dict) -> None:
    del config["bridge"]["on_identity_change"]


def test_without_on_identity_change_the_other_tab_is_not_rerendered(stack, identity_site, chromium):
    """The same two tabs behind a gateway without `on_identity_change`: tab 2 still
    re-reads its session (its next event runs as staffer) but nothing re-renders it, so
    test_login_in_one_tab_reaches_the_other fails without the handler."""
    stack.stop_gateway(NAME)
    try:
        plain = start_spa_gateway(stack, f"{NAME}-plain", identity_site, edit=_without_identity_change)
        try:
            run_without_identity_change(plain, chromium)
        finally:
            stack.stop_gateway(f"{NAME}-plain")
    finally:
        start_spa_gateway(stack, NAME, identity_site)


def run_without_identity_change(gw: Gateway, chromium) -> None:
    assert "on_identity_change" not in gw.config_path.read_text()
    browser = chromium.context()
    tab1, tab2 = browser.page(), browser.page()
    open_shop(tab1, gw)
    open_shop(tab2, gw)
    page2 = mark(tab2)
    since = chromium.seq()

    answer = reflex_login(tab1, gw, "staffer")
    assert answer["status"] == 200, answer
    wait_shop(tab1, "Hello, staffer")  # tab 1's own page load greets the new user
    wait_response(tab2, "/_isthmus/rebind", since)  # tab 2 re-read its session…
    time.sleep(3.0)
    assert tab2.text("#greeting") == "Hello, anonymous"  # …but was not re-rendered
    assert [d for d in deltas(tab2, SHOP, since) if "identity_changes" in d] == []
    assert not_reloaded(tab2, page2)

    press_staff_action(tab2)
    assert staff_action_ran_as(tab2, "staffer")  # its next event is staffer's


# -- Django's messages on the Reflex page ------------------------------------------------------
def test_django_messages_show_on_the_reflex_page_once(gw, chromium):
    """A message added by a Django view (the admin's warning about a missing object) is
    shown by the shop page (UserState.messages, fetched from /_isthmus/messages); Django
    hands it out once, and a reload does not show it twice."""
    tab = chromium.context().page()
    answer = reflex_login(tab, gw, "admin")
    assert answer["status"] == 200, answer
    wait_shop(tab, "Hello, admin")
    assert tab.text("#messages") == ""
    # Not followed: no Django page renders (and so consumes) the message.
    kind = tab.evaluate(
        'fetch("/admin/shop/product/999999/change/", {redirect: "manual", credentials: "same-origin"}).then(r => r.type)'
    )
    assert kind == "opaqueredirect", kind
    open_shop(tab, gw, "Hello, admin")
    shown = tab.wait_for_text("#messages", "t.includes('999999')")
    assert "exist" in shown, shown
    since = tab.chromium.seq()
    open_shop(tab, gw, "Hello, admin")
    fetched = wait_response(tab, "/_isthmus/messages", since)
    assert json.loads(fetched["body"]) == {"messages": []}, fetched
    # The tab's Reflex state keeps what it received (until dismissed), and only once.
    assert tab.text("#messages").count("999999") == 1, tab.text("#messages")
