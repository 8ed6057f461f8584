"""Headless Chromium driven from Python, one call at a time: tests/browser/driver.mjs
(playwright-core on Debian's /usr/bin/chromium) reads JSON requests on its stdin and
answers on its stdout; this module is its Python side.

    with Chromium(log_path) as chromium:
        ctx = chromium.context()             # a browser profile (its own cookies)
        tab = ctx.page()                     # a tab of it
        tab.goto(url)
        tab.fill("input[name=username]", "staffer")
        tab.click("#restock")
        tab.wait_for("document.querySelector('#message')?.textContent", timeout=10)
        tab.ws_received()                    # every WebSocket frame the tab received

Every call is bounded: the driver's own playwright timeouts, and `timeout` seconds on
this side (then the driver is killed). Chromium carries a marker switch, so one that
outlives the driver is found and killed by `close()`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
DRIVER = BROWSER_DIR / "driver.mjs"
CHROMIUM = Path("/usr/bin/chromium")
TOOLS_BIN = REPO / "examples" / "shop" / ".tools" / "node_modules" / ".bin"
SETUP_HINT = "run `bash tests/browser/setup.sh` (tests/e2e/run.sh does)"


class DriverError(RuntimeError):
    """The driver answered a call with an error (a playwright timeout, a missing element…)."""


def node() -> str:
    """Node ≥ 22 from examples/shop/.tools when present, else the machine's."""
    tools_node = TOOLS_BIN / "node"
    return str(tools_node) if os.access(tools_node, os.X_OK) else "node"


def prerequisites() -> list[str]:
    """What the browser tests need and is missing (empty when all is there)."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(str(CHROMIUM))
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        missing.append("tests/browser/node_modules/playwright-core")
    return missing


def chromium_pids(tag: str) -> list[int]:
    """Chromium processes launched with this marker switch, still alive."""
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


class Chromium:
    def __init__(self, log_path: Path, *, call_timeout: float = 60, deadline: float = 600, trust_spki: str = ""):
        """`trust_spki`: the SHA-256 SPKI pin (base64) of a server key Chromium is to
        accept as if its certificate were signed by a trusted CA."""
        self.tag = secrets.token_hex(6)
        self.log_path = log_path
        self.call_timeout = call_timeout
        self.pages: list[Page] = []
        self._next_id = 0
        self._answers: queue.Queue[dict | None] = queue.Queue()
        self._stderr = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [node(), str(DRIVER), "--chromium", str(CHROMIUM), "--tag", self.tag,
             "--deadline-ms", str(int(deadline * 1000)), "--timeout-ms", str(int(min(call_timeout, 30) * 1000)),
             *(["--trust-spki", trust_spki] if trust_spki else [])],
            cwd=BROWSER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, bufsize=1, start_new_session=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            hello = self._answer(0, timeout=60)
        except BaseException:
            self.close()
            raise
        self.version = hello["version"]

    # -- the pipe ----------------------------------------------------------------------
    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self._answers.put(json.loads(line))
        self._answers.put(None)  # end of output: the driver exited

    def _answer(self, want: int, timeout: float) -> Any:
        while True:
            try:
                msg = self._answers.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(
                    f"the browser driver did not answer within {timeout:.0f}s\n{self.log_tail()}"
                ) from None
            if msg is None:
                raise RuntimeError(f"the browser driver exited ({self.proc.poll()})\n{self.log_tail()}")
            if msg.get("id") != want:
                continue  # an answer to a call that timed out earlier
            if not msg["ok"]:
                raise DriverError(msg["error"])
            return msg["value"]

    def call(self, op: str, *, timeout: float | None = None, **args: Any) -> Any:
        self._next_id += 1
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"id": self._next_id, "op": op, **args}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(f"the browser driver is gone ({self.proc.poll()})\n{self.log_tail()}") from None
        return self._answer(self._next_id, timeout or self.call_timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- the browser -------------------------------------------------------------------
    def context(self) -> "Context":
        return Context(self, self.call("newContext"))

    def seq(self) -> int:
        """The driver's event counter now: pass it as `since` to read only what follows."""
        return self.call("seq")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.call("quit", timeout=10)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
        leftovers = chromium_pids(self.tag)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.stdin.close()  # type: ignore[union-attr]
        self._stderr.close()
        self.leftovers = leftovers

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class Context:
    chromium: Chromium
    handle: str

    def page(self) -> "Page":
        page = Page(self.chromium, self.chromium.call("newPage", context=self.handle), self)
        self.chromium.pages.append(page)
        return page

    def cookies(self) -> dict[str, dict]:
        """The context's cookies by name (playwright's objects: value, httpOnly, sameSite…)."""
        return {c["name"]: c for c in self.chromium.call("cookies", context=self.handle)}

    def add_cookie(self, name: str, value: str, url: str) -> None:
        self.chromium.call("addCookies", context=self.handle, cookies=[{"name": name, "value": value, "url": url}])

    def close(self) -> None:
        self.chromium.call("closeContext", context=self.handle)


@dataclass
class Page:
    chromium: Chromium
    handle: str
    context: Context

    def _call(self, op: str, **args: Any) -> Any:
        return self.chromium.call(op, page=self.handle, **args)

    def goto(self, url: str) -> int | None:
        return self._call("goto", url=url)

    def click(self, selector: str) -> None:
        self._call("click", selector=selector)

    def fill(self, selector: str, value: str) -> None:
        self._call("fill", selector=selector, value=value)

    def set_input_files(self, selector: str, files: list[tuple[str, str, bytes]]) -> None:
        self._call(
            "setInputFiles",
            selector=selector,
            files=[{"name": n, "mimeType": m, "base64": base64.b64encode(b).decode()} for n, m, b in files],
        )

    def evaluate(self, expression: str) -> Any:
        return self._call("evaluate", expression=expression)

    def text(self, selector: str) -> str | None:
        return self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? null")

    def wait_for(self, expression: str, timeout: float = 15) -> Any:
        """The first truthy value of a JavaScript expression, polled every 100 ms."""
        return self._call("waitFor", expression=expression, timeoutMs=int(timeout * 1000), timeout=timeout + 30)

    def wait_for_text(self, selector: str, predicate: str, timeout: float = 15) -> str:
        """Until the element's text satisfies `predicate`, a JavaScript expression on `t`."""
        sel = json.dumps(selector)
        return self.wait_for(
            f"(() => {{ const t = document.querySelector({sel})?.textContent; return t != null && ({predicate}) ? t : null; }})()",
            timeout,
        )

    def wait_for_path(self, path: str, timeout: float = 15) -> str:
        """Until the page is at `path` (and its document loaded); returns the URL."""
        return self.wait_for(
            f"location.pathname === {json.dumps(path)} && document.readyState === 'complete' ? location.href : null",
            timeout,
        )

    @property
    def url(self) -> str:
        return self._call("url")

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def log(self, since: int = 0) -> list[dict]:
        """What the page saw after driver event `since` (see driver.mjs, op `log`)."""
        return self._call("log", since=since)["entries"]

    def ws_frames(self, kind: str = "ws-received", since: int = 0) -> list[str]:
        return [e["payload"] for e in self.log(since) if e["kind"] == kind]

    def requests(self, path: str, since: int = 0) -> list[dict]:
        return [e for e in self.log(since) if e["kind"] == "request" and urlsplit(e["url"]).path == path]

    def responses(self, path: str, since: int = 0) -> list[dict]:
        return [e for e in self.log(since) if e["kind"] == "response" and urlsplit(e["url"]).path == path]

    def navigations(self, since: int = 0) -> list[str]:
        return [e["url"] for e in self.log(since) if e["kind"] == "navigated"]

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._call("screenshot", path=str(path))
        return path
