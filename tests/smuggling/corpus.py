"""The cases: raw bytes a client writes on one fresh connection, and what a proxy may do
with them.

Every request path that must never reach the upstream contains `smuggled`; a request
the wire legitimately carries after another one uses `/second`. `requests` is how many
requests the bytes carry when the proxy accepts them (pipelining carries several);
`accept` says which verdicts are correct: `refused` where RFC 9112/9110 require a 400
(an invalid Content-Length, chunked not final, two Host fields, a space before a colon,
...), both where a proxy may either refuse or repair the message (CL with TE, obs-fold,
bare LF).
"""

from __future__ import annotations

from dataclasses import dataclass

HOST = b"Host: app.test\r\n"
OWN_HEADERS = "isthmus's own headers"
H2C = "nginx's port speaks HTTP/1 only"
REFUSED = frozenset({"refused"})
NORMALISED = frozenset({"normalised"})
EITHER = frozenset({"refused", "normalised"})
SMUGGLED = b"GET /smuggled HTTP/1.1\r\n" + HOST + b"\r\n"
# The chunked coding of b"hello".
HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"


def h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """One HTTP/2 frame (RFC 9113 §4.1)."""
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_int(value: int, prefix: int, first: int = 0) -> bytes:
    """An HPACK integer with a `prefix`-bit prefix (RFC 7541 §5.1)."""
    top = (1 << prefix) - 1
    if value < top:
        return bytes([first | value])
    out, value = bytearray([first | top]), value - top
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


def h2_request(fields: list[tuple[bytes, bytes]], data: bytes | None = None) -> bytes:
    """The client preface, an empty SETTINGS frame and one request on stream 1: its fields
    as literals without indexing (no Huffman), so any bytes can be sent, and `data` as one
    DATA frame ending the stream."""
    block = b"".join(
        b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value for name, value in fields
    )
    end_headers, end_stream = 0x4, 0x1
    out = H2_PREFACE + h2_frame(0x1, end_headers | (end_stream if data is None else 0), 1, block)
    if data is not None:
        out += h2_frame(0x0, end_stream, 1, data)
    return out


# The HTTP/2 connection preface and an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0, b"")
H2_GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"app.test")]
H2_POST = [(b":method", b"POST"), *H2_GET[1:]]


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    wire: bytes
    accept: frozenset[str] = EITHER
    requests: int = 1
    # The body the first forwarded request must carry when the proxy forwards it.
    body: bytes | None = None
    # Header or trailer names that must not reach the upstream (`_` counts as `-`).
    forbid: tuple[str, ...] = ()
    # Names that must not reach the upstream as trailer fields.
    forbid_trailers: tuple[str, ...] = ()
    # The message is incomplete on purpose: the client shuts its sending side, so a
    # proxy waiting for the rest sees the end instead of waiting for ever.
    half_close: bool = False
    # The bytes are HTTP/2 (prior knowledge): an answer in HTTP/2 is read as such.
    h2: bool = False
    # Why the case is run against isthmus only, when it is (the gateway's own headers,
    # which nginx knows nothing of; HTTP/2 in the clear, which nginx's port does not speak).
    isthmus_only: str = ""


def post(headers: bytes, body: bytes, target: bytes = b"/") -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\n" + HOST + headers + b"\r\n" + body


def cl(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n" % len(body)


def te_post(te_line: bytes, chunked: bytes = HELLO_CHUNKED) -> bytes:
    return post(te_line, chunked)


def get(target: bytes = b"/", headers: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + headers + b"\r\n"


CASES: list[Case] = [
    # ------------------------------------------------------------ Content-Length with Transfer-Encoding
    Case(
        "cl-te: CL covers a request after the chunked end",
        "CL+TE",
        post(cl(HELLO_CHUNKED + SMUGGLED) + b"Transfer-Encoding: chunked\r\n", HELLO_CHUNKED + SMUGGLED),
        body=b"hello",
    ),
    Case(
        "te-cl: TE first, CL shorter than the chunks",
        "CL+TE",
        post(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", HELLO_CHUNKED),
        body=b"hello",
    ),
    Case(
        "te-cl: a request inside the chunk data",
        "CL+TE",
        post(
            b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n",
        ),
        body=SMUGGLED,
    ),
    Case(
        "TE chunked and CL: 0 then a request",
        "CL+TE",
        post(b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED + SMUGGLED),
        body=b"hello",
    ),
    Case(
        "TE and CL in HTTP/1.0",
        "CL+TE",
        b"POST / HTTP/1.0\r\n"
        + HOST
        + cl(HELLO_CHUNKED)
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + HELLO_CHUNKED
        + SMUGGLED,
    ),
    Case(
        "TE chunked in HTTP/1.0 then a request",
        "CL+TE",
        b"POST / HTTP/1.0\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n" + HELLO_CHUNKED + SMUGGLED,
    ),
    # ------------------------------------------------------------ Content-Length values
    Case(
        "two Content-Lengths differing",
        "Content-Length",
        post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
        REFUSED,
    ),
    Case(
        "two Content-Lengths equal",
        "Content-Length",
        post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
        body=b"hello",
    ),
    Case("Content-Length: 5, 5", "Content-Length", post(b"Content-Length: 5, 5\r\n", b"hello"), body=b"hello"),
    Case("Content-Length: 5, 6", "Content-Length", post(b"Content-Length: 5, 6\r\n", b"hello!"), REFUSED),
    Case("Content-Length: +5", "Content-Length", post(b"Content-Length: +5\r\n", b"hello"), REFUSED),
    Case("Content-Length: -1", "Content-Length", post(b"Content-Length: -1\r\n", b"hello"), REFUSED),
    Case("Content-Length: 0x5", "Content-Length", post(b"Content-Length: 0x5\r\n", b"hello"), REFUSED),
    Case(
        "Content-Length: 5 with leading zeros",
        "Content-Length",
        post(b"Content-Length: 0005\r\n", b"hello"),
        body=b"hello",
    ),
    Case("Content-Length: 5 5", "Content-Length", post(b"Content-Length: 5 5\r\n", b"hello"), REFUSED),
    Case("empty Content-Length", "Content-Length", post(b"Content-Length: \r\n", b"hello"), REFUSED),
    Case(
        "Content-Length: 5 between tabs", "Content-Length", post(b"Content-Length:\t5\t\r\n", b"hello"), body=b"hello"
    ),
    Case(
        "Content-Length of 20 digits",
        "Content-Length",
        post(b"Content-Length: 99999999999999999999\r\n", b"hello"),
        REFUSED,
        half_close=True,
    ),
    Case(
        "Content-Length longer than the body",
        "Content-Length",
        post(b"Content-Length: 10\r\n", b"hello"),
        REFUSED,
        half_close=True,
    ),
    Case(
        "Connection names Content-Length",
        "Content-Length",
        post(b"Connection: Content-Length\r\n" + cl(SMUGGLED), SMUGGLED),
        body=SMUGGLED,
    ),
    # ------------------------------------------------------------ Transfer-Encoding values
    Case("TE: chunked, identity", "Transfer-Encoding", te_post(b"Transfer-Encoding: chunked, identity\r\n"), REFUSED),
    Case(
        "TE: identity, chunked",
        "Transfer-Encoding",
        te_post(b"Transfer-Encoding: identity, chunked\r\n"),
        body=b"hello",
    ),
    Case("TE: xchunked", "Transfer-Encoding", te_post(b"Transfer-Encoding: xchunked\r\n"), REFUSED),
    Case(
        "TE: chunked with trailing space",
        "Transfer-Encoding",
        te_post(b"Transfer-Encoding: chunked \r\n"),
        body=b"hello",
    ),
    Case("TE: tab before chunked", "Transfer-Encoding", te_post(b"Transfer-Encoding:\tchunked\r\n"), body=b"hello"),
    Case("TE: CHUNKED upper case", "Transfer-Encoding", te_post(b"Transfer-Encoding: CHUNKED\r\n"), body=b"hello"),
    Case(
        "TE: chunked twice (two fields)",
        "Transfer-Encoding",
        te_post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
    ),
    Case(
        "TE with a space before the colon, and CL",
        "Transfer-Encoding",
        post(b"Transfer-Encoding : chunked\r\n" + cl(HELLO_CHUNKED), HELLO_CHUNKED),
        REFUSED,
    ),
    Case(
        "TE: \\x0bchunked (vertical tab), and CL",
        "Transfer-Encoding",
        post(b"Transfer-Encoding: \x0bchunked\r\n" + cl(HELLO_CHUNKED), HELLO_CHUNKED),
        REFUSED,
    ),
    Case(
        "Connection names Transfer-Encoding",
        "Transfer-Encoding",
        te_post(b"Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n"),
        body=b"hello",
    ),
    # ------------------------------------------------------------ obs-fold, bare LF, NUL and controls
    Case(
        "obs-fold continuing Transfer-Encoding, and CL",
        "obs-fold",
        post(b"Transfer-Encoding:\r\n chunked\r\n" + cl(HELLO_CHUNKED), HELLO_CHUNKED),
    ),
    Case("obs-fold in X-Foo", "obs-fold", get(headers=HOST + b"X-Foo: a\r\n b\r\n")),
    Case("bare LF line ends", "bare LF", b"GET / HTTP/1.1\nHost: app.test\nX-Foo: a\n\n"),
    Case(
        "bare LF after the chunk size",
        "bare LF",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n"),
        body=b"hello",
    ),
    Case("bare CR in a header value", "controls", get(headers=HOST + b"X-Foo: a\rb\r\n")),
    Case("NUL in a header value", "controls", get(headers=HOST + b"X-Foo: a\x00b\r\n")),
    Case("NUL in the target", "controls", get(b"/a\x00b", HOST), REFUSED),
    Case("control character in a header name", "controls", get(headers=HOST + b"X-F\x01oo: a\r\n"), REFUSED),
    Case("space before the colon", "controls", get(headers=HOST + b"X-Foo : a\r\n"), REFUSED),
    Case("header name with an underscore", "controls", get(headers=HOST + b"X_Foo: a\r\n")),
    # ------------------------------------------------------------ chunk sizes and extensions
    Case("chunk size +5", "chunks", te_post(b"Transfer-Encoding: chunked\r\n", b"+5\r\nhello\r\n0\r\n\r\n"), REFUSED),
    Case("chunk size 0x5", "chunks", te_post(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"), REFUSED),
    Case("chunk size -5", "chunks", te_post(b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n"), REFUSED),
    Case(
        "chunk size 5 then a space",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5 \r\nhello\r\n0\r\n\r\n"),
        body=b"hello",
    ),
    Case(
        "chunk size of 2^72 (overflow)",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b"1000000000000000005\r\nhello\r\n0\r\n\r\n"),
        REFUSED,
        half_close=True,
    ),
    Case(
        "chunk size with 5000 leading zeros",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b"0" * 5000 + b"5\r\nhello\r\n0\r\n\r\n"),
        body=b"hello",
    ),
    Case(
        "chunk extension of 20000 bytes",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5;a=" + b"b" * 20000 + b"\r\nhello\r\n0\r\n\r\n"),
        body=b"hello",
    ),
    Case(
        "chunk extension with a quoted string",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b'5;name="a\\"b;c"\r\nhello\r\n0\r\n\r\n'),
        body=b"hello",
    ),
    Case(
        "chunk extension with a bare CR",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
        body=b"hello",
    ),
    Case(
        "chunk extension ended by a bare LF, then a request",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5;a\n" + b"hello\r\n0\r\n\r\n" + get(b"/second", HOST)),
        requests=2,
    ),
    Case(
        "chunk data longer than its size",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b"3\r\nhello\r\n0\r\n\r\n"),
        REFUSED,
    ),
    Case(
        "missing final CRLF after the last chunk",
        "chunks",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n"),
        half_close=True,
    ),
    Case(
        "trailer Content-Length",
        "trailers",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
        body=b"hello",
        forbid_trailers=("content-length",),
    ),
    Case(
        "trailer X-Isthmus-Identity",
        "trailers",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX-Isthmus-Identity: forged\r\n\r\n"),
        body=b"hello",
        forbid=("x-isthmus-identity",),
    ),
    Case(
        "trailer Transfer-Encoding",
        "trailers",
        te_post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        body=b"hello",
        forbid_trailers=("transfer-encoding",),
    ),
    # ------------------------------------------------------------ the gateway's own headers
    Case(
        "X-Isthmus-Identity from the client",
        "gateway headers",
        get(headers=HOST + b"X-Isthmus-Identity: forged\r\n"),
        forbid=("x-isthmus-identity",),
        isthmus_only=OWN_HEADERS,
    ),
    Case(
        "X-Isthmus_Identity (underscore)",
        "gateway headers",
        get(headers=HOST + b"X-Isthmus_Identity: forged\r\n"),
        forbid=("x-isthmus-identity",),
        isthmus_only=OWN_HEADERS,
    ),
    Case(
        "X-Isthmus_Secret (underscore)",
        "gateway headers",
        get(headers=HOST + b"X-Isthmus_Secret: guess\r\n"),
        forbid=("x-isthmus-secret",),
        isthmus_only=OWN_HEADERS,
    ),
    Case(
        "X-Isthmus-Secret from the client",
        "gateway headers",
        get(headers=HOST + b"X-Isthmus-Secret: guess\r\n"),
        forbid=("x-isthmus-secret",),
        isthmus_only=OWN_HEADERS,
    ),
    # ------------------------------------------------------------ request line and target
    Case("absolute-form target", "request line", get(b"http://app.test/abs", HOST)),
    Case("absolute-form with another host than Host", "request line", get(b"http://other.test/abs", HOST)),
    Case("absolute-form with userinfo", "request line", get(b"http://user@app.test/abs", HOST)),
    Case("absolute-form https", "request line", get(b"https://app.test/abs", HOST)),
    Case("empty line before the request line", "request line", b"\r\n" + get(headers=HOST)),
    Case("lower-case method", "request line", get(headers=HOST).replace(b"GET", b"get", 1)),
    Case("empty header name", "controls", get(headers=HOST + b": a\r\n"), REFUSED),
    Case("two spaces in the request line", "request line", b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n"),
    Case("HTTP/0.9 request", "request line", b"GET /\r\n", half_close=True),
    Case("OPTIONS *", "request line", b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n"),
    Case("CONNECT", "request line", b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n"),
    Case("target without a slash", "request line", get(b"app", HOST)),
    Case("version HTTP/1.2", "request line", get(headers=HOST, version=b"HTTP/1.2")),
    Case("missing end of the head", "request line", b"GET / HTTP/1.1\r\n" + HOST, half_close=True),
    Case("request line of 70000 bytes", "request line", get(b"/" + b"a" * 70000, HOST)),
    Case("201 header fields", "request line", get(headers=HOST + b"".join(b"X-%d: a\r\n" % i for i in range(200)))),
    # ------------------------------------------------------------ Host
    Case("two Host fields", "Host", b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n", REFUSED),
    Case("no Host in HTTP/1.1", "Host", get(), REFUSED),
    Case("empty Host", "Host", get(headers=b"Host: \r\n")),
    Case("Host with userinfo", "Host", get(headers=b"Host: user@app.test\r\n"), REFUSED),
    Case("Host with another port", "Host", get(headers=b"Host: app.test:8443\r\n")),
    Case("Host with a path", "Host", get(headers=b"Host: app.test/evil\r\n"), REFUSED),
    Case("X-Forwarded-Host from the client", "Host", get(headers=HOST + b"X-Forwarded-Host: other.test\r\n")),
    Case("X-Forwarded-Proto: https from the client", "Host", get(headers=HOST + b"X-Forwarded-Proto: https\r\n")),
    # ------------------------------------------------------------ Expect
    Case("Expect: 100-continue", "Expect", post(b"Expect: 100-continue\r\n" + cl(b"hello"), b"hello"), body=b"hello"),
    Case(
        "Expect: 100-continue, chunked",
        "Expect",
        te_post(b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n"),
        body=b"hello",
    ),
    Case(
        "Expect: something-else", "Expect", post(b"Expect: something-else\r\n" + cl(b"hello"), b"hello"), body=b"hello"
    ),
    # ------------------------------------------------------------ pipelining and connection reuse
    Case("two GETs pipelined", "pipelining", get(headers=HOST) + get(b"/second", HOST), NORMALISED, requests=2),
    Case(
        "POST then GET pipelined",
        "pipelining",
        post(cl(b"hello"), b"hello") + get(b"/second", HOST),
        NORMALISED,
        requests=2,
        body=b"hello",
    ),
    Case(
        "chunked POST then two GETs pipelined",
        "pipelining",
        te_post(b"Transfer-Encoding: chunked\r\n") + get(b"/second", HOST) + get(b"/second", HOST),
        NORMALISED,
        requests=3,
        body=b"hello",
    ),
    Case(
        "Connection: close then a request",
        "pipelining",
        get(headers=HOST + b"Connection: close\r\n") + SMUGGLED,
        NORMALISED,
    ),
    Case("HTTP/1.0 then a request", "pipelining", get(headers=HOST, version=b"HTTP/1.0") + SMUGGLED, NORMALISED),
    Case("GET with a body", "pipelining", get(headers=HOST + cl(b"hello")) + b"hello", body=b"hello"),
    Case("GET whose body is a request", "pipelining", get(headers=HOST + cl(SMUGGLED)) + SMUGGLED, body=SMUGGLED),
    # ------------------------------------------------------------ upgrades
    Case(
        "WebSocket upgrade on POST with a body",
        "upgrade",
        post(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + cl(b"hello"),
            b"hello",
        ),
    ),
    Case(
        "Upgrade: h2c on GET",
        "h2c",
        get(
            headers=HOST
            + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"
        ),
        forbid=("upgrade", "http2-settings"),
    ),
    Case(
        "Upgrade: h2c on POST, then the preface",
        "h2c",
        post(
            b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"
            + cl(b"hello"),
            b"hello",
        )
        + H2_PREFACE,
        forbid=("upgrade", "http2-settings"),
        body=b"hello",
    ),
    Case("HTTP/2 preface on the HTTP/1 port", "h2c", H2_PREFACE, requests=0, h2=True),
    # ------------------------------------------------------------ HTTP/2 downgraded to HTTP/1.1 upstream
    Case("h2 GET", "h2 downgrade", h2_request(H2_GET), NORMALISED, h2=True, isthmus_only=H2C),
    Case(
        "h2 POST with transfer-encoding: chunked, a request in the data",
        "h2 downgrade",
        h2_request([*H2_POST, (b"transfer-encoding", b"chunked")], b"0\r\n\r\n" + SMUGGLED),
        REFUSED,
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 POST with content-length: 0, a request in the data",
        "h2 downgrade",
        h2_request([*H2_POST, (b"content-length", b"0")], SMUGGLED),
        REFUSED,
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 POST, content-length matching the data",
        "h2 downgrade",
        h2_request([*H2_POST, (b"content-length", b"5")], b"hello"),
        NORMALISED,
        body=b"hello",
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 POST without content-length",
        "h2 downgrade",
        h2_request(H2_POST, SMUGGLED),
        NORMALISED,
        body=SMUGGLED,
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 field value with CRLF and a header",
        "h2 downgrade",
        h2_request([*H2_GET, (b"x-foo", b"a\r\nTransfer-Encoding: chunked")]),
        REFUSED,
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 field name with CRLF and a request",
        "h2 downgrade",
        h2_request([*H2_GET, (b"x-foo: a\r\n\r\n" + SMUGGLED[:-4] + b"\r\nx-bar", b"b")]),
        REFUSED,
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 upper-case field name",
        "h2 downgrade",
        h2_request([*H2_GET, (b"X-Foo", b"a")]),
        REFUSED,
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 connection-specific field",
        "h2 downgrade",
        h2_request([*H2_GET, (b"connection", b"keep-alive")]),
        REFUSED,
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 :path with a space and a version",
        "h2 downgrade",
        h2_request(
            [
                (b":path", b"/ HTTP/1.1\r\nHost: app.test\r\n\r\nGET /smuggled") if n == b":path" else (n, v)
                for n, v in H2_GET
            ]
        ),
        REFUSED,
        h2=True,
        isthmus_only=H2C,
    ),
    Case(
        "h2 host differing from :authority",
        "h2 downgrade",
        h2_request([*H2_GET, (b"host", b"other.test")]),
        h2=True,
        isthmus_only=H2C,
    ),
]
