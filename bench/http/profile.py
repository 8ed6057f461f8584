"""Where the proxy's time goes: `perf record` of the proxy process (isthmus, and nginx's
worker for comparison) under the same 32-connection load as the HTTP benchmark.

    python bench/http/profile.py RESULTS_DIR [--seconds 8]

Writes RESULTS_DIR/profile-isthmus.md and profile-nginx.md: the flat profile by
shared object and by symbol (self time, `perf report --no-children`), plus syscalls per
request (`perf stat -e raw_syscalls:sys_enter`), and the caller-side call graph of the
isthmus process when `perf` can unwind it (DWARF).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchlib as B  # noqa: E402

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("bench_http", HERE / "run.py")
http = importlib.util.module_from_spec(spec)
spec.loader.exec_module(http)


def perf(argv: list[str], timeout: float, drop_inlined: bool = False, limit: int = 80) -> str:
    """`perf report` output without its comment lines, padding and (optionally) the
    frames of inlined generic glue, long symbols cut."""
    p = subprocess.run(["perf", *argv], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"perf {' '.join(argv)} failed: {p.stderr[-2000:]}")
    lines = []
    for line in p.stdout.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        if drop_inlined and ("(inlined)" in line or re.search(r"\] (call_once|catch_unwind|do_call|poll_future|with_mut|poll_inner|poll<|\{closure)", line)):
            continue
        line = re.sub(r"\s+-\s+-$", "", line)
        lines.append(line[:170])
    return "\n".join(lines[:limit]) + "\n"


def profile(name: str, pid: int, port: int, secs: float, work: Path, dwarf: bool) -> str:
    """Flat profile + syscall count of `pid` while wrk runs for `secs` seconds."""
    data = work / f"{name}.perf.data"
    B.wrk(port, http.PATHS, 32, 2)  # warm-up
    rec = subprocess.Popen(["perf", "record", "-F", "2999", "-p", str(pid), "-o", str(data), "--", "sleep", str(secs - 1)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    r = B.wrk(port, http.PATHS, 32, secs)
    rec.wait(timeout=60)
    out = [f"# {name}: {r.rps:.0f} req/s during the recording (wrk -t1 -c32, {secs:g} s, perf record -F 2999 on the proxy process only)\n"]
    out.append("## Self time by shared object\n\n```")
    out.append(perf(["report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso", "--percent-limit", "0.5"], 300) + "```\n")
    out.append("## Self time by symbol (≥ 0.4 %)\n\n```")
    out.append(perf(["report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,symbol", "--percent-limit", "0.4"], 300) + "```\n")
    # syscalls per request, counted over the same kind of run
    stat = subprocess.Popen(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-p", str(pid), "--", "sleep", str(secs - 1)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    r2 = B.wrk(port, http.PATHS, 32, secs)
    _, err = stat.communicate(timeout=60)
    n = next((int(l.split()[0].replace(",", "")) for l in err.splitlines() if "raw_syscalls:sys_enter" in l), None)
    if n is not None:
        per = n / max(1, r2.requests) * secs / max(1, secs - 1)
        out.append(f"## Syscalls\n\n{n} syscalls in {secs - 1:g} s ≈ {per:.2f} per request ({r2.rps:.0f} req/s)\n")
    if dwarf:
        cg = work / f"{name}.cg.data"
        rec = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,32768", "-p", str(pid), "-o", str(cg),
                                "--", "sleep", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        B.wrk(port, http.PATHS, 32, 4)
        rec.wait(timeout=60)
        out.append("## Inclusive time (self + callees) by symbol, DWARF call graphs (≥ 2 %, generic glue frames left out)\n\n```")
        out.append(perf(["report", "-i", str(cg), "--stdio", "--children", "--sort", "symbol", "-g", "none",
                         "--percent-limit", "2"], 600, drop_inlined=True, limit=60) + "```\n")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--isthmus", type=Path, default=B.REPO / "target/release/isthmus")
    ap.add_argument("--plugin", type=Path, default=B.REPO / "target/plugins/prefix_router.wasm")
    args = ap.parse_args()
    if not shutil.which("perf"):
        B.log("profile: perf is not installed; no profile")
        return 1
    work = Path(tempfile.mkdtemp(prefix="isthmus-bench-profile-"))
    env = http.Env(work, args.isthmus, args.plugin, None)
    try:
        for name in ("isthmus", "nginx"):
            ports = {"django": B.free_port(), "reflex": B.free_port()}
            port = B.free_port()
            up = env.nginx_upstream(ports, "upstream")
            try:
                if name == "isthmus":
                    proxy = env.isthmus_gateway(port, ports["django"], ports["reflex"])
                    pid = proxy.pid
                else:
                    proxy = env.nginx_proxy(port, ports["django"], ports["reflex"])
                    time.sleep(0.2)
                    pid = B.descendants(proxy.pid)[0]  # the one worker
                try:
                    text = profile(name, pid, port, args.seconds, work, dwarf=(name == "isthmus"))
                finally:
                    proxy.stop()
            finally:
                up.stop()
            (args.results / f"profile-{name}.md").write_text(text)
            B.log(f"profile: wrote {args.results / f'profile-{name}.md'}")
    finally:
        B.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
