"""The shop scaled out (examples/shop/scaled.py, `run.sh --scaled`) under `isthmus run`:
Redis, two Reflex replicas keeping their state in it and two Django workers, all
started by the gateway; the work spread over the replicas (the access log names the
endpoint), each Reflex client kept on one replica by its token, the gateway's `[redis]`
link up, and a client's state surviving a rolling restart (SIGHUP) of every replica."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket

import httpx
import pytest
from stack import EXAMPLE, free_port, wait_until
from test_bridge_identity import whoami

_spec = importlib.util.spec_from_file_location("scaled", EXAMPLE / "scaled.py")
assert _spec and _spec.loader
scaled = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaled)


def free_pair() -> int:
    """The first of two loopback ports in a row that were free a moment ago."""
    while True:
        first = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", first + 1))
            except OSError:
                continue
        return first


@pytest.fixture(scope="module")
def scaled_gateway(stack):
    ports = {"django": free_pair(), "reflex": free_pair(), "redis": free_port()}

    def edit(config):
        made = scaled.scale(config, ports)
        config.clear()
        config.update(made)

    env = stack.env(**scaled.environment(ports["redis"]))
    gw = stack.start_gateway("scaled", run=True, env=env, edit=edit)
    yield gw, ports
    if "scaled" in stack.gateways:
        stack.stop_gateway("scaled")


def endpoints_in_access_log(log: str, path: str) -> set[str]:
    found = set()
    for line in log.splitlines():
        if "isthmus::access" in line and f"path={path}" in line:
            m = re.search(r'endpoint="?([^"\s]+)', line)
            if m:
                found.add(m.group(1))
    return found


async def test_every_process_is_started_and_the_work_is_spread(stack, scaled_gateway, sockets):
    gw, ports = scaled_gateway
    log = gw.log()
    for name in ("django", "reflex"):
        for port in (ports[name], ports[name] + 1):
            assert re.search(rf"started upstream=\"?{name} \(127\.0\.0\.1:{port}\)", log), (name, port, log[-4000:])
    assert re.search(r"started upstream=\"?redis", log), log[-4000:]
    wait_until("the gateway's Redis link", lambda: "Redis link up" in gw.log(), timeout=30)

    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(12):
            assert (await client.get(f"{gw.url}/api/shop/active/")).status_code == 200
    django = {f"127.0.0.1:{p}" for p in (ports["django"], ports["django"] + 1)}
    wait_until(
        "both Django workers answered",
        lambda: endpoints_in_access_log(gw.log(), "/api/shop/active/") == django,
        timeout=10,
    )

    # Sixteen clients, sixteen tokens: spread over both Reflex replicas by the hash.
    for _ in range(16):
        sock = await sockets(gateway="scaled")
        seen = await whoami(sock)
        assert seen["calls"] == 1 and seen["verified"] is True, seen
    reflex = {f"127.0.0.1:{p}" for p in (ports["reflex"], ports["reflex"] + 1)}
    wait_until(
        "both Reflex replicas got clients", lambda: endpoints_in_access_log(gw.log(), "/_event/") == reflex, timeout=10
    )


async def test_a_client_keeps_its_replica_and_its_state_survives_a_rolling_restart(stack, scaled_gateway, sockets):
    gw, _ = scaled_gateway
    first = await sockets(gateway="scaled")
    token = first.token
    await whoami(first)
    assert (await whoami(first))["calls"] == 2

    # The same token again: the same replica, on every connection.
    lines_before = len(gw.log().splitlines())
    for _ in range(3):
        again = await sockets(gateway="scaled", token=token)
        await again.close()
    mine = [
        re.search(r'endpoint="?([^"\s]+)', line).group(1)  # type: ignore[union-attr]
        for line in gw.log().splitlines()[lines_before:]
        if "isthmus::access" in line and "path=/_event/" in line and "endpoint=" in line
    ]
    assert len(mine) == 3 and len(set(mine)) == 1, mine

    # SIGHUP: every replica restarted in turn, drained first. The client's page state
    # lives in Redis, so whichever replica it lands on next has it.
    os.kill(gw.proc.pid, signal.SIGHUP)
    wait_until(
        "the rolling restarts",
        lambda: gw.log().count("rolling restart done") >= 2 and gw.log().count("started again (rolling restart)") >= 4,
        timeout=240,
        procs=[gw.proc],
    )
    await first.wait_closed(timeout=30)
    back = await sockets(gateway="scaled", token=token)
    assert (await whoami(back))["calls"] == 3, "the state of the page survived the restart of both replicas"
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{gw.url}/api/shop/active/")).status_code == 200
