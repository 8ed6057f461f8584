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
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chromium import SETUP_HINT, TOOLS_BIN, prerequisites
from stack import Gateway, Stack, tail


@dataclass
class SpaExport:
    port: int
    origin: str
    client: Path  # frontend/.web/build/client of the stack's copy
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
    # The SPA must call the gateway it is served by: its origin is compiled in.
    host_port = origin.removeprefix("http://")
    assert any(host_port in p.read_text(errors="replace") for p in client.rglob("*.js")), (
        f"no script of the export mentions {host_port}: exported for another origin?\n{tail(log)}"
    )
    return client, took


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
    r = httpx.get(f"{gw.url}/", timeout=10)
    assert r.status_code == 200 and "<html" in r.text.lower(), (r.status_code, r.text[:300])
    return gw
