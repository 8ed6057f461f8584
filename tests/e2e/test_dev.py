"""`isthmus run --dev` on the shop: the reflex upstream's `dev_run` (`reflex run --env
dev`, which also starts Reflex's frontend dev server), the pages and their hot-reload
WebSocket proxied from that dev server instead of the exported SPA, and everything it
started (bun, node) gone after SIGTERM. Needs Node 22 + bun in examples/shop/.tools
(tests/browser/setup.sh installs them)."""

from __future__ import annotations

import base64
import os
import socket

import httpx
import pytest

from stack import free_port
from test_browser import TOOLS_BIN
from test_zz_shutdown import group_alive


@pytest.fixture(scope="module")
def dev_gateway(stack):
    assert (TOOLS_BIN / "bun").exists() and (TOOLS_BIN / "node").exists(), "run tests/browser/setup.sh"
    port = free_port()
    env = stack.env(
        PATH=f"{TOOLS_BIN}{os.pathsep}{stack.env()['PATH']}",
        REFLEX_USE_SYSTEM_BUN="1",
        ISTHMUS_PUBLIC_ORIGIN=f"http://127.0.0.1:{port}",
    )
    ports = {"django": free_port(), "reflex": free_port(), "reflex_dev_frontend": free_port()}
    gw = stack.start_gateway("dev", port=port, run=True, args=("--dev",), env=env, upstream_ports=ports)
    yield gw
    if "dev" in stack.gateways:
        stack.stop_gateway("dev")


def upgrade(port: int, path: str, protocol: str) -> str:
    """The response head of a WebSocket upgrade request."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    return head.decode(errors="replace")


def test_dev_server_serves_the_pages_and_hot_reload(stack, dev_gateway):
    log = dev_gateway.log()
    assert "reflex run --env dev" in log and "upstream=reflex_dev_frontend" in log, log[-3000:]
    # The page comes from the dev server (modules served by Vite's dev server, which
    # an exported build never references), not the exported SPA.
    page = httpx.get(f"{dev_gateway.url}/", timeout=60)
    assert page.status_code == 200
    assert "/@id/__x00__virtual:react-router/" in page.text, page.text[:2000]
    assert httpx.get(f"{dev_gateway.url}/app/entry.client.js", timeout=60).status_code == 200
    assert httpx.get(f"{dev_gateway.url}/@vite/client", timeout=60).status_code == 200
    # Vite's hot-reload WebSocket goes through the gateway to the dev server.
    head = upgrade(dev_gateway.port, "/", "vite-hmr")
    assert head.startswith("HTTP/1.1 101"), head
    assert "vite-hmr" in head.lower(), head
    # Reflex's backend and Django are the dev run's own.
    assert httpx.get(f"{dev_gateway.url}/ping", timeout=10).text.strip('"') == "pong"
    assert httpx.get(f"{dev_gateway.url}/api/shop/active/", timeout=10).status_code == 200


def test_stopping_dev_run_leaves_no_process(stack, dev_gateway):
    groups = {name: stack.child_pid(name, gateway="dev") for name in ("django", "reflex")}
    assert all(group_alive(g) for g in groups.values())
    assert stack.stop_gateway("dev") == 0
    alive = [name for name, g in groups.items() if group_alive(g)]
    assert not alive, f"left running: {alive}"
