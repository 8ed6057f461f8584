"""Bad input on the bridge: the gateway closes that one socket with a WebSocket close
code and reason, the Reflex backend never sees it, everyone else keeps being served."""

from __future__ import annotations

import json

import pytest

from bridge_client import SHOP, WHOAMI, event
from test_bridge_identity import whoami

# Close codes (RFC 6455): 1002 protocol error, 1008 policy violation, 1009 message too big.
PROTOCOL, POLICY, TOO_BIG = 1002, 1008, 1009

CASES = {
    # max_frame_bytes = 262144 in the test config.
    "oversized frame": ("42/_event," + json.dumps(["event", event(f"{WHOAMI}.whoami", {"blob": "x" * 300_000})]), TOO_BIG, ""),
    "not Engine.IO": ("hello", PROTOCOL, "not a Socket.IO packet"),
    "unknown Socket.IO type": ("49/_event,[]", PROTOCOL, "not a Socket.IO packet"),
    "broken JSON": ('42/_event,["event",{"name":', PROTOCOL, "not a Socket.IO packet"),
    "payload not an array": ('42/_event,{"name":"x"}', PROTOCOL, "not a Socket.IO packet"),
    "event data is a JSON string": (
        "42/_event," + json.dumps(["event", json.dumps(event(f"{SHOP}.deactivate_all"))]),
        PROTOCOL,
        "not a JSON object",
    ),
    "event data is a list": ("42/_event," + json.dumps(["event", [1, 2]]), PROTOCOL, "not a JSON object"),
    "event without a name": ("42/_event," + json.dumps(["event", {"payload": {}}]), PROTOCOL, "no name"),
    "event without data": ('42/_event,["event"]', PROTOCOL, "without data"),
    "empty event name": ("42/_event," + json.dumps(["event", {"name": "", "payload": {}}]), POLICY, "invalid event name"),
    "overlong event name": ("42/_event," + json.dumps(["event", {"name": "x" * 600, "payload": {}}]), POLICY, "invalid event name"),
    "connect auth event is a string": ('40/_event,{"event":"{\\"name\\":\\"x\\"}"}', PROTOCOL, "not a JSON object"),
    "base64 binary in a text frame": ("bAAAA", PROTOCOL, "not a Socket.IO packet"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_closes_only_that_socket(stack, browser, sockets, case):
    frame, code, reason = CASES[case]
    b = browser()
    b.login("plain")
    bystander = await sockets(b)
    assert (await whoami(bystander))["username"] == "plain"

    bad = await sockets(wait=case != "connect auth event is a string", boot=case != "connect auth event is a string")
    if case != "connect auth event is a string":
        assert (await whoami(bad))["authenticated"] is False
    await bad.send_raw(frame)
    closed = await bad.wait_closed(10)
    assert closed.code == code, (case, closed)
    assert reason in closed.reason, (case, closed)

    # The bystander's socket and new sockets still work; Reflex is fine.
    assert (await whoami(bystander))["username"] == "plain"
    fresh = await sockets()
    assert (await whoami(fresh))["authenticated"] is False
    assert stack.child_alive("reflex") and stack.procs["isthmus-main"].alive()


async def test_bad_input_is_logged(stack, sockets):
    bad = await sockets()
    await bad.send_raw("42/_event," + json.dumps(["event", "a string"]))
    closed = await bad.wait_closed(10)
    assert closed.code == PROTOCOL
    log = stack.gateways["main"].proc.log.read_text(errors="replace")
    assert "closing bridged WebSocket" in log


async def test_binary_attachment_cannot_replace_the_injection(stack, sockets):
    """A BINARY_EVENT whose router_data is an attachment placeholder: the gateway's
    injection goes into the placeholder object, which Socket.IO then swaps for bytes, so
    the event fails in Reflex instead of running with a client-made identity."""
    sock = await sockets()
    ev = event(f"{WHOAMI}.whoami")
    ev["router_data"] = {"_placeholder": True, "num": 0}
    await sock.send_raw("451-/_event," + json.dumps(["event", ev]))
    await sock.send_raw(json.dumps({"pathname": "/", "isthmus": {"payload": "{}", "sig": "00"}}).encode())
    # Whatever Reflex makes of it, no handler ran as someone else; the socket goes on.
    seen = await whoami(sock)
    assert seen["authenticated"] is False and seen["username"] == ""
