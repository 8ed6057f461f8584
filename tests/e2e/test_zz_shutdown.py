"""Last module: stopping the stack leaves no process behind. `isthmus run` exits 0 on
SIGTERM (graceful shutdown) after stopping Django and Reflex, whose process groups
(with any worker they forked) are gone afterwards."""

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
    groups |= {name: stack.child_pid(name) for name in ("django", "reflex")}
    assert "isthmus-main" in groups
    assert all(group_alive(pgid) for pgid in groups.values())

    code = stack.stop_gateway("main")
    assert code == 0, f"isthmus run exited {code} on SIGTERM"
    # isthmus run itself stopped Django and Reflex, before anything else is stopped.
    children = [name for name in ("django", "reflex") if group_alive(groups[name])]
    assert not children, f"isthmus run left {children} running"
    stack.stop_all()
    leftovers = [name for name, pgid in groups.items() if group_alive(pgid)]
    assert not leftovers, f"process groups still alive: {leftovers}"
