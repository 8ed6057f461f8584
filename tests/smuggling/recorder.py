"""The recording upstream: a plain socket server on 127.0.0.1 that reads what a proxy
sends it with a strict HTTP/1.1 parser, records every request (method, target, headers,
body, trailers, the framing it came with and anything wrong with it) and answers each
with 200 and a Content-Length.

Strict means that every framing a lenient server might guess at is a recorded problem:
Content-Length together with Transfer-Encoding, any coding other than exactly
`chunked`, a Content-Length that is not one run of digits, two of them, a bare CR or LF,
obs-fold, a space before a colon, control characters, a missing or repeated Host, or a
chunk that is not hex size, CRLF, data, CRLF. A request with a problem is answered 400
and its connection closed, as a careful origin server would; the runner turns each
problem into a failure of the proxy that forwarded it.

An upgrade the proxy forwards (Connection: upgrade plus Upgrade) is agreed to with 101,
as an application that speaks the protocol would; whatever follows on that connection is
recorded as tunnelled bytes of that request.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field

# RFC 9110 §5.6.2 token characters.
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Field values: visible characters, SP, HTAB and obs-text; no CR, LF, NUL or other controls.
FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
TARGET = re.compile(rb"[\x21-\x7e]+")
CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})((?:;[\t\x20-\x7e\x80-\xff]*)?)")

MAX_LINE = 65536 + 1024
# An idle pooled connection from a proxy is kept this long; longer than the run itself.
IDLE_TIMEOUT = 120.0


class Malformed(Exception):
    """What the proxy sent cannot be framed by a strict parser."""


@dataclass
class Seen:
    """One request as it reached the upstream."""

    conn: int
    started: float
    method: str = ""
    target: str = ""
    version: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    framing: str = "none"  # none | length | chunked
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = False
    problems: list[str] = field(default_factory=list)
    tunnel: bytes = b""

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    def summary(self) -> dict[str, object]:
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "host": self.header("host"),
            "framing": self.framing,
            "body": self.body.decode("latin-1"),
            "trailers": self.trailers,
            "complete": self.complete,
            "problems": self.problems,
            "tunnel": self.tunnel.decode("latin-1"),
            "headers": self.headers,
        }


class Reader:
    """Buffered reads from one socket; EOF or the idle timeout ends the stream."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def line(self) -> bytes:
        """One line without its CRLF; a bare LF or a CR elsewhere in it is malformed."""
        while (end := self.buf.find(b"\n")) < 0:
            if len(self.buf) > MAX_LINE:
                raise Malformed("line too long")
            if not self.fill():
                raise EOFError
        raw = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        if not raw.endswith(b"\r\n"):
            raise Malformed(f"bare LF in {raw[:80]!r}")
        text = raw[:-2]
        if b"\r" in text:
            raise Malformed(f"bare CR in {text[:80]!r}")
        return text

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise EOFError
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def rest(self) -> bytes:
        while self.fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out


def parse_fields(reader: Reader) -> list[tuple[str, str]]:
    """Header or trailer lines up to the empty line, names lower-cased."""
    fields: list[tuple[str, str]] = []
    while line := reader.line():
        if line[:1] in (b" ", b"\t"):
            raise Malformed(f"obs-fold: {line[:80]!r}")
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise Malformed(f"bad field name: {line[:80]!r}")
        value = value.strip(b" \t")
        if not FIELD_VALUE.fullmatch(value):
            raise Malformed(f"control character in field {name!r}: {value[:80]!r}")
        fields.append((name.decode("latin-1").lower(), value.decode("latin-1")))
    return fields


def read_request(reader: Reader, seen: Seen) -> None:
    """Fill `seen` from the stream: head, then a body framed the one way allowed."""
    parts = reader.line().split(b" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not TARGET.fullmatch(parts[1]):
        raise Malformed(f"bad request line: {b' '.join(parts)[:120]!r}")
    if parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise Malformed(f"bad version: {parts[2][:20]!r}")
    seen.method, seen.target, seen.version = (p.decode("latin-1") for p in parts)
    seen.headers = parse_fields(reader)
    hosts = seen.header("host")
    # RFC 9112 §3.2: exactly one in HTTP/1.1; HTTP/1.0 may go without.
    if len(hosts) > 1 or (not hosts and seen.version == "HTTP/1.1"):
        raise Malformed(f"{len(hosts)} Host fields")
    te = seen.header("transfer-encoding")
    cl = seen.header("content-length")
    if te and cl:
        raise Malformed("both Content-Length and Transfer-Encoding")
    if te:
        if te != ["chunked"]:
            raise Malformed(f"Transfer-Encoding {te}")
        seen.framing = "chunked"
        if any(v.lower() == "100-continue" for v in seen.header("expect")):
            reader.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        read_chunked(reader, seen)
    elif cl:
        if len(cl) != 1 or not cl[0].isdigit() or not cl[0].isascii():
            raise Malformed(f"Content-Length {cl}")
        seen.framing = "length"
        if any(v.lower() == "100-continue" for v in seen.header("expect")):
            reader.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        seen.body = reader.exact(int(cl[0]))
    seen.complete = True


def read_chunked(reader: Reader, seen: Seen) -> None:
    while True:
        line = reader.line()
        m = CHUNK_LINE.fullmatch(line)
        if not m:
            raise Malformed(f"bad chunk line: {line[:80]!r}")
        size = int(m.group(1), 16)
        if size == 0:
            seen.trailers = parse_fields(reader)
            return
        seen.body += reader.exact(size)
        if reader.exact(2) != b"\r\n":
            raise Malformed("chunk data not followed by CRLF")


def wants_upgrade(seen: Seen) -> bool:
    tokens = {t.strip().lower() for v in seen.header("connection") for t in v.split(",")}
    return "upgrade" in tokens and bool(seen.header("upgrade"))


class Recorder:
    """The server; `seen` holds every request in the order their first byte came."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.connections = 0
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def since(self, t: float) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.started >= t]

    def stop(self) -> None:
        self._stopped = True
        self.sock.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(IDLE_TIMEOUT)
        reader = Reader(conn)
        with conn:
            while True:
                # The request starts with its first byte, so that the runner can tell
                # which case it belongs to even when it never completes.
                if not reader.buf and not reader.fill():
                    return
                seen = Seen(conn=number, started=time.monotonic())
                with self.lock:
                    self.seen.append(seen)
                try:
                    read_request(reader, seen)
                except EOFError:
                    return  # `complete` stays False: the proxy gave up mid-request
                except Malformed as e:
                    seen.problems.append(str(e))
                    self._answer(conn, 400, b"malformed\n", close=True)
                    return
                if wants_upgrade(seen):
                    upgrade = seen.header("upgrade")[0].encode("latin-1")
                    conn.sendall(
                        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: " + upgrade + b"\r\n\r\n"
                    )
                    seen.tunnel = reader.rest()
                    return
                close = seen.version == "HTTP/1.0" or "close" in ",".join(seen.header("connection")).lower()
                self._answer(conn, 200, f"seen {seen.method} {seen.target}\n".encode("latin-1"), close=close)
                if close:
                    return

    @staticmethod
    def _answer(conn: socket.socket, status: int, body: bytes, close: bool) -> None:
        reason = {200: "OK", 400: "Bad Request"}[status]
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
        if close:
            head += "Connection: close\r\n"
        with contextlib.suppress(OSError):
            conn.sendall(head.encode() + b"\r\n" + body)
