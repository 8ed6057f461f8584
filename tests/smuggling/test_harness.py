"""The harness catches what it is there to catch: a byte-for-byte TCP relay (the most
naive "proxy") in front of the recorder must fail the smuggling cases, and a silent
server must count as a hang.

    python3 -m unittest discover -s tests/smuggling
"""

from __future__ import annotations

import socket
import threading
import unittest

import run
from corpus import CASES, HOST, SMUGGLED, Case, get
from recorder import Recorder


def case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


class Relay:
    """Copies bytes both ways between each client and `upstream`, changing nothing."""

    def __init__(self, upstream: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.upstream = upstream
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream)) as server:
            back = threading.Thread(target=self._pipe, args=(server, client))
            back.start()
            self._pipe(client, server)
            back.join()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def no_crash() -> str | None:
    return None


class HarnessTest(unittest.TestCase):
    recorder: Recorder
    relay: Relay

    @classmethod
    def setUpClass(cls) -> None:
        cls.recorder = Recorder()
        cls.relay = Relay(cls.recorder.port)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.relay.sock.close()
        cls.recorder.stop()

    def through_relay(self, c: Case) -> run.Outcome:
        return run.attempt(self.relay.port, c, self.recorder, 2.0, no_crash)

    def test_a_second_request_reaching_the_upstream_fails(self) -> None:
        result = self.through_relay(Case("smuggle", "test", get(headers=HOST) + SMUGGLED))
        assert result.verdict == "FAIL", result
        assert "smuggled request reached the upstream" in result.why, result

    def test_cl_with_te_reaching_the_upstream_fails(self) -> None:
        result = self.through_relay(case("cl-te: CL covers a request after the chunked end"))
        assert result.verdict == "FAIL", result
        assert "both Content-Length and Transfer-Encoding" in result.why, result

    def test_a_forbidden_header_fails(self) -> None:
        result = self.through_relay(case("X-Isthmus-Identity from the client"))
        assert (result.verdict, result.why) == ("FAIL", "forwarded ['x-isthmus-identity']"), result

    def test_a_client_chosen_forwarded_host_or_proto_fails(self) -> None:
        result = self.through_relay(case("X-Forwarded-Host from the client"))
        assert (result.verdict, result.why) == (
            "FAIL",
            "Host ['app.test'] but X-Forwarded-Host ['other.test']",
        ), result
        result = self.through_relay(case("X-Forwarded-Proto: https from the client"))
        assert (result.verdict, result.why) == (
            "FAIL",
            "X-Forwarded-Proto ['https'] on a plain-HTTP connection",
        ), result

    def test_pipelined_requests_pass(self) -> None:
        result = self.through_relay(case("two GETs pipelined"))
        assert (result.verdict, result.client) == ("normalised", "200,200 open"), result

    def test_a_malformed_forwarded_request_fails(self) -> None:
        # The recorder answers 400 itself, but the proxy forwarded what RFC 9112 refuses.
        result = self.through_relay(case("two Host fields"))
        assert result.verdict == "FAIL", result
        assert "2 Host fields" in result.why, result

    def test_silence_is_a_hang(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as silent:
            held: list[tuple[socket.socket, object]] = []
            threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
            c = case("Content-Length: 5 with leading zeros")
            result = run.attempt(silent.getsockname()[1], c, self.recorder, 0.5, no_crash)
            for conn, _ in held:
                conn.close()
        assert (result.verdict, result.hang) == ("FAIL", True), result

    def test_http2_status_codes_are_read(self) -> None:
        # Indexed (static table), a plain literal and a Huffman-coded literal "502".
        assert [run.h2_status(b) for b in (b"\x88", b"\x08\x03431", b"\x08\x83\x6c\x02\xff")] == [200, 431, 502]

    def test_a_crash_fails_whatever_the_answer(self) -> None:
        result = run.attempt(self.relay.port, case("two GETs pipelined"), self.recorder, 2.0, lambda: "crash: test")
        assert (result.verdict, result.why) == ("FAIL", "crash: test"), result


if __name__ == "__main__":
    unittest.main()
