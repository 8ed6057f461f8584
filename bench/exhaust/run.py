"""Resource exhaustion (HARDENING.md, "Resource exhaustion"):

    python bench/exhaust/run.py RESULTS_DIR [--quick] [--only=memory,ping]

memory: resident memory of `isthmus serve` (release build, one worker) at 0, 1 000, 5 000
  and 9 900 (BENCH_HOLD; see HOLD_COUNTS) idle WebSockets through the event bridge, against bench/ws's Socket.IO upstream
  (`wsbench serve --mode sio`, its identity stub standing in for Django), held by
  `wsbench hold`. Each count is held by a fresh gateway, SETTLE_S after its start: RSS
  before is the 0 row. Once each.
ping: `/ping` latency (p50, p99) unloaded, then while a slowloris (2 000 connections from
  127.0.0.2–9, each sending one header line every 5 s, reopened when closed) and a
  connection flood (connect and reset, as fast as one process manages, from 127.0.0.10)
  run; for isthmus (default caps) and for nginx (one worker) proxying the same
  return-200 upstream (bench/http's recipe: `/ping` is an upstream answer, not the
  gateway's). Each probe is a new connection from 127.0.0.1, 50 a second: 20 s unloaded,
  30 s loaded, three repetitions, the two servers alternating.

Servers on BENCH_SERVER_CPU, load and probe on BENCH_LOADGEN_CPU (the load generators at
nice 10, so the probe is not queued behind them). Everything listens on 127.0.0.1, every
load is bounded in time, only processes started here are stopped, by PID. Writes
RESULTS_DIR/exhaust.json (rows as in bench/README.md) and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import resource
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import benchlib as B  # noqa: E402


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ws = _load("ws_bench", HERE.parent / "ws" / "bench.py")
http = _load("http_bench", HERE.parent / "http" / "run.py")

# 10 000 would need 20 000 descriptors in the gateway alone, plus its own: above the
# hard limit (20 000) of the machine the published figures come from. Set BENCH_HOLD.
# 5 000 is what bench/ws holds (BENCHMARKS.md), for comparison.
HOLD_COUNTS = [1000, 5000, int(os.environ.get("BENCH_HOLD", "9900"))]
SETTLE_S = 10
SLOWLORIS = 2000
SLOWLORIS_SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]  # 250 each: under the default per-address cap
FLOOD_SOURCE = "127.0.0.10"


def row(case: str, metric: str, unit: str, values: list[float], note: str | None = None) -> dict:
    r = {"section": "exhaust", "case": case, "metric": metric, "unit": unit, "median": statistics.median(values),
         "min": min(values), "max": max(values), "reps": len(values)}
    if note:
        r["note"] = note
    return r


# ---------------------------------------------------------------- memory


def memory(work: Path, logdir: Path, isthmus: Path) -> list[dict]:
    rows = []
    # Per-address cap off (one client address holds them all); caps above the count held.
    extra = "max_connections = 30000\nmax_connections_per_ip = 0\nmax_websockets = 20000\n"
    ws.ISTHMUS = isthmus  # ws_stack starts this build
    # A first gateway compiles the plugins into the cache: what the compile allocated
    # would otherwise be reused by the first count's sockets and hide their cost.
    procs, *_ = ws.ws_stack("sio", "isthmus bridge", work, logdir, "warm-cache", listen_extra=extra)
    for p in procs:
        p.stop()
    before = []
    for n in HOLD_COUNTS:
        B.log(f"memory: holding {n} idle WebSockets through the bridge")
        procs, _, proxy_pids, port = ws.ws_stack("sio", "isthmus bridge", work, logdir, f"hold-{n}", listen_extra=extra)
        try:
            # What loading the plugins allocated and freed is given back to the system
            # by then: the RSS before is the gateway's own, not the compile's leftovers.
            time.sleep(SETTLE_S)
            out = ws.wsbench("hold", url=ws.ws_url(port), mode="sio", pids=proxy_pids, conns=n, settle=3,
                             bound=300, timeout=120, **ws.CLIENT)
        finally:
            for p in procs:
                p.stop()
        if out["conns"] != n or out["errors"]:
            raise RuntimeError(f"held {out['conns']} of {n}: {out['first_error']}")
        before.append(out["rss_before_kb"] / 1024)
        rows.append(row("isthmus bridge", f"RSS at {n} idle WebSockets", "MiB", [out["rss_after_kb"] / 1024]))
        rows.append(row("isthmus bridge", f"RSS per idle WebSocket ({n} held)", "KiB",
                        [(out["rss_after_kb"] - out["rss_before_kb"]) / n]))
    rows.insert(0, row("isthmus bridge", "RSS at 0 WebSockets", "MiB", before, "before each hold"))
    return rows


# ---------------------------------------------------------------- load generators


def _pin_and_nice(niceness: int) -> None:
    os.sched_setaffinity(0, {int(B.LOADGEN_CPU)})
    os.nice(niceness)


def _connect_from(source: str, port: int) -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


def slowloris(port: int, seconds: float, counts) -> None:
    """SLOWLORIS connections, each sending one header line every 5 s; a closed one is
    reopened (counted in `counts[1]`); `counts[0]` is how many are open."""
    _pin_and_nice(10)
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    socks: list[socket.socket | None] = [None] * SLOWLORIS
    end = time.monotonic() + seconds
    line = 0
    while time.monotonic() < end:
        started = time.monotonic()
        for i in range(SLOWLORIS):
            try:
                if socks[i] is None:
                    socks[i] = _connect_from(SLOWLORIS_SOURCES[i % len(SLOWLORIS_SOURCES)], port)
                    socks[i].send(b"GET / HTTP/1.1\r\nHost: x\r\n")
                else:
                    socks[i].send(b"X-%d: %d\r\n" % (line, i))
            except OSError:
                if socks[i] is not None:
                    socks[i].close()
                    counts[1] += 1
                socks[i] = None
        counts[0] = sum(s is not None for s in socks)
        line += 1
        time.sleep(max(0.0, 5.0 - (time.monotonic() - started)))
    for s in socks:
        if s is not None:
            s.close()


def flood(port: int, seconds: float, counts) -> None:
    """Connect and reset (SO_LINGER 0: no TIME_WAIT to run out of ports) as fast as
    one process manages; `counts[0]` connections made, `counts[1]` failed."""
    _pin_and_nice(10)
    linger = struct.pack("ii", 1, 0)
    end = time.monotonic() + seconds
    made = failed = 0
    while time.monotonic() < end:
        for _ in range(100):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            try:
                s.bind((FLOOD_SOURCE, 0))
                s.settimeout(1)
                s.connect(("127.0.0.1", port))
                made += 1
            except OSError:
                failed += 1
            s.close()
        counts[0], counts[1] = made, failed


def probe(port: int, seconds: float, rate: float = 50.0) -> tuple[list[float], int]:
    """GET /ping on a new connection `rate` times a second: latencies (ms) of 200s, and
    how many failed."""
    lat, failed = [], 0
    request = f"GET /ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(request)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                failed += 1
        except OSError:
            failed += 1
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    return lat, failed


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ping_case(name: str, start, probe_s: float, load_s: float) -> dict:
    """One run of a case: p50/p99 unloaded and loaded (ms), and what the load did."""
    port, servers = start()
    try:
        http.check(name, port)
        B.log(f"ping: {name} unloaded")
        quiet, quiet_failed = probe(port, probe_s)
        B.log(f"ping: {name} under slowloris ({SLOWLORIS}) and connection flood")
        lor_counts, flood_counts = multiprocessing.Array("l", 2), multiprocessing.Array("l", 2)
        loads = [multiprocessing.Process(target=slowloris, args=(port, load_s + 10, lor_counts)),
                 multiprocessing.Process(target=flood, args=(port, load_s + 10, flood_counts))]
        for p in loads:
            p.start()
        time.sleep(8)  # the slowloris connections are open (one pass) and the flood runs
        flood_before, t0 = flood_counts[0], time.monotonic()
        loaded, loaded_failed = probe(port, load_s)
        flood_rate = (flood_counts[0] - flood_before) / (time.monotonic() - t0)
        held, reopened = lor_counts[0], lor_counts[1]
        for p in loads:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
        alive = all(s.alive() for s in servers)
    finally:
        for s in reversed(servers):
            s.stop()
    if not alive:
        raise RuntimeError(f"{name} died under load")
    run = {"p50": percentile(quiet, 0.5), "p99": percentile(quiet, 0.99), "p50 loaded": percentile(loaded, 0.5),
           "p99 loaded": percentile(loaded, 0.99), "slowloris open": held, "slowloris reopened": reopened,
           "flood/s": flood_rate, "flood failed": flood_counts[1], "probes failed": quiet_failed + loaded_failed}
    B.log(f"ping: {name}: {run}")
    return run


def ping(work: Path, isthmus: Path, quick: bool) -> list[dict]:
    env = http.Env(work, {"isthmus": isthmus},
                   B.REPO / "target" / "plugins" / "prefix_router.wasm", None)
    cases = http.cases(env, with_rd=False)
    probe_s, load_s, reps = (5, 10, 1) if quick else (20, 30, 3)
    names = ("return-200/isthmus", "return-200/nginx")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):  # alternate who goes first
            runs[name].append(ping_case(name, cases[name], probe_s, load_s))
    rows = []
    for name, rs in runs.items():
        def each(key):
            return [r[key] for r in rs]
        note = (f"slowloris: {min(each('slowloris open'))}–{max(each('slowloris open'))} open at the end, "
                f"{max(each('slowloris reopened'))} reopened at most (closed by the server); flood: "
                f"{statistics.median(each('flood/s')):.0f} connections/s; probes failed: {sum(each('probes failed'))}")
        rows += [
            row(name, "/ping p50 unloaded", "ms", each("p50")),
            row(name, "/ping p99 unloaded", "ms", each("p99")),
            row(name, "/ping p50 under slowloris + flood", "ms", each("p50 loaded")),
            row(name, "/ping p99 under slowloris + flood", "ms", each("p99 loaded"), note),
            row(name, "/ping p99 loaded / unloaded", "ratio", [r["p99 loaded"] / r["p99"] for r in rs]),
        ]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="memory,ping")
    ap.add_argument("--isthmus", type=Path, default=ws.ISTHMUS, help="the gateway binary (default: the release build)")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    # Bridged sockets cost the gateway two descriptors each, the others one: the soft limit
    # goes up to the hard one, which HOLD_COUNTS must fit.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if "memory" in parts and hard != resource.RLIM_INFINITY and hard < 2 * max(HOLD_COUNTS) + 100:
        raise SystemExit(f"ulimit -Hn is {hard}: holding {max(HOLD_COUNTS)} bridged sockets needs {2 * max(HOLD_COUNTS) + 100}")
    args.results.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-exhaust-") as tmp:
        work = Path(tmp)
        logdir = work / "logs"
        logdir.mkdir()
        if "memory" in parts:
            rows += memory(work, logdir, args.isthmus)
        if "ping" in parts:
            rows += ping(work, args.isthmus, args.quick)
    (args.results / "exhaust.json").write_text(json.dumps(rows, indent=1) + "\n")
    for r in rows:
        print(f"{r['case']:20} | {r['metric']:42} | {r['median']:.3f} {r['unit']}" + (f"  ({r['note']})" if "note" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
