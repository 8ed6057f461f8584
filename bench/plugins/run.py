"""Plugins part of the benchmark: the cost of the WebAssembly policies and of the
gateway process around them.

    python bench/plugins/run.py RESULTS_DIR [--quick]

- `route` call: criterion benchmark `host/benches/route_call.rs` (group `route_call`):
  a warm (pooled instance) and a fresh (new instance + init per call) call into
  prefix_router.wasm, on the server CPU.
- idle RSS of `isthmus serve` with the default plugins (prefix_router.wasm as the router,
  django_bridge.wasm as the bridge policy), after start and after a burst of load;
- time from start to "isthmus listening" with a cold (empty) and a warm compiled-plugin
  cache;
- req/s while prefix_router.wasm is replaced on disk again and again (hot reload, each
  replacement awaited in the log) plus SIGHUPs, against the same gateway without
  reloads; no failed request is allowed.

Writes RESULTS_DIR/plugins.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchlib as B  # noqa: E402

HERE = Path(__file__).resolve().parent


def _load_http():
    """bench/http/run.py, for its nginx upstream recipe and the gateway's log settings."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_http", HERE.parent / "http" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


http = _load_http()

PATHS = ["/api/items/1", "/ping"]
SECRETS = {"ISTHMUS_IDENTITY_SECRET": "bench-identity-secret-0123456789abcdef",
           "ISTHMUS_BRIDGE_SECRET": "bench-bridge-secret-0123456789abcdef01"}

# The HTTP part's gateway config (same upstreams, router and plugin config) with a
# compiled-plugin cache of its own and the default bridge policy added.
DEFAULT_CONF = http.ISTHMUS_CONF.replace(
    "[[routing.routers]]", '[routing]\ncache_dir = "{cache}"\n\n[[routing.routers]]', 1
) + """
[bridge]
identity_secret = "env:ISTHMUS_IDENTITY_SECRET"
bridge_secret = "env:ISTHMUS_BRIDGE_SECRET"

[bridge.policy]
plugin = "django_bridge.wasm"
config = {{ login_url = "/admin/login/", default = "any" }}
"""


def variant(data: bytes, tag: str) -> bytes:
    """The component with one more custom section: new bytes, same behaviour."""
    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    name = b"isthmus-bench"
    payload = leb(len(name)) + name + tag.encode()
    return data + b"\x00" + leb(len(payload)) + payload


class Site:
    """A gateway folder with the default plugins, served against an nginx upstream."""

    def __init__(self, work: Path, isthmus: Path, plugins: Path):
        self.work = work
        self.isthmus = isthmus
        self.dir = work / "site"
        (self.dir / "plugins").mkdir(parents=True, exist_ok=True)
        (self.dir / "spa").mkdir(exist_ok=True)
        (self.dir / "spa" / "index.html").write_text("<!doctype html><title>spa</title>\n")
        for name in ("prefix_router.wasm", "django_bridge.wasm"):
            shutil.copyfile(plugins / name, self.dir / "plugins" / name)
        self.router = self.dir / "plugins" / "prefix_router.wasm"
        self.original = self.router.read_bytes()
        self.cache = work / "cache"
        self.env = http.Env(work, isthmus, plugins / "prefix_router.wasm", None)
        self.up_ports = {"django": B.free_port(), "reflex": B.free_port()}
        self.port = B.free_port()
        (self.dir / "isthmus.toml").write_text(DEFAULT_CONF.format(
            port=self.port, django=self.up_ports["django"], reflex=self.up_ports["reflex"], cache=self.cache))

    def upstream(self) -> B.Server:
        return self.env.nginx_upstream(self.up_ports, "upstream")

    def gateway(self, log_name: str = "isthmus.log") -> tuple[B.Server, float]:
        """Starts the gateway; returns it and the seconds from spawn to "isthmus listening"."""
        log = self.work / log_name
        log.unlink(missing_ok=True)
        s = B.Server("isthmus", [str(self.isthmus), "serve", "--config", str(self.dir / "isthmus.toml")], log,
                     env={**http.ISTHMUS_ENV, **SECRETS})
        t0 = time.monotonic()
        s.start()
        ready = s.wait_log("isthmus listening", timeout=120)
        B.wait_port(self.port, server=s)
        return s, ready - t0


def criterion(res: B.Results, quick: bool, work: Path) -> None:
    env = dict(os.environ, CRITERION_HOME=str(work / "criterion"))
    build = ["cargo", "bench", "-p", "isthmus", "--bench", "route_call", "--no-run"]
    B.log("plugins: + " + " ".join(build))
    subprocess.run(build, cwd=B.REPO, env=env, check=True, stdout=sys.stderr)
    times = ["--warm-up-time", "1", "--measurement-time", "2"] if quick else ["--warm-up-time", "3", "--measurement-time", "5"]
    argv = ["taskset", "-c", B.SERVER_CPU, "cargo", "bench", "-p", "isthmus", "--bench", "route_call", "--",
            "route_call/", "--noplot", *times]
    B.log("plugins: + " + " ".join(argv))
    subprocess.run(argv, cwd=B.REPO, env=env, check=True, stdout=sys.stderr, timeout=900)
    found = 0
    for bench_json in sorted((work / "criterion").glob("route_call/**/new/benchmark.json")):
        meta = json.loads(bench_json.read_text())
        sample = json.loads((bench_json.parent / "sample.json").read_text())
        per_iter = [t / n / 1000.0 for t, n in zip(sample["times"], sample["iters"])]  # ns → µs
        label = meta.get("value_str") or meta["function_id"]
        for x in per_iter:
            res.add(f"route call {label}", "time per call", "µs", x,
                    "criterion (host/benches/route_call.rs): median/min/max over its samples, on the server CPU")
        found += 1
    if not found:
        raise RuntimeError("criterion wrote no route_call results")


def rss(res: B.Results, site: Site, reps: int, secs: float) -> None:
    for rep in range(reps):
        up = site.upstream()
        gw, _ = site.gateway()
        try:
            time.sleep(1.0)
            res.add("isthmus, default plugins", "idle RSS after start", "MiB", B.rss_kib(gw.pid) / 1024,
                    "VmRSS 1 s after ready; prefix_router.wasm + django_bridge.wasm loaded")
            B.wrk(site.port, PATHS, 32, secs)
            time.sleep(1.0)
            res.add("isthmus, default plugins", "idle RSS after load", "MiB", B.rss_kib(gw.pid) / 1024,
                    f"VmRSS 1 s after {secs:g} s of 32-connection load")
        finally:
            gw.stop()
            up.stop()


def startup(res: B.Results, site: Site, reps: int) -> None:
    for rep in range(reps):
        for kind in ("cold", "warm") if rep % 2 == 0 else ("warm", "cold"):
            if kind == "cold":
                shutil.rmtree(site.cache, ignore_errors=True)
            elif not site.cache.exists():  # warm needs one start first
                gw, _ = site.gateway()
                gw.stop()
            gw, secs = site.gateway()
            gw.stop()
            loaded = [l for l in gw.log_text().splitlines() if "plugin loaded" in l]
            want = "Miss" if kind == "cold" else "Hit"
            if not all(f"cache={want}" in l for l in loaded) or len(loaded) != 2:
                raise RuntimeError(f"start with a {kind} cache: expected cache={want} for both plugins:\n" + "\n".join(loaded))
            res.add(f"start to ready, {kind} cache", "time", "ms", secs * 1000,
                    "spawn of `isthmus serve` (default plugins) to its `isthmus listening` line"
                    + ("; compiled-plugin cache emptied first" if kind == "cold" else "; cache filled by a previous start"))


def hot_reload(res: B.Results, site: Site, reps: int, cfg: dict) -> None:
    for rep in range(reps):
        up = site.upstream()
        gw, _ = site.gateway()
        try:
            pids = [*up.pids(), gw.pid]
            B.wrk(site.port, PATHS, 32, cfg["warm"])
            base = B.measure(site.port, PATHS, 32, cfg["secs"], pids)

            stop = threading.Event()
            counts = {"replaced": 0, "sighup": 0, "error": ""}

            def reloader():
                try:
                    n_reloaded = gw.log_text().count("plugin reloaded")
                    i = 0
                    while not stop.is_set():
                        i += 1
                        if i % 4 == 0:  # every fourth: SIGHUP, which reloads both plugins
                            gw.proc.send_signal(signal.SIGHUP)
                            counts["sighup"] += 1
                            n_reloaded += 2
                        else:
                            tmp = site.router.with_name(".prefix_router.wasm.tmp")
                            tmp.write_bytes(variant(site.original, f"r{rep}-{i}"))
                            tmp.replace(site.router)  # atomic, as deploy tools do
                            counts["replaced"] += 1
                            n_reloaded += 1
                        gw.wait_log("plugin reloaded", timeout=30, count=n_reloaded)
                        stop.wait(0.25)
                except Exception as e:
                    counts["error"] = str(e)

            t = threading.Thread(target=reloader, daemon=True)
            before = gw.log_text().count("plugin reloaded")
            t.start()
            during = B.measure(site.port, PATHS, 32, cfg["secs"], pids)
            stop.set()
            t.join(timeout=40)
            reloads = gw.log_text().count("plugin reloaded") - before
            refused = gw.log_text().count("plugin reload refused")
            if counts["error"]:
                raise RuntimeError(f"hot reload: {counts['error']}")
            if refused:
                raise RuntimeError(f"hot reload: {refused} reloads refused:\n{gw.log_text()[-3000:]}")
            case = "isthmus, hot reload"
            res.add(case, "req/s without reloads", "req/s", base.wrk.rps, "same gateway, just before")
            res.add(case, "req/s during reloads", "req/s", during.wrk.rps,
                    "prefix_router.wasm replaced (new bytes: recompiled) every ~0.25 s after the previous reload, every 4th a SIGHUP")
            res.add(case, "req/s during / without", "ratio", during.wrk.rps / base.wrk.rps)
            res.add(case, "plugin reloads during the run", "count", reloads)
            res.add(case, "failed requests during reloads", "count", during.wrk.errors,
                    "non-2xx responses + socket errors (wrk); must be 0")
            res.add(case, "p99 during reloads", "µs", during.wrk.p99_us)
            res.add(case, "p99 without reloads", "µs", base.wrk.p99_us)
            B.log(f"plugins: hot reload rep {rep + 1}: {base.wrk.rps:.0f} → {during.wrk.rps:.0f} req/s, "
                  f"{reloads} reloads, {during.wrk.errors} failed, p99 {base.wrk.p99_us:.0f} → {during.wrk.p99_us:.0f} µs")
            if site.router.read_bytes() != site.original:
                site.router.write_bytes(site.original)
                gw.wait_log("plugin reloaded", timeout=30, count=gw.log_text().count("plugin reloaded") + 1)
        finally:
            gw.stop()
            up.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--isthmus", type=Path, default=B.REPO / "target/release/isthmus")
    ap.add_argument("--plugins", type=Path, default=B.REPO / "target/plugins")
    ap.add_argument("--skip-criterion", action="store_true")
    args = ap.parse_args()
    cfg = B.settings(args.quick)
    reps = cfg["reps"]
    res = B.Results("plugins", args.results / "plugins.json")
    work = Path(tempfile.mkdtemp(prefix="isthmus-bench-plugins-"))
    try:
        site = Site(work, args.isthmus, args.plugins)
        startup(res, site, reps)
        res.write()
        rss(res, site, reps, 3.0 if args.quick else 5.0)
        res.write()
        hot_reload(res, site, reps, cfg)
        res.write()
        if not args.skip_criterion:
            criterion(res, args.quick, work)
        res.write()
    finally:
        B.stop_all()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
