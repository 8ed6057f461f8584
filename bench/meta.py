"""Records the conditions of a benchmark run in RESULTS_DIR/meta.json.

    python bench/meta.py RESULTS_DIR start --mode full|quick --command "..."
    python bench/meta.py RESULTS_DIR end [--skipped "reason"]...
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sh(*argv: str, strip: bool = True) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (p.stdout + p.stderr).strip() if strip else p.stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def tools(rd_python: str | None) -> dict[str, str]:
    t = {
        "nginx": sh("nginx", "-v").replace("nginx version: ", ""),
        "wrk": sh("wrk", "-v").splitlines()[0].split(" [")[0] if sh("wrk", "-v") else "?",
        "h2load": (sh("h2load", "--version").splitlines() or ["?"])[0],
        "rustc": sh("rustc", "--version"),
        "python (driver)": platform.python_version(),
    }
    if rd_python:
        t["python (reflex-django)"] = sh(rd_python, "-c", "import platform; print(platform.python_version())")
        t["reflex-django / uvicorn / uvloop / httptools"] = sh(rd_python, "-c", (
            "from importlib.metadata import version as v; "
            "print(' / '.join(v(p) for p in ('reflex-django', 'uvicorn', 'uvloop', 'httptools')))"))
    return t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("phase", choices=["start", "end"])
    ap.add_argument("--mode", default="full")
    ap.add_argument("--command", default="")
    ap.add_argument("--rd-python")
    ap.add_argument("--skipped", action="append", default=[])
    args = ap.parse_args()
    path = args.results / "meta.json"
    if args.phase == "start":
        status = sh("git", "-C", str(REPO), "status", "--porcelain", "--", "host", "guest-plugins", "wit", "Cargo.toml", "Cargo.lock", strip=False)
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "started": time.time(),
            "mode": args.mode,
            "command": args.command,
            "commit": sh("git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"),
            "dirty": sorted({line[3:] for line in status.splitlines() if line.strip()}),
            "cpu_model": cpu_model(),
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "loadgen_cpu": os.environ.get("BENCH_LOADGEN_CPU", "0"),
            "server_cpu": os.environ.get("BENCH_SERVER_CPU", "1"),
            "loadavg": {"before": loadavg()},
            "tools": tools(args.rd_python),
            "skipped": [],
        }
    else:
        meta = json.loads(path.read_text())
        meta["loadavg"]["after"] = loadavg()
        meta["duration_s"] = round(time.time() - meta["started"])
        meta["skipped"] = meta.get("skipped", []) + args.skipped
    path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
