"""The shop in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
playwright-core from tests/browser/) against a gateway that serves the Reflex SPA
exported for that gateway's own origin.

Reflex's frontend keeps the port of its api_url (it swaps only a localhost-ish
hostname), so the SPA is exported (`reflex export --frontend-only --no-zip`, Node 22 and
bun from examples/shop/.tools) into the stack's copy of the example with
ISTHMUS_PUBLIC_ORIGIN set to a port chosen for it (spa.py, the session fixture
`spa_export` shared with test_browser_identity.py), and a second gateway, "browser",
serves that export on that port. tests/browser/setup.sh (called by run.sh) installs chromium,
playwright-core and Node 22 + bun; without them these tests fail, they never skip.

Each test runs tests/browser/shop.mjs for one scenario (staff, non-staff, anonymous),
checks its exit status and the JSON it printed, and checks the API and the gateway's
log on this side. Screenshots land in test-output/browser/ at the repository root.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bridge_client import SHOP
from chromium import TOOLS_BIN
from spa import check_prerequisites, start_spa_gateway
from stack import PASSWORD, tail

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
SCRIPT = BROWSER_DIR / "shop.mjs"
OUT = REPO / "test-output" / "browser"

# The export can take minutes on a busy machine (bun install, vite build).
pytestmark = pytest.mark.timeout(900)


def _say(request, line: str) -> None:
    """A line in pytest's terminal output, whatever the capture mode."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(line)


def _node() -> str:
    node = shutil.which("node") or str(TOOLS_BIN / "node")
    return node


@pytest.fixture(scope="module")
def spa_gateway(stack, spa_export, request):
    """A gateway on the export's port serving the SPA exported for exactly that origin."""
    check_prerequisites()
    _say(request, f"\ntest_browser: reflex export for {spa_export.origin} took {spa_export.took:.1f}s")
    gw = start_spa_gateway(stack, "browser", spa_export)
    yield gw
    stack.stop_gateway("browser")


def active_products(gw) -> list[str]:
    """Names of the active products, from the DRF API through the gateway."""
    r = httpx.get(f"{gw.url}/api/shop/products/", timeout=20)
    r.raise_for_status()
    return sorted(p["name"] for p in r.json() if p["is_active"])


def _chromium_pids(tag: str) -> list[int]:
    """Chromium processes launched with this run's marker switch still alive."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"--isthmus-test-tag={tag}".encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def run_scenario(request, gw, scenario: str, user: str = "", *, password: str = PASSWORD, products: list[str]) -> dict:
    """Runs shop.mjs; returns its final JSON object. Fails with the script's own words."""
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob(f"{scenario}-*.png"):
        old.unlink()
    tag = secrets.token_hex(6)
    argv = [
        _node(), str(SCRIPT), "--base", gw.url, "--scenario", scenario, "--products", json.dumps(products),
        "--out", str(OUT), "--tag", tag, "--timeout-ms", "60000", "--deadline-ms", "400000",
    ]  # fmt: skip
    if user:
        argv += ["--user", user]
    env = dict(os.environ, SHOP_PASSWORD=password, NO_COLOR="1")
    proc = subprocess.Popen(
        argv, cwd=BROWSER_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        # SIGTERM first: playwright closes the browser on it.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        stdout = (stdout or "") + "\n(killed after 480 s)"
    finally:
        leftovers = _chromium_pids(tag)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    final = next((o for o in reversed(lines) if "result" in o), None)
    _say(request, f"test_browser[{scenario}]: exit {proc.returncode}, " + (
        f"{final['result']} in {final.get('ms', 0) / 1000:.1f}s" if final else "no result"
    ))  # fmt: skip
    report = f"shop.mjs --scenario {scenario} exited {proc.returncode}\n--- stderr\n{stderr[-6000:]}\n--- stdout\n{stdout[-4000:]}"
    assert not leftovers, f"chromium outlived shop.mjs (pids {leftovers}, killed)\n{report}"
    assert final is not None, f"shop.mjs printed no result\n{report}"
    assert proc.returncode == 0 and final["result"] == "pass", f"browser scenario failed: {final.get('error')}\n{report}"
    for shot in final["screenshots"]:
        data = Path(shot).read_bytes() if Path(shot).is_absolute() else (BROWSER_DIR / shot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, f"{shot} is not a PNG screenshot"
    # The SPA spoke to the gateway it came from, on the bridged /_event socket.
    assert final["websockets"], f"the page opened no WebSocket\n{report}"
    assert all(u.startswith(f"{gw.ws_url}/_event") for u in final["websockets"]), (
        f"the page's WebSockets went elsewhere than {gw.ws_url}/_event (SPA exported for another origin?): "
        f"{final['websockets']}"
    )
    return final


def steps_by_name(final: dict) -> dict[str, dict]:
    return {s["step"]: s for s in final["steps"]}


def assert_login_page(seen: dict) -> None:
    """The browser is on Django's login page with next=/ (compared decoded)."""
    url = urlsplit(seen["redirected_to"])
    assert url.path == "/admin/login/" and parse_qs(url.query) == {"next": ["/"]}, seen


def _refusals(gw) -> int:
    """Refusals of the staff actions, once the gateway's log has caught up."""
    return sum(gw.refusals_settled(f"{SHOP}.{name}", gw.refusals(f"{SHOP}.{name}")) for name in ("deactivate_all", "restock"))


@pytest.mark.parametrize("user", ["staffer"])
def test_browser_staff(stack, spa_gateway, request, user):
    """Log in on /admin/login/, see the name and the products, deactivate all, restock."""
    products = active_products(spa_gateway)
    assert products, "no active product to show (the demo migration adds three)"
    refusals = _refusals(spa_gateway)

    final = run_scenario(request, spa_gateway, "staff", user, products=products)

    steps = steps_by_name(final)
    assert steps["log in on /admin/login/"]["location"] == "/", steps["log in on /admin/login/"]
    seen = steps["open / and see the greeting and the products"]
    assert seen["greeting"] == f"Hello, {user}", seen
    assert sorted(seen["products"]) == products, (seen, products)
    deactivated = steps["press Deactivate all: the page empties"]
    assert deactivated["message"] == f"{len(products)} product(s) deactivated by {user}", deactivated
    assert steps["the API lists every product inactive"]["api_active"] == []
    restocked = steps["press Restock: the products are back"]
    assert restocked["message"] == f"{len(products)} product(s) restocked by {user}", restocked
    assert active_products(spa_gateway) == products, "the products are not all active again after Restock"
    assert _refusals(spa_gateway) == refusals, "the gateway refused a staff user's action"
    assert len(final["screenshots"]) >= 3, final["screenshots"]


def test_browser_non_staff_is_sent_to_login(stack, spa_gateway, request):
    """A logged-in customer pressing a staff-only button: refused by the gateway, sent to
    /admin/login/?next=/ (Django's habit for staff_member_required); nothing changes."""
    products = active_products(spa_gateway)
    assert products
    refusals = spa_gateway.refusals(f"{SHOP}.deactivate_all")

    final = run_scenario(request, spa_gateway, "nonstaff", "plain", products=products)

    steps = steps_by_name(final)
    seen = steps["open / and see the greeting and the products"]
    assert seen["greeting"] == "Hello, plain", seen
    assert sorted(seen["products"]) == products, (seen, products)
    refused = steps["press Deactivate all: sent to /admin/login/?next=/"]
    assert_login_page(refused)
    assert "authenticated as plain" in refused["errornote"], refused
    # Refused by the gateway (its log), not only by the handler's @staff_required.
    assert spa_gateway.refusals_settled(f"{SHOP}.deactivate_all", refusals + 1) == refusals + 1, (
        "the gateway did not refuse deactivate_all (the handler's @staff_required redirects the same way, "
        f"so only the gateway's log tells):\n{tail(spa_gateway.proc.log, 15)}"
    )
    assert active_products(spa_gateway) == products, "a non-staff press changed the products"


def test_browser_anonymous(stack, spa_gateway, request):
    """Nobody logged in: the page greets "anonymous" (after on_load: with the products),
    and a staff-only press goes to the login page."""
    products = active_products(spa_gateway)
    assert products
    refusals = spa_gateway.refusals(f"{SHOP}.deactivate_all")

    final = run_scenario(request, spa_gateway, "anonymous", products=products)

    steps = steps_by_name(final)
    seen = steps["open / and see the greeting and the products"]
    assert seen["greeting"] == "Hello, anonymous", seen
    assert sorted(seen["products"]) == products, (seen, products)
    refused = steps["press Deactivate all: sent to /admin/login/?next=/"]
    assert_login_page(refused)
    assert not re.search(r"authenticated as", refused["errornote"]), refused
    assert spa_gateway.refusals_settled(f"{SHOP}.deactivate_all", refusals + 1) == refusals + 1, (
        f"the gateway did not refuse deactivate_all:\n{tail(spa_gateway.proc.log, 15)}"
    )
    assert active_products(spa_gateway) == products


def test_exported_spa_assets(spa_gateway):
    """The exported SPA and its hashed assets, served from disk by the gateway with
    immutable caching; a folder page through its redirect."""
    http = httpx.Client(base_url=spa_gateway.url, timeout=20)
    r = http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    asset = re.search(r'(/assets/[^"\']+\.js)', r.text)
    assert asset, r.text[:500]
    a = http.get(asset.group(1), headers={"Accept-Encoding": "gzip"})
    assert a.status_code == 200
    assert "javascript" in a.headers["content-type"]
    assert "immutable" in a.headers.get("cache-control", "")
    r = http.get("/whoami", follow_redirects=True)  # the folder whoami/ (307 to /whoami/)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
