"""HTTPS at the edge: isthmus's [listen.tls] against nginx with the same certificate
(an ECDSA P-256 leaf from examples/shop/dev-tls.sh), both proxying to the same
return-200 nginx upstream over pooled keep-alive connections, both on one worker
pinned to BENCH_SERVER_CPU, the clients on BENCH_LOADGEN_CPU:

- `handshakes`: wrk with `Connection: close`, so every request is a new TCP connection
  and a full TLS handshake (wrk resumes no session): handshakes (and requests) per
  second, and the servers' CPU per handshake;
- `https-h1`: wrk over kept-alive TLS connections, HTTP/1.1: req/s and CPU per request;
- `https-h2`: h2load, HTTP/2 by ALPN, 16 streams in flight per connection.

Cases alternate within each repetition; every server is restarted for every case.
Prints a table and writes RESULTS_DIR/tls.json (rows as bench/README.md describes,
section `tls`), with the load average and the foreign CPU on the server core.

    python3 bench/tls/run.py RESULTS_DIR [--reps N] [--seconds S] [--isthmus PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchlib as B  # noqa: E402

CONNECTIONS = 32

UPSTREAM_CONF = B.NGINX_COMMON + """\
http {{
  access_log off;
  keepalive_requests 100000000;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}
}}
"""

# What isthmus does per request, as in bench/http; TLS as isthmus sets it up: 1.2 and
# 1.3, ALPN h2 and http/1.1, session tickets on (neither side resumes here).
PROXY_CONF = B.NGINX_COMMON + """\
http {{
  access_log off;
  keepalive_requests 100000000;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; keepalive_requests 100000000; }}
""" + B.NGINX_PROXY_HEADERS + """\
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ proxy_pass http://app; }}
  }}
}}
"""

ISTHMUS_CONF = """\
[listen]
addr = "127.0.0.1:{port}"
workers = 1

[listen.tls]
cert = "{cert}"
key = "{key}"

[upstreams.app]
url = "http://127.0.0.1:{upstream}"

[[routing.routers]]
plugin = "builtin:prefix-router"
config = {{ django_prefixes = ["/bench"], django_upstream = "app" }}
"""


def isthmus(binary: Path, work: Path, port: int, upstream: int, cert: Path, key: Path) -> B.Server:
    site = work / "isthmus"
    site.mkdir(exist_ok=True)
    (site / "isthmus.toml").write_text(ISTHMUS_CONF.format(port=port, upstream=upstream, cert=cert, key=key))
    log = work / "isthmus.log"
    log.unlink(missing_ok=True)
    s = B.Server("isthmus", [str(binary), "serve", "--config", str(site / "isthmus.toml")], log,
                 env={"RUST_LOG": "info,isthmus::access=off"}).start()
    s.wait_log("isthmus listening")
    B.wait_port(port, server=s)
    return s


def wrk_https(port: int, seconds: float, close: bool) -> B.WrkResult:
    argv = ["taskset", "-c", B.LOADGEN_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s",
            "--latency", "--timeout", "5s", *(["-H", "Connection: close"] if close else []),
            f"https://127.0.0.1:{port}/bench"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr}\n{p.stdout}")
    return B.parse_wrk(p.stdout)


def h2load(port: int, seconds: float) -> tuple[float, int, int]:
    """req/s, requests done, requests failed."""
    argv = ["taskset", "-c", B.LOADGEN_CPU, "h2load", "-c", str(CONNECTIONS), "-m", "16", "-D", str(max(1, round(seconds))),
            "--warm-up-time", "1", f"https://127.0.0.1:{port}/bench"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = p.stdout
    if p.returncode != 0 or "Application protocol: h2" not in out:
        raise RuntimeError(f"h2load failed ({p.returncode}): {p.stderr}\n{out}")
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    return rps, int(done.group(1)), int(done.group(3)) + int(done.group(4))


def measure(kind: str, pids: list[int], port: int, seconds: float) -> dict:
    """One load run of `kind` against `port`, with the servers' CPU over it."""
    t0 = B.cpu_ticks(pids)
    b0, a0 = B.cpu_busy_ticks(B.SERVER_CPU)
    if kind == "https-h2":
        rps, done, failed = h2load(port, seconds)
        # h2load's -D window excludes the warm-up; CPU is over the whole run.
        served = max(done, 1)
    else:
        r = wrk_https(port, seconds, close=kind == "handshakes")
        rps, served, failed = r.rps, max(r.requests, 1), r.errors
    b1, a1 = B.cpu_busy_ticks(B.SERVER_CPU)
    t1 = B.cpu_ticks(pids)
    cpu_us = (t1 - t0) * 1e6 / B.CLK_TCK / served
    foreign = max(0, (b1 - b0) - (t1 - t0)) * 100.0 / max(1, a1 - a0)
    return {"rps": rps, "cpu_us": cpu_us, "failed": failed, "foreign_pct": foreign}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--isthmus", type=Path, default=B.REPO / "target/release/isthmus")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "h2load", "taskset", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (Debian: nginx-light, wrk, nghttp2-client, util-linux, openssl)")
    args.results.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="isthmus-bench-tls-"))
    try:
        subprocess.run(["bash", str(B.REPO / "examples/shop/dev-tls.sh"), str(work / "tls"), "localhost", "127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL)
        cert, key = work / "tls" / "site.pem", work / "tls" / "site-key.pem"
        upstream_port = B.free_port()
        upstream = B.nginx("upstream", UPSTREAM_CONF.format(work=work, name="upstream", port=upstream_port), work,
                           [upstream_port])
        samples: dict[tuple[str, str], list[dict]] = {}
        kinds = ["handshakes", "https-h1", "https-h2"]
        for rep in range(args.reps):
            servers = ["isthmus", "nginx"] if rep % 2 == 0 else ["nginx", "isthmus"]
            for kind in kinds:
                for server in servers:
                    port = B.free_port()
                    if server == "nginx":
                        conf = PROXY_CONF.format(work=work, name="proxy", port=port, upstream=upstream_port, cert=cert, key=key)
                        s = B.nginx("proxy", conf, work, [port])
                    else:
                        s = isthmus(args.isthmus, work, port, upstream_port, cert, key)
                    try:
                        m = measure(kind, s.pids(), port, args.seconds)
                    finally:
                        s.stop()
                    m["load"] = B.loadavg()[0]
                    samples.setdefault((kind, server), []).append(m)
                    B.log(f"tls rep {rep + 1}/{args.reps} {kind:10} {server:7} {m['rps']:9.0f}/s "
                          f"{m['cpu_us']:7.1f} µs CPU each, failed {m['failed']}, foreign {m['foreign_pct']:.0f} %")
        upstream.stop()
    finally:
        B.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    rows, lines = [], ["| load | server | per second, median [min … max] | server CPU each (µs), median [min … max] | failed | foreign CPU on the server core | load average |",
                       "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind in kinds:
        for server in ("isthmus", "nginx"):
            ms = samples[(kind, server)]
            rps = [m["rps"] for m in ms]
            cpu = [m["cpu_us"] for m in ms]
            unit = "handshakes/s" if kind == "handshakes" else "req/s"
            for metric, values, u in ((unit, rps, unit), ("server CPU per request", cpu, "µs")):
                rows.append({"section": "tls", "case": f"{kind}/{server}", "metric": metric, "unit": u,
                             "median": statistics.median(values), "min": min(values), "max": max(values), "reps": len(values)})
            lines.append(
                f"| {kind} | {server} | {statistics.median(rps):.0f} [{min(rps):.0f} … {max(rps):.0f}] "
                f"| {statistics.median(cpu):.1f} [{min(cpu):.1f} … {max(cpu):.1f}] | {sum(m['failed'] for m in ms)} "
                f"| {min(m['foreign_pct'] for m in ms):.0f}–{max(m['foreign_pct'] for m in ms):.0f} % "
                f"| {min(m['load'] for m in ms):.1f}–{max(m['load'] for m in ms):.1f} |"
            )
    (args.results / "tls.json").write_text(json.dumps(rows, indent=1) + "\n")
    (args.results / "tls.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
