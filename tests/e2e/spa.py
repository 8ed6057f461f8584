"""The exported Reflex SPA for the browser tests (test_browser.py, test_browser_identity.py).

Reflex's frontend keeps the port of its api_url (it swaps only a localhost-ish
hostname), so the SPA is exported (`reflex export --frontend-only --no-zip`, Node 22 and
bun from examples/shop/.tools) into the stack's copy of the example with
ISTHMUS_PUBLIC_ORIGIN set to a port chosen for it, once per session (the `spa_export`
fixture in conftest.py), and each browser test module starts a gateway serving that
export on exactly that port (one module at a time).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from chromium import SETUP_HINT, TOOLS_BIN, Page, prerequisites
from stack import PASSWORD, Gateway, Stack, tail


@dataclass
class SpaExport:
    port: int
    origin: str
    client: Path  # a copy of the export (frontend/.web/build/client) of its own
    took: float


def say(request, line: str) -> None:
    """A line in pytest's terminal output, whatever the capture mode."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(line)


def check_prerequisites() -> None:
    """Chromium, playwright-core, Node 22 and bun: fail (never skip) without them."""
    missing = prerequisites()
    for tool in ("node", "bun"):
        if not os.access(TOOLS_BIN / tool, os.X_OK):
            missing.append(f"examples/shop/.tools/node_modules/.bin/{tool}")
    if missing:
        pytest.fail(f"browser test prerequisites missing: {', '.join(missing)}; {SETUP_HINT}")


def export_spa(stack: Stack, origin: str) -> tuple[Path, float]:
    """`reflex export --frontend-only --no-zip` in the stack's copy, for `origin`."""
    frontend = stack.app / "frontend"
    env = stack.env()
    env.update(
        ISTHMUS_PUBLIC_ORIGIN=origin,
        PATH=f"{TOOLS_BIN}{os.pathsep}{env['PATH']}",
        REFLEX_USE_SYSTEM_BUN="1",
        REFLEX_TELEMETRY_ENABLED="false",
    )
    reflex = shutil.which("reflex", path=env["PATH"])
    assert reflex, f"no reflex on PATH {env['PATH']}"
    log = stack.logdir / "reflex-export.log"
    t = time.monotonic()
    with open(log, "ab") as out:
        try:
            rc = subprocess.run(
                [reflex, "export", "--frontend-only", "--no-zip"],
                cwd=frontend, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                timeout=780, start_new_session=True,
            ).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail(f"reflex export did not finish within 780 s:\n{tail(log)}")
    took = time.monotonic() - t
    assert rc == 0, f"reflex export failed ({rc}):\n{tail(log)}"
    client = frontend / ".web" / "build" / "client"
    assert (client / "index.html").is_file(), f"reflex export wrote no {client}/index.html:\n{tail(log)}"
    # The SPA must call the gateway it is served by: its origin is compiled in (the
    # socket's as ws:// or wss://).
    socket = f"{'wss' if origin.startswith('https:') else 'ws'}://{urlsplit(origin).netloc}/"
    assert any(socket in p.read_text(errors="replace") for p in client.rglob("*.js")), (
        f"no script of the export mentions {socket}: exported for another origin?\n{tail(log)}"
    )
    # Each export keeps a folder of its own: the next one rewrites build/client.
    kept = stack.root / f"spa-{urlsplit(origin).scheme}-{urlsplit(origin).port}"
    shutil.copytree(client, kept)
    return kept, took


def start_spa_gateway(stack: Stack, name: str, export: SpaExport, **config_kw: Any) -> Gateway:
    """`isthmus serve` on the export's port, serving the export (the stack's Django and
    Reflex behind it); `config_kw` as for `Stack.start_gateway`."""
    # gateway_config() takes the [static.frontend] root from stack.spa_root.
    saved = stack.spa_root
    stack.spa_root = export.client
    try:
        gw = stack.start_gateway(name, port=export.port, **config_kw)
    finally:
        stack.spa_root = saved
    r = httpx.get(f"{gw.url}/", timeout=10, verify=gw.verify)
    assert r.status_code == 200 and "<html" in r.text.lower(), (r.status_code, r.text[:300])
    return gw


# -- steps on the shop's pages, as a person takes them ------------------------------------
# The Reflex login form (isthmus_reflex.auth.login_form, form id "isthmus-login").
USERNAME_INPUT = "#isthmus-login input[name=username]"
PASSWORD_INPUT = "#isthmus-login input[name=password]"
SUBMIT = "#isthmus-login-submit"


def wait_shop(tab: Page, greeting: str, timeout: float = 15) -> None:
    """Until the shop page shows `greeting` and its products (the greeting starts as
    "Hello, anonymous": only the products tell that the page's on_load ran)."""
    tab.wait_for(
        f"document.querySelector('#greeting')?.textContent === {json.dumps(greeting)}"
        " && document.querySelectorAll('#products tbody tr').length > 0",
        timeout,
    )


def open_shop(tab: Page, gw: Gateway, greeting: str = "Hello, anonymous") -> None:
    tab.goto(f"{gw.url}/")
    wait_shop(tab, greeting)


def wait_response(tab: Page, path: str, since: int, timeout: float = 15) -> dict:
    """The first response to a request of `tab` for `path` after driver event `since`."""
    deadline = time.monotonic() + timeout
    while True:
        found = tab.responses(path, since)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no response for {path} within {timeout}s; the page is at {tab.url}")
        time.sleep(0.1)


def reflex_login(tab: Page, gw: Gateway, user: str, password: str = PASSWORD, next_: str = "/") -> dict:
    """Log in with the Reflex login page's form (it posts to Django's /_isthmus/login
    from the browser); returns Django's response to that POST, with `submitted`: the
    time.monotonic() of the press on "Log in"."""
    tab.goto(f"{gw.url}/login/?next={next_}")
    tab.fill(USERNAME_INPUT, user)
    tab.fill(PASSWORD_INPUT, password)
    since = tab.chromium.seq()
    submitted = time.monotonic()
    tab.click(SUBMIT)
    return {**wait_response(tab, "/_isthmus/login", since), "submitted": submitted}


def press_staff_action(tab: Page) -> None:
    tab.click("#restock")


def staff_action_ran_as(tab: Page, user: str, timeout: float = 15) -> str:
    """The Restock handler's own words (it writes the user of its event after
    @staff_required let it run): "N product(s) restocked by <user>"."""
    return tab.wait_for_text("#message", f"t.includes({json.dumps(f'restocked by {user}')})", timeout)
