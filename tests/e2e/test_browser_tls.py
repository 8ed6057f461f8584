"""HTTPS at the gateway itself ([listen.tls]), with the shop's real Django and Reflex
behind it and no proxy in front:

- headless Chromium trusting only the test's certificate logs in over https with the
  Reflex form and runs a staff-only event over `wss://` through the bridge; the
  gateway's browser cookie is `__Host-` prefixed, Secure and HttpOnly;
- the certificate is renewed (examples/shop/dev-tls.sh again) while that page's
  `wss://` socket stays open: new handshakes get the new certificate, the open socket
  keeps working without reconnecting;
- curl over HTTP/2, `openssl s_client -alpn h2` and h2load against the TLS listener;
- plain http on the redirect listener is answered 308 to the https origin.

The development CA and certificates come from examples/shop/dev-tls.sh, the recipe the
example documents.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import time

import httpx
import pytest

from chromium import Chromium
from spa import (
    SpaExport,
    check_prerequisites,
    export_spa,
    open_shop,
    press_staff_action,
    reflex_login,
    say,
    staff_action_ran_as,
    start_spa_gateway,
    wait_shop,
)
from stack import REPO, Gateway, free_port, tail

pytestmark = pytest.mark.timeout(300)

NAME = "tls"
DEV_TLS = REPO / "examples" / "shop" / "dev-tls.sh"


def dev_tls(directory) -> str:
    """Run the example's recipe (a CA once, a new leaf each time); the leaf's SPKI pin."""
    out = subprocess.run(["bash", str(DEV_TLS), str(directory), "localhost", "127.0.0.1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    pin = re.search(r"^spki-pin: (\S+)$", out.stdout, re.M)
    assert pin, out.stdout
    return pin.group(1)


def served_certificate(port: int) -> bytes:
    """The DER leaf a fresh TLS handshake with the gateway presents."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only compared, never trusted
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return der


def pem_to_der(path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


@pytest.fixture(scope="module")
def tls_site(stack):
    """The SPA exported for https://127.0.0.1:PORT, served by a gateway with TLS on PORT
    and the plain-HTTP redirect on another port."""
    check_prerequisites()
    tls_dir = stack.root / "tls"
    pin = dev_tls(tls_dir)
    port, redirect_port = free_port(), free_port()
    origin = f"https://127.0.0.1:{port}"
    client, took = export_spa(stack, origin)
    export = SpaExport(port=port, origin=origin, client=client, took=took)

    def edit(config):
        config["listen"]["tls"] = {
            "cert": str(tls_dir / "site.pem"),
            "key": str(tls_dir / "site-key.pem"),
            "redirect_addr": f"127.0.0.1:{redirect_port}",
        }

    gw = start_spa_gateway(stack, NAME, export, edit=edit, tls_ca=tls_dir / "ca.pem")
    yield {"gw": gw, "dir": tls_dir, "pin": pin, "redirect_port": redirect_port}
    if NAME in stack.gateways:
        stack.stop_gateway(NAME)


@pytest.fixture
def gw(tls_site) -> Gateway:
    return tls_site["gw"]


def ws_opened(tab) -> list[str]:
    return [e["url"] for e in tab.log() if e["kind"] == "ws-open"]


def socket_handshakes(gw: Gateway) -> list[str]:
    """Statuses of the gateway's access lines for the page's sockets: 101 over HTTP/1.1,
    200 for a WebSocket over HTTP/2 (RFC 8441 extended CONNECT)."""
    return re.findall(r"path=/_event/ status=(\d+)", gw.log())


def test_login_and_a_staff_event_over_https_and_wss_survive_a_certificate_renewal(stack, tls_site, gw, request):
    assert gw.url.startswith("https://")
    with Chromium(stack.logdir / "chromium-tls.log", trust_spki=tls_site["pin"]) as chromium:
        browser = chromium.context()
        tab = browser.page()
        response = reflex_login(tab, gw, "staffer")
        assert response["status"] == 200, response
        tab.wait_for_path("/")
        wait_shop(tab, "Hello, staffer")
        sockets = ws_opened(tab)
        assert sockets, "the page opened no WebSocket"
        assert all(url.startswith(f"wss://127.0.0.1:{gw.port}/_event") for url in sockets), sockets

        cookies = browser.cookies()
        ours = cookies.get("__Host-isthmus_browser")
        assert ours, f"no __Host- browser cookie over https: {sorted(cookies)}"
        assert (ours["secure"], ours["httpOnly"], ours["path"]) == (True, True, "/"), ours
        assert "isthmus_browser" not in cookies, "the plain-http cookie name is not used over https"
        assert cookies["sessionid"]["httpOnly"], cookies["sessionid"]

        press_staff_action(tab)
        staff_action_ran_as(tab, "staffer")
        handshakes = socket_handshakes(gw)
        assert handshakes and set(handshakes) <= {"101", "200"}, handshakes
        say(request, f"test_browser_tls: Chromium {chromium.version} opened its sockets over "
            + ", ".join(sorted({"HTTP/2 (RFC 8441)" if h == "200" else "HTTP/1.1" for h in handshakes})))  # fmt: skip

        # A renewal while the page's wss:// socket is open.
        before = served_certificate(gw.port)
        dev_tls(tls_site["dir"])
        renewed = pem_to_der(tls_site["dir"] / "site.pem")
        assert renewed != before
        deadline = time.monotonic() + 10
        while served_certificate(gw.port) != renewed:
            assert time.monotonic() < deadline, f"the renewed certificate was not picked up:\n{tail(gw.proc.log)}"
            time.sleep(0.1)
        assert "TLS certificate reloaded" in gw.log()

        # The same socket, no reconnect: the next staff event still runs as staffer (its
        # answer read from the frames received after the press).
        since = chromium.seq()
        press_staff_action(tab)
        deadline = time.monotonic() + 15
        while not any("restocked by staffer" in f for f in tab.ws_frames("ws-received", since)):
            assert time.monotonic() < deadline, "the staff event after the renewal got no answer"
            time.sleep(0.1)
        assert ws_opened(tab) == sockets, "the page had to reconnect its socket"

        # A new page handshakes with the renewed certificate and is still logged in.
        fresh = browser.page()
        open_shop(fresh, gw, "Hello, staffer")


def test_curl_openssl_and_h2load_speak_http2_to_the_tls_listener(gw, tls_site):
    ca = str(tls_site["dir"] / "ca.pem")
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
         f"{gw.url}/api/shop/products/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.stdout == "2 200", (out.stdout, out.stderr)
    out = subprocess.run(
        ["curl", "-sS", "--http1.1", "--cacert", ca, "-D", "-", "-o", "/dev/null", f"{gw.url}/admin/login/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.stdout.startswith("HTTP/1.1 200"), (out.stdout, out.stderr)

    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.port}", "-servername", "localhost", "-alpn", "h2",
         "-CAfile", ca, "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    report = out.stdout + out.stderr
    assert "ALPN protocol: h2" in report, report
    assert "Verify return code: 0 (ok)" in report, report
    assert re.search(r"^New, TLSv1\.3", report, re.M), report
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.port}", "-tls1_2", "-alpn", "http/1.1", "-CAfile", ca],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    report = out.stdout + out.stderr
    assert re.search(r"^New, TLSv1\.2", report, re.M) and "ALPN protocol: http/1.1" in report, report

    h2load = shutil.which("h2load")
    assert h2load, "h2load missing (Debian's nghttp2-client; tests/e2e/run.sh installs it)"
    out = subprocess.run(
        [h2load, "-n", "400", "-c", "4", "-m", "16", f"{gw.url}/static/admin/css/base.css"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Application protocol: h2" in out.stdout, out.stdout
    assert re.search(r"requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored", out.stdout), out.stdout
    assert re.search(r"status codes: 400 2xx", out.stdout), out.stdout


def test_plain_http_is_redirected_to_the_https_origin(gw, tls_site):
    r = httpx.post(
        f"http://127.0.0.1:{tls_site['redirect_port']}/_isthmus/login?next=/",
        headers={"host": f"127.0.0.1:{tls_site['redirect_port']}"},
        content=json.dumps({"username": "x"}),
        timeout=10,
    )
    assert r.status_code == 308
    assert r.headers["location"] == f"https://127.0.0.1:{gw.port}/_isthmus/login?next=/"
    # The session cookie never reaches the plain listener's upstreams: it has none.
    assert "django" not in r.text.lower()
