"""HTTP/1 framing and request-smuggling corpus, isthmus and nginx side by side.

    python3 tests/smuggling/run.py --isthmus BIN [--no-nginx] [--out DIR] [-k TEXT]

Both proxies front the same recording upstream (recorder.py). Each case of corpus.py is
written on a fresh client connection to isthmus, then to nginx; the answers the client
reads (within --timeout seconds) and the requests the upstream saw give one verdict per
proxy:

- `refused`: an error status (or the connection closed without an answer), with nothing
  or exactly the request forwarded;
- `normalised`: as many requests as the wire carries reached the upstream, each framed
  one way, each answered;
- `FAIL`: a request the wire does not carry reached the upstream (a path with
  `smuggled`), the upstream's strict parser could not frame what it got (CL with TE,
  two Content-Lengths, a bare LF, ...), a forbidden header reached it, Host and
  X-Forwarded-Host disagree, X-Forwarded-Proto is not `http`, the forwarded body
  is not the one sent, no answer came in time (hang), the proxy process died or
  panicked, or a verdict the case does not accept (normalised where a 400 is required).

`python3 -m unittest discover -s tests/smuggling` checks the harness itself: a
byte-for-byte relay in front of the recorder must fail the smuggling cases.

Writes DIR/table.md and DIR/results.json (DIR: bench/results/<UTC>-smuggling) and exits
1 when isthmus fails a case; nginx's failures are reported only. nginx is installed with
apt when missing, as bench/run.sh does.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "bench"))
import benchlib as B  # noqa: E402

from corpus import CASES, Case  # noqa: E402
from recorder import Recorder, Seen  # noqa: E402

# After the answers a client expects, bytes still arriving within this long are read too
# (a second, smuggled answer shows up there).
LINGER = 0.25
# Upstream requests of a case may start a moment after the client's last read.
SETTLE = 0.15

ISTHMUS_CONF = """\
[listen]
addr = "127.0.0.1:{port}"
workers = 1

[upstreams.app]
url = "http://127.0.0.1:{upstream}"

[routing]
cache_dir = "cache"

[[routing.routers]]
plugin = "builtin:prefix-router"
config = {{ django_upstream = "app", reflex_upstream = "app", frontend_upstream = "app" }}
"""

NGINX_CONF = (
    B.NGINX_COMMON
    + """\
http {{
  access_log {work}/nginx-access.log;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 16; }}
"""
    + B.NGINX_PROXY_HEADERS
    + """\
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://app; }}
  }}
}}
"""
)


@dataclass
class Reply:
    """What the client read on its connection."""

    statuses: list[int] = field(default_factory=list)  # final answers; 0 = not HTTP/1 (h2, HTTP/0.9)
    interim: list[int] = field(default_factory=list)
    closed: bool = False
    reset: bool = False
    hang: bool = False
    raw: bytes = b""
    # HTTP/2: the server sent its SETTINGS; it reset stream 1 or sent GOAWAY with an error.
    h2: bool = False
    h2_refused: str = ""

    def describe(self) -> str:
        parts = [",".join(str(st or "non-HTTP/1") for st in self.statuses) or "no answer"]
        if self.interim:
            parts.append("after " + ",".join(map(str, self.interim)))
        if self.h2_refused:
            parts.append(self.h2_refused)
        parts.append("reset" if self.reset else "closed" if self.closed else "open")
        return " ".join(parts)


def parse_replies(data: bytes, closed: bool) -> tuple[list[int], list[int]]:
    """Final and interim status codes of the complete answers in `data`."""
    finals: list[int] = []
    interim: list[int] = []
    pos = 0
    while pos < len(data):
        if not data.startswith(b"HTTP/", pos):
            if not closed and b"HTTP/".startswith(data[pos : pos + 5]):
                break  # the start of a status line
            finals.append(0)  # HTTP/2 frames or an HTTP/0.9 body: the rest is that
            break
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        lines = data[pos:end].decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ")[1])
        except (IndexError, ValueError):
            finals.append(0)
            break
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        pos = end + 4
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            continue
        if status == 101:
            finals.append(status)
            break
        if status in (204, 304):
            pass
        elif headers.get("transfer-encoding") == "chunked":
            body_end = data.find(b"\r\n0\r\n\r\n", pos - 2)
            if body_end < 0:
                break
            pos = body_end + 7
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if len(data) - pos < n:
                break
            pos += n
        elif closed:
            pos = len(data)
        else:
            break
        finals.append(status)
    return finals, interim


# HPACK's static table entries for :status (RFC 7541 Appendix A).
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
# The Huffman codes of the ten digits (RFC 7541 Appendix B), enough for a status.
HUFFMAN_DIGITS = {
    "00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4",
    "011011": "5", "011100": "6", "011101": "7", "011110": "8", "011111": "9",
}  # fmt: skip


def h2_status(block: bytes) -> int:
    """The :status of a response header block, when it comes first (as servers send it);
    -1 when it cannot be read without a full HPACK decoder."""
    while block and block[0] & 0xE0 == 0x20:
        block = block[1:]  # dynamic table size update
    if not block:
        return -1
    first = block[0]
    if first & 0x80:
        return STATIC_STATUS.get(first & 0x7F, -1)
    index = first & 0x3F if first & 0xC0 == 0x40 else first & 0x0F
    if index not in STATIC_STATUS or len(block) < 2:
        return -1
    huffman, length = block[1] & 0x80, block[1] & 0x7F
    value = block[2 : 2 + length]
    if not huffman:
        return int(value) if value.isdigit() else -1
    bits, digits = "".join(f"{b:08b}" for b in value), ""
    while len(digits) < 3:
        code = next((c for c in HUFFMAN_DIGITS if bits.startswith(c)), None)
        if code is None:
            return -1
        digits, bits = digits + HUFFMAN_DIGITS[code], bits[len(code) :]
    return int(digits)


def parse_h2(data: bytes, reply: Reply) -> bool:
    """Reads the server's HTTP/2 frames into `reply`; whether stream 1 has ended."""
    reply.statuses, reply.h2_refused, ended, pos = [], "", False, 0
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos : pos + 3], "big")
        kind, flags, stream = data[pos + 3], data[pos + 4], int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        payload = data[pos + 9 : pos + 9 + length]
        if len(payload) < length:
            break
        pos += 9 + length
        reply.h2 = reply.h2 or kind == 0x4
        if stream == 1 and kind == 0x1:
            reply.statuses.append(h2_status(payload))
        if stream == 1 and kind in (0x0, 0x1) and flags & 0x1:
            ended = True
        if stream == 1 and kind == 0x3:
            reply.h2_refused, ended = f"RST_STREAM {int.from_bytes(payload[:4], 'big')}", True
        if kind == 0x7 and int.from_bytes(payload[4:8], "big"):
            reply.h2_refused, ended = f"GOAWAY {int.from_bytes(payload[4:8], 'big')}", True
    return ended


def exchange(port: int, case: Case, timeout: float) -> Reply:
    """Write the case on a new connection and read what comes back."""
    reply = Reply()
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(case.wire)
            if case.half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            reply.reset = True  # the proxy closed while the rest was still being written
        deadline = time.monotonic() + timeout
        settle: float | None = None
        while True:
            if reply.closed:
                break
            if speaks_h2(case, data):
                # The preface alone asks for nothing but the server's SETTINGS.
                enough = parse_h2(data, reply) or (case.requests == 0 and reply.h2)
            else:
                finals, _ = parse_replies(data, reply.closed)
                enough = len(finals) >= max(case.requests, 1) or any(f >= 400 or f in (0, 101) for f in finals)
            if enough and settle is None:
                settle = time.monotonic() + LINGER
            remaining = (settle or deadline) - time.monotonic()
            if remaining <= 0:
                reply.hang = settle is None
                break
            s.settimeout(remaining)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                reply.reset = reply.closed = True
                continue
            if not chunk:
                reply.closed = True
            data += chunk
    if speaks_h2(case, data):
        parse_h2(data, reply)
    else:
        reply.statuses, reply.interim = parse_replies(data, reply.closed)
    reply.raw = data[:300]
    return reply


def speaks_h2(case: Case, data: bytes) -> bool:
    """Whether the server answered an HTTP/2 case in HTTP/2 (nginx answers in HTTP/1)."""
    return case.h2 and len(data) >= 5 and not data.startswith(b"HTTP/")


def forbidden(case: Case, seen: list[Seen]) -> list[str]:
    found = []
    for s in seen:
        found += [n for n, _ in s.headers + s.trailers if n.replace("_", "-") in case.forbid]
        found += [f"trailer {n}" for n, _ in s.trailers if n in case.forbid_trailers]
    return found


def two_hosts(seen: list[Seen]) -> list[str]:
    """Requests whose Host and X-Forwarded-Host name different hosts: the upstream is told
    two things about one request, and which it believes depends on its settings (Django's
    USE_X_FORWARDED_HOST)."""
    out = []
    for s in seen:
        host, forwarded = s.header("host"), s.header("x-forwarded-host")
        if forwarded and forwarded != host:
            out.append(f"Host {host} but X-Forwarded-Host {forwarded}")
    return out


def judge(case: Case, reply: Reply, seen: list[Seen], crash: str | None) -> tuple[str, str]:
    """(verdict, why) for one case on one proxy."""
    if crash:
        return "FAIL", crash
    if smuggled := [s.target for s in seen if "smuggled" in s.target]:
        return "FAIL", f"smuggled request reached the upstream: {smuggled}"
    if problems := [p for s in seen for p in s.problems]:
        return "FAIL", f"upstream could not frame what it got: {problems}"
    if names := forbidden(case, seen):
        return "FAIL", f"forwarded {names}"
    if hosts := two_hosts(seen):
        return "FAIL", "; ".join(hosts)
    # Both proxies listen in plain HTTP: anything else came from the client.
    if protos := [v for s in seen for v in s.header("x-forwarded-proto") if v != "http"]:
        return "FAIL", f"X-Forwarded-Proto {protos} on a plain-HTTP connection"
    if reply.hang:
        return "FAIL", f"hang: {reply.describe()} after the timeout"
    if len(seen) > case.requests:
        return "FAIL", f"{len(seen)} requests reached the upstream for {case.requests}"
    complete = [s for s in seen if s.complete]
    if case.body is not None and complete and complete[0].body != case.body:
        return "FAIL", f"forwarded body {complete[0].body[:60]!r}, sent {case.body[:60]!r}"
    if case.requests == 0 and reply.h2 and not reply.statuses and not reply.h2_refused:
        verdict = "normalised"  # the HTTP/2 preface alone, answered in HTTP/2
    elif not reply.statuses or any(st >= 400 for st in reply.statuses):
        verdict = "refused"
    elif len(reply.statuses) != case.requests or len(complete) != case.requests:
        return "FAIL", f"{len(reply.statuses)} answers and {len(complete)} requests upstream for {case.requests}"
    else:
        verdict = "normalised"
    if verdict not in case.accept:
        return "FAIL", f"{verdict}, but only {'/'.join(sorted(case.accept))} is correct"
    return verdict, ""


@dataclass
class Outcome:
    """One case on one proxy: the verdict, and what the client and the upstream saw."""

    verdict: str
    why: str
    client: str
    hang: bool
    reply: str
    upstream_view: str
    upstream: list[dict[str, object]]

    def cell(self) -> str:
        text = f"{self.verdict} ({self.client})" + (f": {self.why}" if self.why else "")
        return text.replace("|", "\\|")


def attempt(port: int, case: Case, recorder: Recorder, timeout: float, crashed: Callable[[], str | None]) -> Outcome:
    """Run one case on the proxy at `port`."""
    started = time.monotonic()
    reply = exchange(port, case, timeout)
    time.sleep(SETTLE)
    seen = recorder.since(started)
    verdict, why = judge(case, reply, seen, crashed())
    return Outcome(
        verdict=verdict,
        why=why,
        client=reply.describe(),
        hang=reply.hang,
        reply=reply.raw.decode("latin-1"),
        upstream_view=upstream_view(seen),
        upstream=[s.summary() for s in seen],
    )


@dataclass
class Row:
    case: Case
    # Per proxy; None where the case does not apply to it (`Case.isthmus_only`).
    outcomes: dict[str, Outcome | None]

    def to_json(self) -> dict[str, object]:
        return {
            "case": self.case.name,
            "category": self.case.category,
            "wire": self.case.wire[:400].decode("latin-1"),
            "wire_bytes": len(self.case.wire),
            **{p: o and asdict(o) for p, o in self.outcomes.items()},
        }


def upstream_view(seen: list[Seen]) -> str:
    out = []
    for s in seen:
        text = f"{s.method} {s.target} host={','.join(s.header('host'))} {s.framing}:{len(s.body)}"
        if not s.complete:
            text += " incomplete"
        if s.tunnel:
            text += f" tunnel:{len(s.tunnel)}"
        out.append(text)
    return "; ".join(out) or "nothing"


class Proxy:
    """A proxy under test; `crashed` says whether it died or panicked since last asked."""

    def __init__(self, name: str, port: int, start: Callable[[], B.Server]) -> None:
        self.name = name
        self.port = port
        self._start = start
        self.server = start()
        self._marks = self._crash_marks()

    def _crash_marks(self) -> int:
        text = self.server.log_text()
        return text.count("panicked") + text.count("exited on signal")

    def crashed(self) -> str | None:
        if not self.server.alive():
            code = self.server.proc.returncode if self.server.proc else None
            self.server = self._start()
            self._marks = self._crash_marks()
            return f"crash: the process exited ({code})"
        marks = self._crash_marks()
        if marks > self._marks:
            self._marks = marks
            return "crash: a panic or a worker killed by a signal (see the log)"
        return None


def start_isthmus(binary: Path, work: Path, port: int, upstream: int) -> B.Server:
    conf = work / "isthmus.toml"
    conf.write_text(ISTHMUS_CONF.format(port=port, upstream=upstream))
    s = B.Server("isthmus", [str(binary), "serve", "--config", str(conf)], work / "isthmus.log").start()
    s.wait_log("isthmus listening")
    B.wait_port(port, server=s)
    return s


def start_nginx(work: Path, port: int, upstream: int) -> B.Server:
    conf = NGINX_CONF.format(work=work, name="nginx", port=port, upstream=upstream)
    server = B.nginx("nginx", conf, work, [port])
    # nginx's crash marks ("exited on signal") go to its error log.
    server.log_path = work / "nginx.err"
    return server


def ensure_nginx() -> bool:
    if shutil.which("nginx"):
        return True
    B.log("nginx missing: apt-get install -y nginx-light")
    subprocess.run(["apt-get", "install", "-y", "nginx-light"], check=False, stdout=sys.stderr)
    return shutil.which("nginx") is not None


def nginx_version() -> str:
    p = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return p.stderr.strip().removeprefix("nginx version: ")


def table(rows: list[Row], proxies: list[str]) -> str:
    text = "| case | category | " + " | ".join(proxies) + " |\n"
    text += "|---|---|" + "---|" * len(proxies) + "\n"
    for row in rows:
        cells = [o.cell() if (o := row.outcomes[p]) else f"n/a ({row.case.isthmus_only})" for p in proxies]
        text += f"| {row.case.name} | {row.case.category} | " + " | ".join(cells) + " |\n"
    return text


def totals(rows: list[Row], proxy: str) -> dict[str, int]:
    out = {"cases": 0, "refused": 0, "normalised": 0, "FAIL": 0, "hangs": 0, "crashes": 0, "upstream_requests": 0}
    for o in (row.outcomes[proxy] for row in rows):
        if o is None:
            continue
        out["cases"] += 1
        out[o.verdict] += 1
        out["hangs"] += o.hang
        out["crashes"] += o.why.startswith("crash")
        out["upstream_requests"] += len(o.upstream)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isthmus", type=Path, required=True, help="the gateway binary")
    ap.add_argument("--no-nginx", action="store_true", help="run against isthmus only")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results/<UTC>-smuggling)")
    ap.add_argument("-k", dest="only", default="", help="only the cases whose name contains this")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds a case may wait for its answers")
    ap.add_argument("--budget", type=float, default=110.0, help="seconds the whole run may take; then it stops")
    args = ap.parse_args()
    if not args.isthmus.is_file():
        ap.error(f"--isthmus: no such file: {args.isthmus}")
    cases = [c for c in CASES if args.only in c.name]
    if not cases:
        ap.error(f"-k: no case name contains {args.only!r}")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out or REPO / "bench" / "results" / f"{stamp}-smuggling"

    work = Path(tempfile.mkdtemp(prefix="isthmus-smuggling-"))
    recorder = Recorder()
    t0 = time.monotonic()
    proxies: list[Proxy] = []
    try:
        port = B.free_port()
        binary = args.isthmus.resolve()
        proxies.append(Proxy("isthmus", port, functools.partial(start_isthmus, binary, work, port, recorder.port)))
        if not args.no_nginx:
            if ensure_nginx():
                port = B.free_port()
                proxies.append(Proxy("nginx", port, functools.partial(start_nginx, work, port, recorder.port)))
            else:
                B.log("nginx could not be installed; isthmus only")
        rows: list[Row] = []
        for case in cases:
            if time.monotonic() - t0 > args.budget:
                raise SystemExit(f"over the --budget of {args.budget}s at `{case.name}`: proxies hang")
            row = Row(case, {})
            for proxy in proxies:
                skip = bool(case.isthmus_only) and proxy.name != "isthmus"
                row.outcomes[proxy.name] = (
                    None if skip else attempt(proxy.port, case, recorder, args.timeout, proxy.crashed)
                )
            rows.append(row)
            verdicts = (f"{name}: {o.verdict if o else 'n/a':10}" for name, o in row.outcomes.items())
            print(f"{case.name[:52]:52} " + "  ".join(verdicts))
        names = [p.name for p in proxies]
        meta = {
            "isthmus": str(args.isthmus),
            "nginx": nginx_version() if "nginx" in names else None,
            "seconds": round(time.monotonic() - t0, 1),
            "totals": {p: totals(rows, p) for p in names},
        }
    finally:
        for proxy in proxies:
            proxy.server.stop()
        recorder.stop()
        shutil.rmtree(work, ignore_errors=True)

    out.mkdir(parents=True, exist_ok=True)
    text = table(rows, names)
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"meta": meta, "cases": [r.to_json() for r in rows]}, indent=1) + "\n")
    print(text)
    print(json.dumps(meta, indent=1))
    failed = [row.case.name for row in rows if (o := row.outcomes["isthmus"]) and o.verdict == "FAIL"]
    if failed:
        print(f"isthmus FAILED {len(failed)} case(s): {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
