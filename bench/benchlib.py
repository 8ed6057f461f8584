"""Shared helpers of the benchmark parts (bench/http, bench/plugins).

Everything here starts servers on 127.0.0.1 only, pins them to the server CPU, keeps
every load run bounded in time, and stops only the processes it started, by PID.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOADGEN_CPU = os.environ.get("BENCH_LOADGEN_CPU", "0")
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "1")
CLK_TCK = os.sysconf("SC_CLK_TCK")

_children: list["Server"] = []


def log(*args) -> None:
    print("bench:", *args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

def _die_with_parent() -> None:
    """In the child: get SIGTERM when the driver dies, even if it is SIGKILLed."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Server:
    name: str
    argv: list[str]
    log_path: Path
    env: dict | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *self.argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            preexec_fn=_die_with_parent,
        )
        out.close()
        _children.append(self)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """This server's process and every descendant (nginx's workers)."""
        return [self.pid, *descendants(self.pid)]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, needle: str, timeout: float = 60.0, count: int = 1) -> float:
        """Waits until `needle` occurs `count` times in the log; returns when it was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(needle) >= count:
                return time.monotonic()
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before `{needle}`:\n{self.log_text()[-3000:]}")
            time.sleep(0.002)
        raise RuntimeError(f"{self.name}: no `{needle}` within {timeout}s:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(self.stop_signal)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self in _children:
            _children.remove(self)


def stop_all() -> None:
    for s in list(reversed(_children)):
        try:
            s.stop()
        except Exception as e:  # keep stopping the others
            log(f"could not stop {s.name}: {e}")


def _on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int | Path, timeout: float = 30.0, server: Server | None = None) -> None:
    """Until `port` on 127.0.0.1 (or the Unix socket at that path) accepts a connection."""
    where = port if isinstance(port, Path) else f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if isinstance(port, Path):
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(0.5)
                    s.connect(str(port))
            else:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if server is not None and not server.alive():
                raise RuntimeError(f"{server.name} exited before listening:\n{server.log_text()[-3000:]}")
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {where} after {timeout}s")


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 GET on a new connection; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers, body


# ---------------------------------------------------------------- /proc readings

def cpu_ticks(pids: list[int]) -> int:
    """utime + stime (+ waited-for children) of each process, all its threads included."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2 :].split()
        # fields 14..17 of stat(5): utime stime cutime cstime; f[0] is field 3
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total


def cpu_busy_ticks(cpu: str) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]  # idle + iowait
            return sum(v[:8]) - idle, sum(v[:8])
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


def rss_kib(pid: int, key: str = "VmRSS:") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# ---------------------------------------------------------------- nginx

# The top of every nginx config the parts write (`{work}`, `{name}` to format): one worker
# in the foreground, its pid and errors in the work folder.
NGINX_COMMON = """\
worker_processes 1;
daemon off;
master_process on;
pid {work}/{name}.pid;
error_log {work}/{name}.err warn;
events {{ worker_connections 4096; }}
"""

# What isthmus writes on every proxied request, for the nginx proxies compared with it:
# pooled keep-alive upstream connections, Host kept, X-Forwarded-For/-Proto/-Host
# written, a request id sent upstream and returned to the client.
NGINX_PROXY_HEADERS = """\
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $http_host;
  proxy_set_header X-Forwarded-For $remote_addr;
  proxy_set_header X-Forwarded-Proto $scheme;
  proxy_set_header X-Forwarded-Host $http_host;
  proxy_set_header X-Request-Id $request_id;
  add_header X-Request-Id $request_id;
"""


def nginx(name: str, conf: str, work: Path, ports: list[int]) -> Server:
    """nginx with config text `conf` (written to WORK/NAME.conf), started on the server
    CPU; returns once each of `ports` accepts connections."""
    path = work / f"{name}.conf"
    path.write_text(conf)
    s = Server(name, ["nginx", "-p", str(work), "-e", str(work / f"{name}.err"), "-c", str(path)],
               work / f"{name}.log", stop_signal=signal.SIGQUIT).start()
    for port in ports:
        wait_port(port, server=s)
    return s


# ---------------------------------------------------------------- wrk

ALT_LUA = Path(__file__).resolve().parent / "http" / "alternate.lua"


@dataclass
class WrkResult:
    rps: float
    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    errors: int  # non-2xx/3xx responses + socket errors
    raw: str = ""


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def _latency_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"latency `{text}`")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not m:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    requests = int(m.group(1))
    seconds = _latency_us(m.group(2) + m.group(3)) / 1e6
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M))
    errors = 0
    if m2 := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m2.group(1))
    if m3 := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m3.groups())
    return WrkResult(rps, requests, seconds, _latency_us(pct["50"]), _latency_us(pct["99"]), errors, out)


def wrk(port: int, paths: list[str], connections: int, seconds: float) -> WrkResult:
    """wrk on the load-generator CPU, one thread, closed loop, alternating `paths`."""
    argv = [
        "taskset", "-c", LOADGEN_CPU, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
        "--timeout", "5s", "-s", str(ALT_LUA), f"http://127.0.0.1:{port}", "--", *paths,
    ]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr}\n{p.stdout}")
    return parse_wrk(p.stdout)


@dataclass
class Measured:
    wrk: WrkResult
    cpu_us_per_req: float
    cpu1_foreign_pct: float  # busy time on the server CPU not spent by the servers measured


def measure(port: int, paths: list[str], connections: int, seconds: float, pids: list[int]) -> Measured:
    """wrk plus the server processes' CPU time over the same window."""
    t0 = cpu_ticks(pids)
    b0, a0 = cpu_busy_ticks(SERVER_CPU)
    r = wrk(port, paths, connections, seconds)
    b1, a1 = cpu_busy_ticks(SERVER_CPU)
    t1 = cpu_ticks(pids)
    served = max(r.requests, 1)
    cpu_us = (t1 - t0) * 1e6 / CLK_TCK / served
    foreign = max(0, (b1 - b0) - (t1 - t0)) * 100.0 / max(1, a1 - a0)
    return Measured(r, cpu_us, foreign)


# ---------------------------------------------------------------- results

@dataclass
class Series:
    section: str
    case: str
    metric: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    def row(self) -> dict:
        v = self.values
        row = {
            "section": self.section, "case": self.case, "metric": self.metric, "unit": self.unit,
            "median": statistics.median(v) if v else float("nan"),
            "min": min(v) if v else float("nan"), "max": max(v) if v else float("nan"),
            "reps": len(v),
        }
        if self.note:
            row["note"] = self.note
        return row


class Results:
    """Collects values per (case, metric) and writes `<results>/<part>.json`."""

    def __init__(self, section: str, path: Path):
        self.section = section
        self.path = path
        self.series: dict[tuple[str, str], Series] = {}
        self.extra_rows: list[dict] = []

    def add(self, case: str, metric: str, unit: str, value: float, note: str = "") -> None:
        key = (case, metric)
        if key not in self.series:
            self.series[key] = Series(self.section, case, metric, unit, note=note)
        s = self.series[key]
        s.values.append(value)
        if note and not s.note:
            s.note = note

    def note(self, case: str, metric: str, note: str) -> None:
        if (case, metric) in self.series:
            self.series[(case, metric)].note = note

    def add_row(self, row: dict) -> None:
        self.extra_rows.append(row)

    def write(self) -> None:
        rows = [s.row() for s in self.series.values()] + self.extra_rows
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(self.path)


def settings(quick: bool) -> dict:
    """Repetitions and durations; `--quick` only checks that the harness works."""
    if quick:
        return {"reps": 1, "warm": 1.0, "secs": 3.0, "warm1": 1.0, "secs1": 2.0}
    return {
        "reps": int(os.environ.get("BENCH_REPS", "5")),
        "warm": 2.0, "secs": 8.0,   # 32 connections: warm-up discarded, then measured
        "warm1": 1.0, "secs1": 4.0,  # 1 connection
    }
