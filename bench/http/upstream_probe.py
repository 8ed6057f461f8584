"""What an upstream does per request behind each proxy: the uvicorn-asgi cases of
run.py (direct, nginx, isthmus, and `--compare`'s isthmus-compare) side by side in one
run, with the same pinning, each process counted apart.

    python bench/http/upstream_probe.py RESULTS_DIR --rd-python PY [--reps 8] [--secs 3]
                                        [--isthmus BIN] [--compare OTHER_ISTHMUS]

Per request (32 connections, wrk alternating the two paths): the CPU of each uvicorn
per request it served and of the proxy (`/proc/PID/task/*/schedstat`, ns), and, when
`perf` can count tracepoints, the syscalls of each process by kind and the context
switches of each process and of the whole server CPU. Before the runs it prints the
exact request head each proxy sends upstream (a raw TCP upstream records it). Writes
RESULTS_DIR/upstream.json (rows as bench/README.md describes, section `upstream`).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402
import run as R  # noqa: E402

EVENTS = {
    "syscalls": "raw_syscalls:sys_enter",
    "read": "syscalls:sys_enter_read",
    "recvfrom": "syscalls:sys_enter_recvfrom",
    "write": "syscalls:sys_enter_write",
    "writev": "syscalls:sys_enter_writev",
    "epoll waits": "syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait",
    "context switches": "sched:sched_switch",
}


def run_ns(pid: int) -> int:
    """Time on CPU of every thread of `pid`, in ns."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except OSError:
            pass
    return total


def perf_works() -> bool:
    p = subprocess.run(["perf", "stat", "-x", ",", "-e", "sched:sched_switch", "true"], capture_output=True, text=True)
    return p.returncode == 0 and "not supported" not in p.stderr


def perf_stat(target: list[str], out: Path) -> subprocess.Popen:
    events = ",".join(EVENTS.values())
    return subprocess.Popen(["perf", "stat", "-x", ",", "-e", events, "-o", str(out), *target], stderr=subprocess.DEVNULL)


def read_perf(path: Path) -> dict[str, int]:
    """Counts by the names of EVENTS (several tracepoints of one name are summed)."""
    by_event = {}
    for line in path.read_text().splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].strip().isdigit():
            by_event[parts[2]] = int(parts[0])
    return {name: sum(by_event.get(e, 0) for e in events.split(",")) for name, events in EVENTS.items()}


def capture_heads(env: R.Env, kinds: list[str]) -> None:
    """Print the request head each proxy sends for each path (a raw upstream records it)."""
    seen: list[bytes] = []

    def serve(conn: socket.socket, answer: bytes) -> None:
        with conn:
            while data := conn.recv(65536):
                seen.append(data)
                conn.sendall(answer)

    def upstream(sock: socket.socket, label: bytes) -> None:
        answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-upstream: " + label + b"\r\n\r\nok"
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn, answer), daemon=True).start()

    socks = []
    for label in (b"django", b"reflex"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        socks.append(s)
        threading.Thread(target=upstream, args=(s, label), daemon=True).start()
    dj, rx = (s.getsockname()[1] for s in socks)
    for kind in kinds:
        port = B.free_port()
        proxy = env.nginx_proxy(port, dj, rx, "nginx-capture") if kind == "nginx" else env.isthmus_gateway(kind, port, dj, rx)
        try:
            seen.clear()
            for path in R.PATHS:
                B.http_get(port, path)
            B.log(f"upstream_probe: {kind} sends upstream ({len(seen)} reads for {len(R.PATHS)} requests):")
            for data in seen:
                print(f"--- {kind}, one recv() of {len(data)} bytes\n{data.decode('latin-1')}", flush=True)
        finally:
            proxy.stop()
    for s in socks:
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--rd-python", required=True, help="python of the venv with uvicorn[standard]")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--secs", type=float, default=3.0)
    ap.add_argument("--isthmus", type=Path, default=B.REPO / "target/release/isthmus")
    ap.add_argument("--compare", type=Path, metavar="OTHER_ISTHMUS")
    ap.add_argument("--plugin", type=Path, default=B.REPO / "target/plugins/prefix_router.wasm")
    args = ap.parse_args()
    binaries = {"isthmus": args.isthmus, **({"isthmus-compare": args.compare} if args.compare else {})}
    work = Path(tempfile.mkdtemp(prefix="isthmus-bench-upstream-"))
    env = R.Env(work, binaries, args.plugin, args.rd_python)
    cases = {name: start for name, start in R.cases(env, True).items()
             if name.startswith("uvicorn-asgi/") and not name.endswith("/reflex-django")}
    names = list(cases)
    counting = perf_works()
    if not counting:
        B.log("upstream_probe: perf cannot count tracepoints here: CPU only")
    res = B.Results("upstream", args.results / "upstream.json")
    capture_heads(env, [n.split("/")[1] for n in names if not n.endswith("/direct")])
    try:
        for rep in range(args.reps):
            for case in names[rep % len(names):] + names[: rep % len(names)]:
                port, servers = cases[case]()
                try:
                    B.wrk(port, R.PATHS, 32, 2)  # warm-up, discarded
                    # uvicorns first, the proxy (if any) last; nginx's worker is its last pid
                    roles = {s.name: s.pids()[-1] for s in servers}
                    before = {role: run_ns(pid) for role, pid in roles.items()}
                    b0, a0 = B.cpu_busy_ticks(B.SERVER_CPU)
                    stats = {}
                    if counting:
                        stats = {role: (work / f"{role}.perf", perf_stat(["-p", str(pid)], work / f"{role}.perf"))
                                 for role, pid in roles.items()}
                        stats["server CPU"] = (work / "cpu.perf", perf_stat(["-a", "-C", B.SERVER_CPU], work / "cpu.perf"))
                        time.sleep(0.2)
                    r = B.wrk(port, R.PATHS, 32, args.secs)
                    for _, p in stats.values():
                        p.send_signal(2)
                        p.wait()
                    b1, a1 = B.cpu_busy_ticks(B.SERVER_CPU)
                    after = {role: run_ns(pid) for role, pid in roles.items()}
                finally:
                    for s in reversed(servers):
                        s.stop()
                ups = [role for role in roles if role.startswith("uvicorn")]
                served = r.requests / len(ups)
                mine = sum(after[role] - before[role] for role in roles) / 1e3
                busy = (b1 - b0) * 1e6 / B.CLK_TCK
                res.add(case, "other load on server CPU", "%", max(0.0, busy - mine) * 100 / max(1.0, (a1 - a0) * 1e6 / B.CLK_TCK))
                res.add(case, "CPU per request: all servers", "µs", mine / r.requests)
                res.add(case, "CPU per request served: each uvicorn", "µs",
                        sum(after[u] - before[u] for u in ups) / 1e3 / len(ups) / served)
                if len(roles) > len(ups):
                    proxy = next(role for role in roles if role not in ups)
                    res.add(case, "CPU per request: proxy", "µs", (after[proxy] - before[proxy]) / 1e3 / r.requests)
                for role, (path, _) in stats.items():
                    who = "uvicorn" if role in ups else role if role == "server CPU" else "proxy"
                    per = served if role in ups else r.requests
                    for name, n in read_perf(path).items():
                        if who == "server CPU" and name not in ("syscalls", "context switches"):
                            continue
                        if who == "uvicorn" and role != ups[0]:
                            continue  # one uvicorn stands for both (they get the same traffic)
                        res.add(case, f"{name} per request: {who}", "count", n / per)
                B.log(f"upstream_probe rep {rep + 1}/{args.reps} {case}: {r.rps:.0f} req/s, "
                      f"{mine / r.requests:.1f} µs CPU/req")
            res.write()  # after every repetition: a failed run keeps what it measured
    finally:
        B.stop_all()
    for row in sorted((s.row() for s in res.series.values()), key=lambda row: (row["metric"], row["case"])):
        print(f"{row['metric']:45} {row['case']:32} {row['median']:9.2f}  ({row['min']:.2f} – {row['max']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
