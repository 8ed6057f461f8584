"""The real processes of the end-to-end suite, from a temporary copy of examples/shop:
`isthmus run`, which starts Django (uvicorn) and the Reflex backend from the config's
`run` commands, plus further `isthmus serve` gateways in front of the same two; all on
127.0.0.1, each gateway in its own process group, stopped by process-group id at the
end (also from atexit, so a crashed session leaves no orphans).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import tomli_w

from otlp import Receiver

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: The default policies, from target/plugins (guest-plugins/build.sh).
PLUGINS = ("prefix_router.wasm", "django_bridge.wasm")
#: How long a gateway may take until its example's chain probes stop answering 503.
CHAIN_READY_TIMEOUT = 300.0

#: How long each step of the set-up took, for the summary at the end of the run.
TIMINGS: dict[str, float] = {}


@dataclass(frozen=True)
class Example:
    """An example project the suite runs for real, and what differs from one to another."""

    name: str
    path: Path
    #: The folder of manage.py, relative to the example.
    django_dir: str
    settings: str
    #: The environment variables its settings read the SQLite file and STATIC_ROOT from.
    db_env: str
    static_root_env: str
    #: Its own policies, from <example>/plugins (built by its own script).
    plugins: tuple[str, ...] = ()
    #: Requests through the whole router chain that must answer something other than 503
    #: before a gateway counts as ready: a gateway may answer 503 + Retry-After (its log
    #: says "router is starting") while it compiles a plugin (a Python component: seconds
    #: in a release build, over a minute in a debug build on a busy machine).
    chain_probes: tuple[str, ...] = ("/ping",)
    #: Where `reflex export` leaves its SPA, relative to the example.
    spa_dir: str = ".web/build/client"


#: examples/shop, which most of the suite drives; its own policy is staff_reports, the
#: Python router first in its chain (examples/shop/policies.sh).
SHOP = Example(
    name="shop",
    path=REPO / "examples" / "shop",
    django_dir="backend",
    settings="shopsite.settings",
    db_env="SHOP_DB_PATH",
    static_root_env="SHOP_STATIC_ROOT",
    plugins=("staff_reports.wasm",),
    chain_probes=("/ping", "/reports/stock/"),
    spa_dir="frontend/.web/build/client",
)
#: examples/ported: reflex-django's tutorial app, ported (test_ported.py).
PORTED = Example(
    name="ported",
    path=REPO / "examples" / "ported",
    django_dir=".",
    settings="config.settings",
    db_env="PORTED_DB_PATH",
    static_root_env="PORTED_STATIC_ROOT",
)
EXAMPLE = SHOP.path

#: Password of every demo user (manage.py shop_demo_users).
PASSWORD = "e2e-Passw0rd-" + secrets.token_hex(4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return free_port()


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds. Returns the exit code."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Children of the group (granian's workers, uvicorn's reloader) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        return self.popen.returncode


_RUNNING: list[Proc] = []


def _stop_all_at_exit() -> None:
    for proc in reversed(_RUNNING):
        with contextlib.suppress(Exception):
            proc.stop(grace=3)


atexit.register(_stop_all_at_exit)


def _child_setup() -> None:
    """In the child, before exec: its own session (process group), and SIGTERM when the
    test process dies without running atexit (SIGKILL, OOM), so nothing outlives it."""
    os.setsid()
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


def start(name: str, argv: list[str], *, cwd: Path, env: dict[str, str], logdir: Path) -> Proc:
    log = logdir / f"{name}.log"
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    popen = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        preexec_fn=_child_setup,  # own process group (stopped with killpg), parent-death signal
    )
    out.close()
    proc = Proc(name, popen, log)
    _RUNNING.append(proc)
    return proc


def wait_until(what: str, check: Callable[[], bool], *, timeout: float, procs: list[Proc] = (), interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode} while waiting for {what}:\n{tail(p.log)}")
        try:
            if check():
                return
        except Exception as e:  # not up yet
            last_error = e
        time.sleep(interval)
    logs = "\n".join(f"--- {p.name} ({p.log})\n{tail(p.log)}" for p in procs)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last_error!r})\n{logs}")


def build(logdir: Path) -> Path:
    """The gateway binary (and the plugins), built unless ISTHMUS_E2E_SKIP_BUILD=1."""
    if os.environ.get("ISTHMUS_BIN"):
        return Path(os.environ["ISTHMUS_BIN"])
    if os.environ.get("ISTHMUS_E2E_SKIP_BUILD") != "1":
        for argv in (
            ["bash", str(REPO / "guest-plugins" / "build.sh")],
            ["cargo", "build", "--release", "-p", "isthmus"],
            ["bash", str(EXAMPLE / "policies.sh")],
        ):
            log = logdir / "build.log"
            with open(log, "ab") as out:
                rc = subprocess.call(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
            if rc != 0:
                raise RuntimeError(f"{' '.join(argv)} failed ({rc}):\n{tail(log)}")
    for candidate in (REPO / "target" / "release" / "isthmus", REPO / "target" / "debug" / "isthmus"):
        if candidate.is_file():
            return candidate
    raise RuntimeError("no isthmus binary in target/release or target/debug: run cargo build --release -p isthmus")


def copy_example(dest: Path, example: Example = SHOP) -> Path:
    """A private copy of the example, without its local state (DB, .web, plugins…)."""
    ignore = shutil.ignore_patterns(
        ".web", ".states", ".tools", ".env", "node_modules", "plugins", "staticfiles", "*.sqlite3*", "__pycache__",
        "*.pyc", "build", ".venv", ".bindings", "*.wasm",
    )  # fmt: skip
    shutil.copytree(example.path, dest, ignore=ignore)
    return dest


@dataclass
class Gateway:
    name: str
    proc: Proc
    port: int
    config_path: Path
    #: With [listen.tls]: what clients verify its certificate with (a context trusting
    #: the test's CA); otherwise True (plain http).
    verify: ssl.SSLContext | bool = True

    @property
    def scheme(self) -> str:
        return "https" if isinstance(self.verify, ssl.SSLContext) else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.proc.log.read_text(errors="replace")

    def refusals_settled(self, event_name: str, expected: int, timeout: float = 5.0) -> int:
        """`refusals` once the log has caught up. The gateway writes its log through a
        non-blocking writer, so a refusal's line may land just after the answer: wait
        until `expected` is reached (or `timeout`), then a moment more for a late extra."""
        deadline = time.monotonic() + timeout
        while self.refusals(event_name) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        return self.refusals(event_name)

    def refusals(self, event_name: str | None = None) -> int:
        """How many events this gateway refused so far (its `event refused` log lines):
        tells a refusal by the gateway from one by a handler's decorator, which look
        alike on the wire. Right after a refusal, use `refusals_settled`."""
        return sum(
            1
            for line in self.log().splitlines()
            if "event refused" in line and (event_name is None or f"event={event_name} " in line + " ")
        )


def wait_chain_ready(gw: Gateway, *, probes: tuple[str, ...], timeout: float) -> None:
    """Until `probes` through the router chain stop answering 503, bounded by `timeout`:
    a gateway that listens while a plugin still compiles answers 503 with Retry-After
    (its log says "router is starting"), and `isthmus run` answers 503 for an
    upstream not yet healthy. Any other status counts (502: Reflex is not there, for
    gateways started without it)."""
    last: dict[str, str] = {}

    def through_chain() -> bool:
        for path in probes:
            r = httpx.get(f"{gw.url}{path}", timeout=10, verify=gw.verify)
            if r.status_code == 503:
                last[path] = f"503 retry-after={r.headers.get('retry-after')} {r.text[:200]!r}"
                return False
        return True

    started = time.monotonic()
    try:
        wait_until(f"gateway {gw.name}: the router chain", through_chain, timeout=timeout, procs=[gw.proc], interval=0.5)
    except TimeoutError as e:
        raise TimeoutError(f"{e}\nlast 503 answers: {last}") from None
    if last:
        print(f"gateway {gw.name}: router chain answered 503 for {time.monotonic() - started:.1f}s: {last}", file=sys.stderr)


@dataclass
class Stack:
    root: Path  # the temporary folder
    app: Path  # the copy of examples/shop
    isthmus: Path  # gateway binary
    identity_secret: str
    bridge_secret: str
    django_port: int
    reflex_port: int
    gateway_port: int
    db_path: Path
    static_root: Path
    spa_root: Path
    plugins_dir: Path
    logdir: Path
    example: Example = SHOP
    procs: dict[str, Proc] = field(default_factory=dict)
    gateways: dict[str, Gateway] = field(default_factory=dict)
    # Where the Reflex process (reflex-otel) and traced gateways export their spans.
    otlp: Receiver = field(default_factory=Receiver)

    # -- environment ---------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "DJANGO_SETTINGS_MODULE": self.example.settings,
                self.example.db_env: str(self.db_path),
                self.example.static_root_env: str(self.static_root),
                "ISTHMUS_IDENTITY_SECRET": self.identity_secret,
                "ISTHMUS_BRIDGE_SECRET": self.bridge_secret,
                "ISTHMUS_PUBLIC_ORIGIN": f"http://127.0.0.1:{self.gateway_port}",
                # The Reflex app's page guards (isthmus_reflex.guard_pages) read the
                # example's config, as `isthmus run` would name it.
                "ISTHMUS_CONFIG": str(self.app / "isthmus.toml"),
                # update_session: Django's session-write view, through the main gateway.
                "ISTHMUS_SESSION_URL": f"http://127.0.0.1:{self.gateway_port}/_isthmus/session",
                "REFLEX_TELEMETRY_ENABLED": "false",
                "RUST_LOG": os.environ.get("ISTHMUS_E2E_RUST_LOG", "isthmus=info,isthmus::bridge=debug"),
                "NO_COLOR": "1",
                # The shop's Reflex app turns reflex-otel on when these are set.
                "OTEL_SERVICE_NAME": "shop-reflex",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": self.otlp.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            }
        )
        env.pop("VIRTUAL_ENV", None)
        env.update(extra)
        return env

    def manage(self, *args: str, **env: str) -> str:
        """`python manage.py ARGS` in the example's Django project, with `env` added."""
        out = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.app / self.example.django_dir,
            env=self.env(**env),
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    # -- config --------------------------------------------------------------------------
    def gateway_config(
        self,
        *,
        port: int,
        django_port: int | None = None,
        reflex_port: int | None = None,
        bridge: dict[str, Any] | None = None,
        upstream_ports: dict[str, int] | None = None,
        without_routers: tuple[str, ...] = (),
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The example's isthmus.toml with this stack's ports and folders; the routers
        whose plugin file is in `without_routers` are left out of the chain; `edit`, if
        given, changes the result in place last (e.g. removes a key)."""
        with open(self.app / "isthmus.toml", "rb") as f:
            config = tomllib.load(f)
        config = copy.deepcopy(config)
        config["listen"]["addr"] = f"127.0.0.1:{port}"
        config["listen"]["shutdown_grace"] = "2s"
        config["upstreams"]["django"]["url"] = f"http://127.0.0.1:{django_port or self.django_port}"
        config["upstreams"]["reflex"]["url"] = f"http://127.0.0.1:{reflex_port or self.reflex_port}"
        for name in ("django", "reflex"):
            config["upstreams"][name]["cwd"] = str(self.app / config["upstreams"][name]["cwd"])
        if "django" in config:  # the config is written elsewhere: its manage.py by full path
            config["django"]["manage"] = str(self.app / config["django"]["manage"])
        config["static"]["frontend"]["root"] = str(self.spa_root)
        config["static"]["django_static"]["root"] = str(self.static_root)
        config["routing"]["plugins_dir"] = str(self.plugins_dir)
        config["routing"]["hot_reload"] = False
        config["bridge"]["identity_ttl"] = "2s"
        config["bridge"]["max_frame_bytes"] = 262144
        config["bridge"].update(bridge or {})
        for name, upstream_port in (upstream_ports or {}).items():
            config["upstreams"][name]["url"] = f"http://127.0.0.1:{upstream_port}"
        config["routing"]["routers"] = [r for r in config["routing"]["routers"] if r["plugin"] not in without_routers]
        if edit is not None:
            edit(config)
        return config

    def write_config(self, name: str, config: dict[str, Any]) -> Path:
        path = self.root / f"isthmus-{name}.toml"
        path.write_bytes(tomli_w.dumps(config).encode())
        return path

    def check(self, config_path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.isthmus), "check", "--config", str(config_path)], env=self.env(), capture_output=True, text=True
        )

    # -- processes ---------------------------------------------------------------------
    def child_pid(self, upstream: str, gateway: str = "main") -> int:
        """PID (= process group) of the upstream process `isthmus run` started last."""
        pids = re.findall(rf"(?:started|restarted) upstream={re.escape(upstream)} pid=(\d+)", self.gateways[gateway].log())
        if not pids:
            raise RuntimeError(f"isthmus run has not started {upstream}:\n{tail(self.gateways[gateway].proc.log)}")
        return int(pids[-1])

    def child_alive(self, upstream: str) -> bool:
        try:
            os.kill(self.child_pid(upstream), 0)
        except ProcessLookupError:
            return False
        return True

    def start_gateway(
        self,
        name: str = "main",
        *,
        port: int | None = None,
        run: bool = False,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        tls_ca: Path | None = None,
        **config_kw: Any,
    ) -> Gateway:
        """`isthmus serve`, or with `run` `isthmus run [args]`, which also starts Django
        and Reflex from the config's commands and is ready once all are healthy.
        `tls_ca`: the config has [listen.tls] with a certificate this CA signed."""
        port = port or (self.gateway_port if name == "main" else free_port())
        path = self.write_config(name, self.gateway_config(port=port, **config_kw))
        argv = [str(self.isthmus), "run" if run else "serve", "--config", str(path), *args]
        proc = start(f"isthmus-{name}", argv, cwd=self.root, env=env or self.env(), logdir=self.logdir)
        self.procs[f"isthmus-{name}"] = proc
        gw = Gateway(name, proc, port, path, ssl.create_default_context(cafile=tls_ca) if tls_ca else True)
        ready = "all upstreams ready" if run else "isthmus listening"
        try:
            # Today the gateway compiles its plugins before it listens: the first start
            # compiles the Python router (cached in plugins/.cache for the next gateways).
            wait_until(
                f"gateway {name}",
                lambda: ready in proc.log.read_text(errors="replace"),
                timeout=CHAIN_READY_TIMEOUT if run else CHAIN_READY_TIMEOUT / 2,
                procs=[proc],
            )
            wait_chain_ready(gw, probes=self.example.chain_probes, timeout=CHAIN_READY_TIMEOUT)
        except BaseException:
            # A wait failed (or pytest-timeout fired): stop it now, not at exit, so it is
            # not left compiling into a temporary folder that is being removed.
            self.procs.pop(f"isthmus-{name}", None)
            proc.stop(grace=5)
            raise
        self.gateways[name] = gw
        return gw

    def stop_gateway(self, name: str) -> int | None:
        gw = self.gateways.pop(name)
        self.procs.pop(f"isthmus-{name}", None)
        return gw.proc.stop(grace=30)  # isthmus run stops its children first

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.procs[name].stop()
        self.procs.clear()
        self.gateways.clear()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log})\n{tail(p.log, 40)}" for p in self.procs.values())


def create_stack(root: Path, example: Example = SHOP) -> Stack:
    logdir = root / "logs"
    logdir.mkdir(parents=True)
    isthmus = build(logdir)
    app = copy_example(root / example.name, example)
    plugins_dir = app / "plugins"
    plugins_dir.mkdir()
    for plugin in PLUGINS:
        src = REPO / "target" / "plugins" / plugin
        if not src.is_file():
            raise RuntimeError(f"{src} is missing: run bash guest-plugins/build.sh")
        shutil.copy2(src, plugins_dir / plugin)
    for plugin in example.plugins:
        src = example.path / "plugins" / plugin
        if not src.is_file():
            raise RuntimeError(f"{src} is missing: run bash {example.path.relative_to(REPO)}/policies.sh")
        shutil.copy2(src, plugins_dir / plugin)
    # The tests speak Socket.IO themselves and need no SPA. When the example's SPA was
    # exported (examples/shop/prepare.sh), it is served as it is; otherwise a stand-in
    # index.html keeps the `frontend` mount valid.
    exported = example.path / example.spa_dir
    if (exported / "index.html").is_file() and os.environ.get("ISTHMUS_E2E_SPA", "1") == "1":
        spa_root = exported
    else:
        spa_root = root / "spa"
        spa_root.mkdir()
        stand_in = f"<!doctype html><title>{example.name}</title><div id=root>{example.name} SPA stand-in</div>\n"
        (spa_root / "index.html").write_text(stand_in)
    return Stack(
        root=root,
        app=app,
        isthmus=isthmus,
        identity_secret=secrets.token_hex(32),
        bridge_secret=secrets.token_hex(32),
        django_port=free_port(),
        reflex_port=free_port(),
        gateway_port=free_port(),
        db_path=root / f"{example.name}.sqlite3",
        static_root=root / "staticfiles",
        spa_root=spa_root,
        plugins_dir=plugins_dir,
        logdir=logdir,
        example=example,
    )


@contextlib.contextmanager
def running_stack(example: Example, prepare: Callable[[Stack], None]) -> Iterator[Stack]:
    """The example in a temporary folder of its own: copied, `prepare`d (migrations, users…),
    then served by `isthmus run` (Django, Reflex and the gateway) until the block ends, when
    every process is stopped and the folder removed (kept, and its path printed, with
    ISTHMUS_E2E_KEEP=1)."""
    root = Path(tempfile.mkdtemp(prefix=f"isthmus-e2e-{example.name}-"))
    s: Stack | None = None
    try:
        t = time.monotonic()
        s = create_stack(root, example)
        TIMINGS[f"{example.name}: build+copy"] = time.monotonic() - t
        t = time.monotonic()
        prepare(s)
        TIMINGS[f"{example.name}: prepare (migrate, collectstatic, users)"] = time.monotonic() - t
        t = time.monotonic()
        s.start_gateway("main", run=True)
        TIMINGS[f"{example.name}: isthmus run: django+reflex+gateway ready"] = time.monotonic() - t
        yield s
    finally:
        if s is not None:
            s.stop_all()
        if os.environ.get("ISTHMUS_E2E_KEEP") == "1":
            print(f"\ntests/e2e: kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
