"""Start-up of the gateway with a large policy: the Python router template (`isthmus
plugin new --lang python --world router`, ~18 MB, seconds to compile), alone in the
chain, as `isthmus serve` (release build) starts it with

- a cold compiled-plugin cache (emptied first), `startup_wait` at its default (2 s);
- the same with `startup_wait = "10m"`: the gateway waits for the compile, which is
  what every start did before start-up stopped waiting (the reference);
- a warm cache (filled by the previous start);
- a new version of the component (other bytes, same behaviour) that the cache does
  not hold yet, while it holds the previous one: the previous version serves meanwhile.

For each: spawn to the `isthmus listening` line, spawn to the first answer of the policy
itself (GET /staff/report answered 302 by the router, polled every 5 ms; before that
the gateway answers 503 "is starting"), and, for a new version, spawn to its
`plugin loaded` line. Cases alternate within each repetition; the gateway is pinned to
BENCH_SERVER_CPU (one core: the compile runs on it too). Prints a table and writes
RESULTS_DIR/startup.json.

    python3 bench/plugins/startup.py RESULTS_DIR [--reps N] [--component ROUTER.wasm]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402
from run import variant  # noqa: E402

CONF = """[listen]
addr = "127.0.0.1:{port}"
[upstreams.django]
url = "http://127.0.0.1:{django}"
[routing]
cache_dir = "{cache}"
{wait}
[[routing.routers]]
plugin = "router.wasm"
max_memory = 67108864
deadline = "50ms"
[bridge]
identity_secret = "0123456789abcdef0123456789abcdef"
bridge_secret = "fedcba9876543210fedcba9876543210"
[bridge.policy]
plugin = "builtin:django-bridge"
"""


def build_component(isthmus: Path, work: Path) -> Path:
    project = work / "python-router"
    subprocess.run([str(isthmus), "plugin", "new", "--lang", "python", "--world", "router", str(project)], check=True,
                   stdout=sys.stderr)
    B.log("startup: building the Python router template (componentize-py)")
    subprocess.run(["./build.sh"], cwd=project, check=True, stdout=sys.stderr)
    return project / "router.wasm"


def policy_answers(port: int) -> bool:
    try:
        status, _, _ = B.http_get(port, "/staff/report", timeout=2.0)
    except OSError:
        return False
    return status == 302


def start(isthmus: Path, site: Path, work: Path, port: int, name: str) -> dict[str, float]:
    """Spawns the gateway, waits for the policy's own answer; returns the times in ms."""
    log = work / f"{name}.log"
    log.unlink(missing_ok=True)
    gw = B.Server("isthmus", [str(isthmus), "serve", "--config", str(site / "isthmus.toml")], log)
    t0 = time.monotonic()
    gw.start()
    try:
        listening = gw.wait_log("isthmus listening", timeout=300)
        while not policy_answers(port):
            if time.monotonic() - t0 > 300:
                raise RuntimeError(f"{name}: the router never answered:\n{gw.log_text()[-3000:]}")
            if not gw.alive():
                raise RuntimeError(f"{name}: the gateway exited:\n{gw.log_text()[-3000:]}")
            time.sleep(0.005)
        answered = time.monotonic()
        times = {"listening": (listening - t0) * 1e3, "answered": (answered - t0) * 1e3}
        if "previous version serves" in gw.log_text():
            times["new version loaded"] = (gw.wait_log("plugin loaded plugin=\"router\"", timeout=300) - t0) * 1e3
        return times
    finally:
        gw.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--isthmus", type=Path, default=B.REPO / "target/release/isthmus")
    ap.add_argument("--component", type=Path, help="a router component (default: build the Python template)")
    args = ap.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    res = B.Results("startup", args.results / "startup.json")
    work = Path(tempfile.mkdtemp(prefix="isthmus-bench-startup-"))
    try:
        component = args.component or build_component(args.isthmus, work)
        original = component.read_bytes()
        site, cache, port = work / "site", work / "cache", B.free_port()
        (site / "plugins").mkdir(parents=True)
        router = site / "plugins" / "router.wasm"
        size = f"{len(original) / 1e6:.1f} MB component"

        def configure(wait: str) -> None:
            (site / "isthmus.toml").write_text(
                CONF.format(port=port, django=B.free_port(), cache=cache, wait=wait))

        cases = {
            "cold cache": lambda: (shutil.rmtree(cache, ignore_errors=True), configure("")),
            "cold cache, waiting for the compile": lambda: (
                shutil.rmtree(cache, ignore_errors=True), configure('startup_wait = "10m"')),
            "warm cache": lambda: configure(""),
            "new version, previous one cached": lambda: (
                router.write_bytes(variant(original, f"v{time.monotonic_ns()}")), configure("")),
        }
        loads = [B.loadavg()]
        for rep in range(args.reps):
            names = list(cases) if rep % 2 == 0 else list(reversed(cases))
            for name in names:
                if name == "warm cache" or name.startswith("new version"):
                    if not cache.exists():  # these need a cache from an earlier start
                        router.write_bytes(original)
                        configure("")
                        start(args.isthmus, site, work, port, "fill")
                router.write_bytes(original)
                cases[name]()
                times = start(args.isthmus, site, work, port, f"{rep}-{name}")
                B.log(f"startup: {name}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in times.items()))
                for metric, ms in times.items():
                    res.add(name, f"spawn to {metric}", "ms", ms, size)
            res.write()
        loads.append(B.loadavg())
        print(f"{size}; load average (1/5/15 min) before {loads[0]}, after {loads[1]}")
        print("| start | spawn to `isthmus listening` | spawn to the policy's first answer | spawn to the new version |")
        print("| --- | --- | --- | --- |")
        for name in cases:
            cells = []
            for metric in ("listening", "answered", "new version loaded"):
                s = res.series.get((name, f"spawn to {metric}"))
                if s is None:
                    cells.append("—")
                    continue
                v = sorted(s.values)
                cells.append(f"{v[len(v) // 2]:.0f} ms [{v[0]:.0f} … {v[-1]:.0f}]")
            print(f"| {name} | " + " | ".join(cells) + " |")
    finally:
        B.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
