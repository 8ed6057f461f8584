"""Last module: stopping the stack leaves no process behind. The gateway exits 0 on
SIGTERM (graceful shutdown), and every process group is gone afterwards."""

from __future__ import annotations

import os

import httpx


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def test_stop_everything_without_orphans(stack):
    gw = stack.gateways["main"]
    assert httpx.get(f"{gw.url}/ping", timeout=5).status_code == 200
    groups = {name: p.pid for name, p in stack.procs.items()}
    assert {"django", "reflex", "isthmus-main"} <= set(groups)
    assert all(group_alive(pgid) for pgid in groups.values())

    code = stack.stop_gateway("main")
    assert code == 0, f"isthmus serve exited {code} on SIGTERM"
    stack.stop_all()
    leftovers = [name for name, pgid in groups.items() if group_alive(pgid)]
    assert not leftovers, f"process groups still alive: {leftovers}"
