"""Drive the real Reflex backend of bench/ws/app directly, with and without the gateway's
signed ``router_data.isthmus``, and measure the backend's CPU per event.

No gateway: the events are hand-made here the way isthmus's bridge splices them
(``host/src/bridge/inject.rs``: ``{"payload": "<JSON text>", "sig": "<hex HMAC>"}``,
signed once per second; the iat changes every second). Used to find where the
Reflex process spends the extra CPU per event when events come through the bridge.

    bench/ws/.venv-rd/bin/python bench/ws/app/profile_events.py --variants bare/none,inj/none,inj/isthmus --reps 3

A variant is ``<events>/<BENCH_BRIDGE>``; events:

- ``bare``: router_data as Reflex's frontend sends it (no injection);
- ``inj``: with the injection, re-signed every second (iat = now), like the gateway;
- ``inj-fixed``: with one injection signed at start (iat constant, the value never changes);
- ``inj-every``: with a fresh injection on every event (a new payload text each time);
- ``side``: the injection as a top-level event key ``isthmus`` beside router_data
  (Reflex ignores it; only shows what Reflex does with router_data).

Each repetition starts the backend afresh (``reflex run --env prod --backend-only`` on
127.0.0.1, CPU 1), opens N connections from this process (CPU 0), warms up, then counts
replies in a timed window and reads utime+stime of the backend's whole process tree
from /proc before and after. ``--interleave ROUNDS`` instead starts one backend per mode
once and alternates the variants in short windows (paired rounds: the machine is shared).
``--py-spy PATH`` records the worker during each window (py-spy from PyPI, raw stacks),
``--cprofile`` cProfiles it (via a sitecustomize.py put on its PYTHONPATH) and ``--gc``
counts its garbage collections; all written to WORK (default /tmp/evprof).
Everything is bounded in time; the backend is stopped by its process group.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VENV = HERE.parent / ".venv-rd"
sys.path.insert(0, str(REPO / "python" / "src"))

from isthmus_reflex.bridge import make_injection  # noqa: E402

EVENT = "reflex___state____state.bench___bench____bench_state.tick"
HYDRATE = "reflex___state____state.hydrate_and_load"
SECRET = "profile-events-secret-0123456789abcdef"
IDENTITY = {
    "authenticated": True,
    "user_id": "1",
    "username": "benchuser",
    "email": "",
    "is_staff": False,
    "is_superuser": False,
    "groups": [],
    "permissions": [],
    "session": {},
}
TICK = os.sysconf("SC_CLK_TCK")


# -- the backend -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu(root: int) -> float:
    """utime+stime (s) of ``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, ppid = int(d), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def descendants(root: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout.split()
    pids = [int(p) for p in out]
    return pids + [q for p in pids for q in descendants(p)]


class Backend:
    def __init__(self, app_dir: Path, mode: str, logdir: Path, tag: str, profile_dir: Path | None = None, cprofile: bool = False):
        self.port = free_port()
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env.update(
            PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}",
            PYTHONPATH=f"{app_dir}:{REPO / 'python' / 'src'}",
            PYTHONDONTWRITEBYTECODE="1",
            BENCH_BRIDGE=mode,
            ISTHMUS_BRIDGE_SECRET=SECRET,
            REFLEX_TELEMETRY_ENABLED="false",
            NO_COLOR="1",
        )
        if profile_dir is not None:
            # sitecustomize.py there (written by --cprofile) profiles the forked worker on demand.
            env["PYTHONPATH"] = f"{profile_dir}:{env['PYTHONPATH']}"
            env["EVPROF_DIR"] = str(profile_dir)
            env["EVPROF_CPROFILE"] = "1" if cprofile else "0"
        argv = ["taskset", "-c", "1", str(VENV / "bin" / "reflex"), "run", "--env", "prod", "--backend-only",
                "--backend-host", "127.0.0.1", "--backend-port", str(self.port)]  # fmt: skip
        self.log = open(logdir / f"{tag}.log", "w")
        self.proc = subprocess.Popen(argv, cwd=app_dir, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"reflex exited: see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b"pong" in s.recv(4096):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("reflex did not answer /ping in 180 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


# -- the client: WebSocket + Engine.IO/Socket.IO by hand -----------------------------------


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Conn":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /_event/?EIO=4&transport=websocket&token={uuid.uuid4()} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: 0.10.1\r\nCookie: csrftoken=bench; sessionid=bench\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head[:200]!r}")
        return cls(reader, writer)

    def send(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 65536:
            head = bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x81, 0xFF]) + n.to_bytes(8, "big")
        self.w.write(head + b"\0\0\0\0" + data)  # mask key 0: the payload is sent as is

    async def recv(self) -> str:
        while True:
            b0, b1 = await self.r.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.r.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self.r.readexactly(8), "big")
            data = await self.r.readexactly(n)
            op = b0 & 0x0F
            if op == 8:
                raise RuntimeError("closed by the server")
            if op == 9:
                self.w.write(bytes([0x8A, 0x80 | len(data)]) + b"\0\0\0\0" + data)
                continue
            text = data.decode()
            if text == "2":
                self.send("3")
                continue
            return text

    async def until(self, want) -> str:
        while True:
            t = await self.recv()
            if want(t):
                return t


class Events:
    """The event texts of one variant."""

    def __init__(self, kind: str):
        self.kind = kind
        self.fixed = make_injection(IDENTITY, SECRET, query={"tab": "all"})
        self.sec = 0
        self.cur = self.fixed

    def injection(self) -> dict:
        if self.kind == "inj-fixed":
            return self.fixed
        if self.kind == "inj-every":
            return make_injection(IDENTITY, SECRET, query={"tab": "all"}, context={"n": uuid.uuid4().hex})
        now = int(time.time())
        if now != self.sec:
            self.sec, self.cur = now, make_injection(IDENTITY, SECRET, query={"tab": "all"}, iat=now)
        return self.cur

    def event(self, name: str, payload: dict) -> dict:
        rd = {"pathname": "/", "asPath": "/?tab=all", "query": {"tab": "all"}}
        ev = {"name": name, "payload": payload, "router_data": rd}
        if self.kind.startswith("inj"):
            rd["isthmus"] = self.injection()
        elif self.kind == "side":
            ev["isthmus"] = self.injection()
        return ev


async def run_load(port: int, kind: str, conns: int, warmup: float, duration: float, pid: int, on_start=None, on_stop=None) -> dict:
    evs = Events(kind)
    cs = []
    for _ in range(conns):
        c = await asyncio.wait_for(Conn.open(port), 30)
        await asyncio.wait_for(c.until(lambda t: t.startswith("0")), 30)
        c.send("40/_event," + json.dumps({"event": evs.event(HYDRATE, {})}, separators=(",", ":")))
        await asyncio.wait_for(c.until(lambda t: t.startswith("40")), 30)
        await asyncio.wait_for(c.until(lambda t: t.startswith("42") and '"is_hydrated_rx_state_":true' in t), 30)
        cs.append(c)
    phase = {"measure": False, "stop": False}
    counts = [0] * conns
    who: set[str] = set()

    async def loop(i: int, c: Conn) -> None:
        n = 0
        while not phase["stop"]:
            n += 1
            c.send('42/_event,["event",' + json.dumps(evs.event(EVENT, {"k": n}), separators=(",", ":")) + "]")
            t = await asyncio.wait_for(c.until(lambda t: t.startswith("42") and "n_rx_state_" in t), 30)
            if phase["measure"]:
                counts[i] += 1
                if len(who) < 4:
                    j = t.find('"who_rx_state_":"')
                    who.add(t[j + 17 : t.find("#", j)])

    tasks = [asyncio.create_task(loop(i, c)) for i, c in enumerate(cs)]
    await asyncio.sleep(warmup)
    if on_start:
        on_start()
    cpu0, own0, t0 = tree_cpu(pid), time.process_time(), time.perf_counter()
    phase["measure"] = True
    await asyncio.sleep(duration)
    phase["measure"] = False
    cpu1, own1, t1 = tree_cpu(pid), time.process_time(), time.perf_counter()
    if on_stop:
        on_stop()
    phase["stop"] = True
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    for c in cs:
        c.w.close()
    events = sum(counts)
    return {
        "events": events,
        "events_per_s": events / (t1 - t0),
        "cpu_us_per_event": (cpu1 - cpu0) / events * 1e6,
        "server_cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "client_cpu_share": (own1 - own0) / (t1 - t0),
        "who": sorted(who),
    }


SITECUSTOMIZE = """\
# Written by profile_events.py --cprofile/--gc. In every forked child (the backend's worker)
# a daemon thread waits for $EVPROF_DIR/<pid>.start, then (EVPROF_CPROFILE=1) profiles every
# thread (cProfile uses sys.monitoring on 3.12: process-wide) and counts garbage
# collections and their time per generation until $EVPROF_DIR/<pid>.stop; it writes
# <pid>.prof (if profiling) and <pid>.gc.json, then <pid>.done.
import os

_dir = os.environ.get("EVPROF_DIR")
if _dir:
    def _child():
        import cProfile, gc, json, threading, time
        def run():
            pid = os.getpid()
            path = lambda x: os.path.join(_dir, f"{pid}.{x}")
            while not os.path.exists(path("start")):
                time.sleep(0.05)
            stats = {g: [0, 0.0, 0] for g in range(3)}
            began = {}
            def on_gc(phase, info):
                if phase == "start":
                    began["t"] = time.thread_time()
                else:
                    s = stats[info["generation"]]
                    s[0] += 1
                    s[1] += time.thread_time() - began.get("t", time.thread_time())
                    s[2] += info.get("collected", 0)
            gc.callbacks.append(on_gc)
            p = None
            if os.environ.get("EVPROF_CPROFILE") == "1":
                p = cProfile.Profile()
                p.enable()
            while not os.path.exists(path("stop")):
                time.sleep(0.05)
            if p is not None:
                p.disable()
                p.dump_stats(path("prof"))
            gc.callbacks.remove(on_gc)
            with open(path("gc.json"), "w") as f:
                json.dump({"collections": {g: {"count": s[0], "cpu_s": s[1], "collected": s[2]} for g, s in stats.items()},
                           "objects": len(gc.get_objects()), "thresholds": gc.get_threshold()}, f)
            open(path("done"), "w").close()
        threading.Thread(target=run, daemon=True).start()
    os.register_at_fork(after_in_child=_child)
"""


def profiler_hooks(a, be: Backend, work: Path, tag: str, profile_dir: Path | None):
    """(on_start, on_stop) for run_load: py-spy and/or cProfile on the worker, for the window only."""
    worker = descendants(be.proc.pid)[-1]
    spy: list[subprocess.Popen] = []

    def on_start() -> None:
        if a.py_spy:
            spy.append(subprocess.Popen(
                ["taskset", "-c", "0", a.py_spy, "record", "--format", "raw", "-r", "400", "-d", str(int(a.duration)),
                 "-o", str(work / f"spy-{tag}.txt"), "-p", str(worker)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        if profile_dir is not None:
            (profile_dir / f"{worker}.start").touch()

    def on_stop() -> None:
        if profile_dir is not None:
            (profile_dir / f"{worker}.stop").touch()
            deadline = time.time() + 30
            while not (profile_dir / f"{worker}.done").exists() and time.time() < deadline:
                time.sleep(0.1)
            for ext in ("prof", "gc.json"):
                if (profile_dir / f"{worker}.{ext}").exists():
                    (profile_dir / f"{worker}.{ext}").rename(profile_dir / f"{tag}.{ext}")
            for ext in ("start", "stop", "done"):
                (profile_dir / f"{worker}.{ext}").unlink(missing_ok=True)
        for p in spy:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    return on_start, on_stop


def interleaved(a, app_dir: Path, logdir: Path, variants: list[str], results: dict) -> None:
    backends: dict[str, Backend] = {}
    try:
        for mode in dict.fromkeys(v.split("/")[1] for v in variants):
            backends[mode] = Backend(app_dir, mode, logdir, f"il-{mode}")  # (no profiling here)
        for rnd in range(a.interleave):
            order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
            line = []
            for v in order:
                kind, mode = v.split("/")
                be = backends[mode]
                r = asyncio.run(run_load(be.port, kind, a.conns, a.warmup, a.duration, be.proc.pid))
                results[v].append(r)
                line.append(f"{v} {r['cpu_us_per_event']:.0f}")
            print(f"round {rnd}: " + ", ".join(line) + f"  load {Path('/proc/loadavg').read_text().split()[0]}", flush=True)
    finally:
        for be in backends.values():
            be.stop()
    print("\nper round, difference to the first variant (median, min–max):")
    base = [r["cpu_us_per_event"] for r in results[variants[0]]]
    for v in variants[1:]:
        d = [r["cpu_us_per_event"] - b for r, b in zip(results[v], base)]
        print(f"  {v:18s} {statistics.median(d):+7.1f} µs  ({min(d):+.1f} – {max(d):+.1f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="bare/none,inj/none,inj/isthmus")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--work", default="/tmp/evprof")
    ap.add_argument("--py-spy", dest="py_spy", default=None, help="py-spy binary: record the worker during the window")
    ap.add_argument("--cprofile", action="store_true", help="cProfile the worker during each window: WORK/cprofile/<tag>.prof")
    ap.add_argument("--gc", action="store_true", help="count the worker's garbage collections during each window: WORK/cprofile/<tag>.gc.json")
    ap.add_argument("--out", default=None, help="write every run's numbers here (JSON)")
    ap.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                    help="start one backend per BENCH_BRIDGE mode once and alternate the variants in short windows, ROUNDS times (paired comparison on a busy machine)")
    a = ap.parse_args()
    os.sched_setaffinity(0, {0})
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    app_dir = work / "app"
    if not app_dir.exists():
        shutil.copytree(HERE, app_dir, ignore=shutil.ignore_patterns("__pycache__", ".web", ".states", "*.sqlite3"))
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    profile_dir = None
    if a.cprofile or a.gc:
        profile_dir = work / "cprofile"
        profile_dir.mkdir(exist_ok=True)
        (profile_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    variants = a.variants.split(",")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    if a.interleave:
        interleaved(a, app_dir, logdir, variants, results)
        a.reps = 0
    for rep in range(a.reps):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
        for v in order:
            kind, mode = v.split("/")
            be = Backend(app_dir, mode, logdir, f"r{rep}-{kind}-{mode}", profile_dir, a.cprofile)
            tag = f"r{rep}-{kind}-{mode}"
            try:
                hooks = profiler_hooks(a, be, work, tag, profile_dir)
                r = asyncio.run(run_load(be.port, kind, a.conns, a.warmup, a.duration, be.proc.pid, *hooks))
                r["loadavg"] = float(Path("/proc/loadavg").read_text().split()[0])
                gcf = (profile_dir / f"{tag}.gc.json") if profile_dir else None
                if gcf and gcf.exists():
                    g = json.loads(gcf.read_text())
                    r["gc"] = g
                    cols = g["collections"]
                    print(f"  gc during the window: " + ", ".join(
                        f"gen{k} {c['count']} ({c['cpu_s'] / r['events'] * 1e6:.1f} µs/event)" for k, c in cols.items())
                        + f"; {g['objects']} tracked objects", flush=True)
                results[v].append(r)
                print(f"rep {rep} {v:18s} {r['cpu_us_per_event']:7.1f} µs/event  {r['events_per_s']:7.0f} ev/s  server {r['server_cpu_share']:.2f}  client {r['client_cpu_share']:.2f}  load {r['loadavg']:.2f}  who {r['who']}", flush=True)
            finally:
                be.stop()
    print("\nmedians (min–max) of CPU per event:")
    for v in variants:
        xs = [r["cpu_us_per_event"] for r in results[v]]
        rates = [r["events_per_s"] for r in results[v]]
        print(f"  {v:18s} {statistics.median(xs):7.1f} µs  ({min(xs):.1f}–{max(xs):.1f})  {statistics.median(rates):6.0f} ev/s  n={len(xs)}")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
