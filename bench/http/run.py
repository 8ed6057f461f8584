"""HTTP part of the benchmark: the same trivial upstreams reached directly, through
isthmus (default prefix-router plugin) and through nginx; reflex-django 4.0.3's
dispatcher under uvicorn in front of trivial ASGI apps; and those uvicorn upstreams on
Unix sockets (`uvicorn-uds/…`, `--uds`) behind isthmus and nginx.

    python bench/http/run.py RESULTS_DIR [--quick] [--rd-python PY | --no-rd REASON]
                             [--compare OTHER_ISTHMUS]

Writes RESULTS_DIR/http.json (rows as described in bench/README.md). Every server runs
on the server CPU and is restarted for every case of every repetition; wrk runs on the
load-generator CPU with one thread, closed loop, and alternates two paths:
`/api/items/1` (a Django prefix) and `/ping` (a Reflex reserved path).

`--compare` adds the cases `…/isthmus-compare`, served by another isthmus binary (a
build of an earlier commit, say) in the same repetitions, so that a change's effect is
measured side by side rather than across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchlib as B  # noqa: E402

HERE = Path(__file__).resolve().parent
PATHS = ["/api/items/1", "/ping"]
EXPECT = {"/api/items/1": "django", "/ping": "reflex"}

# ------------------------------------------------------------------ server recipes

# Both keepalive_requests limits are lifted so that no connection is closed every 1000
# requests (nginx's default) in any case: the clients and isthmus keep theirs open.
UPSTREAM_CONF = B.NGINX_COMMON + """\
http {{
  access_log off;
  keepalive_requests 100000000;
{servers}
}}
"""
UPSTREAM_SERVER = """\
  server {{
    listen 127.0.0.1:{port};
    location / {{ add_header X-Upstream {label}; return 200 "ok"; }}
  }}"""

# The same work isthmus does per request: two prefixes to two upstreams.
PROXY_CONF = B.NGINX_COMMON + """\
http {{
  access_log off;
  keepalive_requests 100000000;
  upstream django {{ server 127.0.0.1:{django}; keepalive 64; keepalive_requests 100000000; }}
  upstream reflex {{ server 127.0.0.1:{reflex}; keepalive 64; keepalive_requests 100000000; }}
""" + B.NGINX_PROXY_HEADERS + """\
  server {{
    listen 127.0.0.1:{port};
    location /api/ {{ proxy_pass http://django; }}
    location /admin/ {{ proxy_pass http://django; }}
    location /ping {{ proxy_pass http://reflex; }}
  }}
}}
"""

ISTHMUS_CONF = """\
[listen]
addr = "127.0.0.1:{port}"
workers = 1

[upstreams.django]
url = "http://127.0.0.1:{django}"

[upstreams.reflex]
url = "http://127.0.0.1:{reflex}"

[static.frontend]
root = "spa"
fallback = "index.html"

[[routing.routers]]
plugin = "prefix_router.wasm"
config = {{ django_prefixes = ["/admin", "/api"] }}
"""

# The same two proxies with each upstream on a Unix socket (`{django}`, `{reflex}`: the
# sockets' paths). nginx's worker runs as the user starting it, as isthmus does, so that
# it may enter the private work folder holding the sockets.
ISTHMUS_UDS_CONF = ISTHMUS_CONF.replace("http://127.0.0.1:", "unix:")
PROXY_UDS_CONF = "user root;\n" + PROXY_CONF.replace("server 127.0.0.1:", "server unix:")

# isthmus logs one access line per request at info; nginx's access_log is off, so
# isthmus's is too. Everything else (readiness, reloads) is still logged.
ISTHMUS_ENV = {"RUST_LOG": "info,isthmus::access=off"}


class Env:
    def __init__(self, work: Path, isthmus: dict[str, Path], plugin: Path, rd_python: str | None):
        self.work = work
        # case kind ("isthmus", "isthmus-compare") → binary
        self.isthmus = isthmus
        self.plugin = plugin
        self.rd_python = rd_python

    def nginx_upstream(self, ports: dict[str, int], name: str) -> B.Server:
        servers = "\n".join(UPSTREAM_SERVER.format(port=p, label=label) for label, p in ports.items())
        conf = UPSTREAM_CONF.format(work=self.work, name=name, servers=servers)
        return B.nginx(name, conf, self.work, list(ports.values()))

    # Upstreams are ports on 127.0.0.1, or paths of Unix sockets.
    def nginx_proxy(self, port: int, django: int | Path, reflex: int | Path, name: str = "nginx-proxy") -> B.Server:
        template = PROXY_UDS_CONF if isinstance(django, Path) else PROXY_CONF
        conf = template.format(work=self.work, name=name, port=port, django=django, reflex=reflex)
        return B.nginx(name, conf, self.work, [port])

    def isthmus_site(self, port: int, django: int | Path, reflex: int | Path) -> Path:
        site = self.work / "isthmus"
        (site / "plugins").mkdir(parents=True, exist_ok=True)
        (site / "spa").mkdir(exist_ok=True)
        (site / "spa" / "index.html").write_text("<!doctype html><title>spa</title>\n")
        dest = site / "plugins" / "prefix_router.wasm"
        if not dest.exists() or dest.read_bytes() != self.plugin.read_bytes():
            shutil.copyfile(self.plugin, dest)
        template = ISTHMUS_UDS_CONF if isinstance(django, Path) else ISTHMUS_CONF
        (site / "isthmus.toml").write_text(template.format(port=port, django=django, reflex=reflex))
        return site

    def isthmus_gateway(self, kind: str, port: int, django: int | Path, reflex: int | Path) -> B.Server:
        site = self.isthmus_site(port, django, reflex)
        log = self.work / "isthmus.log"
        log.unlink(missing_ok=True)
        s = B.Server("isthmus", [str(self.isthmus[kind]), "serve", "--config", str(site / "isthmus.toml")], log,
                     env=ISTHMUS_ENV, stop_signal=signal.SIGTERM).start()
        s.wait_log("isthmus listening")
        B.wait_port(port, server=s)
        return s

    def uvicorn(self, port: int | Path, app: str, name: str) -> B.Server:
        """uvicorn on `port` of 127.0.0.1, or on the Unix socket at that path (`--uds`)."""
        assert self.rd_python
        at = ["--uds", str(port)] if isinstance(port, Path) else ["--host", "127.0.0.1", "--port", str(port)]
        argv = [self.rd_python, "-m", "uvicorn", app, "--app-dir", str(HERE), *at, "--no-access-log", "--log-level", "warning",
                "--loop", "uvloop", "--http", "httptools", "--lifespan", "on"]
        s = B.Server(name, argv, self.work / f"{name}.log").start()
        B.wait_port(port, timeout=60, server=s)
        return s


def cases(env: Env, with_rd: bool):
    """name → function starting the case's servers, returning (port, [servers])."""
    def p():
        return B.free_port()

    def return200(kind: str):
        def start():
            ports = {"django": p(), "reflex": p()}
            up = env.nginx_upstream(ports, "upstream")
            if kind == "direct":
                return ports["django"], [up]
            port = p()
            if kind in env.isthmus:
                return port, [up, env.isthmus_gateway(kind, port, ports["django"], ports["reflex"])]
            return port, [up, env.nginx_proxy(port, ports["django"], ports["reflex"])]
        return start

    def asgi(kind: str, uds: bool = False):
        def start():
            if kind == "direct":
                port = p()
                return port, [env.uvicorn(port, "asgi_apps:django_app", "uvicorn")]
            if kind == "reflex-django":
                port = p()
                return port, [env.uvicorn(port, "asgi_apps:dispatch", "uvicorn-reflex-django")]
            dj, rx, port = p(), p(), p()
            if uds:
                dj, rx = env.work / "django.sock", env.work / "reflex.sock"
            ups = [env.uvicorn(dj, "asgi_apps:django_app", "uvicorn-django"), env.uvicorn(rx, "asgi_apps:reflex_app", "uvicorn-reflex")]
            if kind in env.isthmus:
                return port, [*ups, env.isthmus_gateway(kind, port, dj, rx)]
            return port, [*ups, env.nginx_proxy(port, dj, rx, "nginx-proxy-asgi")]
        return start

    out = {f"return-200/{k}": return200(k) for k in ("direct", *env.isthmus, "nginx")}
    if with_rd:
        out.update({f"uvicorn-asgi/{k}": asgi(k) for k in ("direct", "reflex-django", *env.isthmus, "nginx")})
        # The same uvicorn upstreams on Unix sockets (`--uds`); wrk speaks TCP only, so no direct case.
        out.update({f"uvicorn-uds/{k}": asgi(k, uds=True) for k in (*env.isthmus, "nginx")})
    return out


def check(case: str, port: int) -> None:
    """Every path answers 200 `ok`, from the right upstream when a proxy is in the path."""
    direct = case.endswith("/direct")
    for path in PATHS:
        status, headers, body = B.http_get(port, path)
        if status != 200 or body != b"ok":
            raise RuntimeError(f"{case}: GET {path} answered {status} {body[:200]!r}")
        want = "django" if direct else EXPECT[path]
        if headers.get("x-upstream") != want:
            raise RuntimeError(f"{case}: GET {path} reached {headers.get('x-upstream')!r}, not {want}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rd-python", help="python of the venv with reflex-django 4.0.3 and uvicorn")
    ap.add_argument("--no-rd", metavar="REASON", help="skip the reflex-django/uvicorn cases, saying why")
    ap.add_argument("--isthmus", type=Path, default=B.REPO / "target/release/isthmus")
    ap.add_argument("--compare", type=Path, metavar="OTHER_ISTHMUS", help="another isthmus binary, measured as isthmus-compare")
    ap.add_argument("--plugin", type=Path, default=B.REPO / "target/plugins/prefix_router.wasm")
    ap.add_argument("--only", help="comma-separated case names (for development)")
    args = ap.parse_args()
    cfg = B.settings(args.quick)
    with_rd = bool(args.rd_python) and not args.no_rd
    res = B.Results("http", args.results / "http.json")
    if not with_rd:
        reason = args.no_rd or "no --rd-python given"
        B.log(f"http: SKIPPING the reflex-django/uvicorn cases: {reason}")
        res.add_row({"section": "http", "case": "uvicorn-asgi/*", "metric": "skipped", "unit": "",
                     "median": float("nan"), "min": float("nan"), "max": float("nan"), "reps": 0,
                     "note": f"not run: {reason}"})

    work = Path(tempfile.mkdtemp(prefix="isthmus-bench-http-"))
    binaries = {"isthmus": args.isthmus, **({"isthmus-compare": args.compare} if args.compare else {})}
    env = Env(work, binaries, args.plugin, args.rd_python if with_rd else None)
    all_cases = cases(env, with_rd)
    if args.only:
        all_cases = {k: v for k, v in all_cases.items() if k in args.only.split(",")}
    names = list(all_cases)
    # per rep: case → metric → value, for the differences paired within a repetition
    per_rep: list[dict[str, dict[str, float]]] = []
    loads = []
    try:
        for rep in range(cfg["reps"]):
            order = names[rep % len(names):] + names[: rep % len(names)]
            values: dict[str, dict[str, float]] = {}
            loads.append({"rep": rep + 1, "before": B.loadavg()})
            for case in order:
                port, servers = all_cases[case]()
                pids = [pid for s in servers for pid in s.pids()]
                try:
                    check(case, port)
                    B.wrk(port, PATHS, 32, cfg["warm"])  # warm-up, discarded
                    m = B.measure(port, PATHS, 32, cfg["secs"], pids)
                    B.wrk(port, PATHS, 1, cfg["warm1"])
                    m1 = B.measure(port, PATHS, 1, cfg["secs1"], pids)
                    for s in servers:
                        if not s.alive():
                            raise RuntimeError(f"{case}: {s.name} died during the run:\n{s.log_text()[-2000:]}")
                finally:
                    for s in reversed(servers):
                        s.stop()
                values[case] = v = {
                    "req/s": m.wrk.rps,
                    "cpu/req": m.cpu_us_per_req,
                    "p50": m.wrk.p50_us,
                    "p99": m.wrk.p99_us,
                    "req/s @1conn": m1.wrk.rps,
                    "p50 @1conn": m1.wrk.p50_us,
                    "p99 @1conn": m1.wrk.p99_us,
                    "failed requests": m.wrk.errors + m1.wrk.errors,
                    "other load on server CPU": m.cpu1_foreign_pct,
                }
                B.log(f"http rep {rep + 1}/{cfg['reps']} {case}: {v['req/s']:.0f} req/s, {v['cpu/req']:.1f} µs CPU/req, "
                      f"p50 {v['p50']:.0f} µs, 1-conn p50 {v['p50 @1conn']:.0f} µs, failed {v['failed requests']}, "
                      f"other load {v['other load on server CPU']:.1f}%")
            loads[-1]["after"] = B.loadavg()
            per_rep.append(values)
    finally:
        B.stop_all()

    units = {"req/s": "req/s", "cpu/req": "µs", "p50": "µs", "p99": "µs", "req/s @1conn": "req/s",
             "p50 @1conn": "µs", "p99 @1conn": "µs", "failed requests": "count", "other load on server CPU": "%"}
    notes = {
        "req/s": "wrk -t1 -c32, closed loop",
        "cpu/req": "utime+stime of every server process (/proc/PID/stat) over the 32-connection run / requests",
        "other load on server CPU": ("busy time of the server CPU not spent by the measured servers (other users' jobs, irqs); "
                                     "where the servers do not saturate it (direct: wrk is the limit) others fill the idle time"),
    }
    for values in per_rep:
        for case, v in values.items():
            for metric, x in v.items():
                res.add(case, metric, units[metric], x, notes.get(metric, ""))
            group = case.split("/")[0]
            direct = values.get(f"{group}/direct")
            if direct and not case.endswith("/direct"):
                res.add(case, "cpu/req above direct", "µs", v["cpu/req"] - direct["cpu/req"],
                        "paired within each repetition")
                res.add(case, "p50 added @1conn", "µs", v["p50 @1conn"] - direct["p50 @1conn"],
                        "1-connection p50 minus direct's, paired within each repetition")
    res.write()
    (args.results / "meta-http-load.json").write_text(json.dumps(loads, indent=1) + "\n")
    failed = sum(v["failed requests"] for values in per_rep for v in values.values())
    if failed:
        B.log(f"http: {failed} requests FAILED (see failed requests rows)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
