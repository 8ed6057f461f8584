"""Session fixture: the shop example running for real behind the gateway.

One temporary folder holds a copy of examples/shop, its SQLite DB, STATIC_ROOT, the
plugins, the generated gateway configs and every process's log (stack.running_stack;
test_ported.py runs examples/ported the same way). Set ISTHMUS_E2E_KEEP=1 to keep it
after the run (its path is printed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import AsyncIterator, Callable

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridge_client import BridgeClient  # noqa: E402
from chromium import Chromium  # noqa: E402
from spa import SpaExport, check_prerequisites, export_spa  # noqa: E402
from stack import PASSWORD, SHOP, TIMINGS, Stack, free_port, running_stack  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
#: Screenshots of the browser tests' pages when a test fails.
BROWSER_OUT = REPO / "test-output" / "browser"


def prepare_shop(s: Stack) -> None:
    s.manage("migrate", "--noinput", "-v0")
    s.manage("collectstatic", "--noinput", "-v0")
    s.manage("shop_demo_users", "--password", PASSWORD)


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The shop. A test module may define a `stack` of its own (test_ported.py): then
    `browser`, `sockets` and the logs of its failures are that stack's."""
    with running_stack(SHOP, prepare_shop) as s:
        yield s


#: pytest-timeout counts a test's fixtures in its time, so the first test that uses the
#: session's `stack` also pays for starting it: Django, Reflex and a gateway compiling the
#: ~19 MB Python router for the first time (over a minute with a debug build on a busy
#: machine). That test gets this long; every later one the configured timeout.
STACK_SETUP_TIMEOUT = 600
#: The same for the first test that uses `spa_export`: `reflex export` (bun install, vite
#: build) can take minutes on a busy machine the first time, on top of the stack.
SPA_EXPORT_TIMEOUT = 900


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected
def pytest_collection_modifyitems(session, config, items):  # noqa: ARG001
    for fixture, least in (("stack", STACK_SETUP_TIMEOUT), ("spa_export", SPA_EXPORT_TIMEOUT)):
        # The first test of each definition of the fixture (a module may define its own).
        seen: set[object] = set()
        for item in items:
            info = getattr(item, "_fixtureinfo", None)
            defs = info.name2fixturedefs.get(fixture) if info is not None else None
            if not defs or defs[-1] in seen:
                continue
            seen.add(defs[-1])
            marker = item.get_closest_marker("timeout")
            current = marker.args[0] if marker and marker.args else config.getini("timeout")
            if float(current or 0) < least:
                item.add_marker(pytest.mark.timeout(least))


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if TIMINGS:
        terminalreporter.write_line(
            "e2e set-up: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items())
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every process's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        s = item.funcargs.get("stack")
        if isinstance(s, Stack):
            report.sections.append(("process logs (tails)", s.logs()))
        browser_ = item.funcargs.get("chromium")
        if isinstance(browser_, Chromium):
            # The pages are still open (the fixture's teardown comes later): what they show.
            shots = []
            for page in browser_.pages:
                try:
                    shots.append(f"{page.handle} {page.url}: {page.screenshot(BROWSER_OUT / f'{item.name}-FAILED-{page.handle}.png')}")
                except Exception as e:  # a closed context, a dead driver
                    shots.append(f"{page.handle}: no screenshot ({e})")
            report.sections.append(("browser (driver log tail, screenshots)", browser_.log_tail() + "\n" + "\n".join(shots)))


# -- headless Chromium ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def spa_export(stack: Stack, request) -> SpaExport:
    """The shop's SPA exported once per session for an origin of its own (spa.py): the
    browser test modules serve it, one module at a time, on its port."""
    check_prerequisites()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    client, took = export_spa(stack, origin)
    TIMINGS["reflex export"] = took
    return SpaExport(port=port, origin=origin, client=client, took=took)


@pytest.fixture
def chromium(stack: Stack, request) -> Chromium:
    """Headless Chromium for one test (tests/browser/driver.mjs), closed after it; its
    driver's log is in the stack's logs folder, and a failing test's report gets its
    tail and a screenshot of every page (test-output/browser/)."""
    check_prerequisites()
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in request.node.name)
    browser_ = Chromium(stack.logdir / f"chromium-{safe}.log")
    yield browser_
    browser_.close()
    assert not browser_.leftovers, f"chromium outlived its driver (pids {browser_.leftovers}, killed)"


# -- a browser's HTTP side: a cookie jar, the CSRF dance -------------------------------------
class Browser:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=20)

    def close(self) -> None:
        self.http.close()

    @property
    def session_id(self) -> str | None:
        return self.http.cookies.get("sessionid")

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies.jar)

    def csrf(self, page: str = "/admin/login/") -> str:
        if "csrftoken" not in self.http.cookies:
            r = self.http.get(page)
            assert r.status_code == 200, (page, r.status_code, r.text[:300])
        return self.http.cookies["csrftoken"]

    def post_form(self, path: str, data: dict, **kw) -> httpx.Response:
        token = self.csrf()
        return self.http.post(
            path, data={"csrfmiddlewaretoken": token, **data}, headers={"Referer": self.base_url + path}, **kw
        )

    def admin_login(self, username: str, password: str = PASSWORD) -> None:
        """Log in through Django's admin login page, via the gateway (staff accounts)."""
        self.csrf("/admin/login/")
        r = self.post_form("/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"})
        assert r.status_code == 302, (r.status_code, r.text[:500])
        assert r.headers["location"] == "/admin/", r.headers
        assert self.session_id, "no sessionid cookie after login"

    def login(self, username: str, password: str = PASSWORD) -> None:
        """Log in through django.contrib.auth's LoginView (any account), via the gateway."""
        self.csrf("/api/auth/login/")
        r = self.post_form("/api/auth/login/", {"username": username, "password": password, "next": "/"})
        assert r.status_code == 302, (r.status_code, r.text[:500])
        assert self.session_id, "no sessionid cookie after login"

    def logout(self) -> httpx.Response:
        r = self.post_form("/admin/logout/", {})
        assert r.status_code in (200, 302), (r.status_code, r.text[:300])
        return r


@pytest.fixture
def browser(stack: Stack) -> Callable[..., Browser]:
    made: list[Browser] = []

    def make(base_url: str | None = None) -> Browser:
        b = Browser(base_url or stack.gateways["main"].url)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture
async def sockets(stack: Stack) -> AsyncIterator[Callable[..., BridgeClient]]:
    """Opens bridge sockets (to the main gateway by default) and closes them after the test."""
    opened: list[BridgeClient] = []

    async def open_socket(browser: Browser | None = None, *, gateway: str = "main", **kw) -> BridgeClient:
        if browser is not None and "cookie" not in kw:
            kw["cookie"] = browser.cookie_header()
        client = await BridgeClient.connect(stack.gateways[gateway].ws_url, **kw)
        opened.append(client)
        return client

    yield open_socket
    for c in opened:
        await c.close()
