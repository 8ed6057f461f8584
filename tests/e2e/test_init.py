"""`isthmus init` on a copy of the shop example, with the real Django project behind it:
the prefixes come from its ROOT_URLCONF through `manage.py isthmus_prefixes`, and the
file it writes passes `isthmus check` once the plugins and static files are in place.
Needs no running server (not the session's `stack`).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stack import PLUGINS, REPO, VENV_BIN, build, copy_example


@pytest.fixture(scope="module")
def isthmus(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("build-logs"))


@pytest.fixture
def shop(tmp_path) -> Path:
    """A copy of examples/shop without its own isthmus.toml."""
    app = copy_example(tmp_path / "shop")
    (app / "isthmus.toml").unlink()
    return app


def base_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus what would choose the Python or the settings for init."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "SHOP_STATIC_ROOT")}
    env.update(REFLEX_TELEMETRY_ENABLED="false", NO_COLOR="1", **extra)
    return env


def init(isthmus: Path, app: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(isthmus), "init", str(app), *args], env=env or base_env(), capture_output=True, text=True, timeout=120
    )


def env_file(app: Path) -> dict[str, str]:
    lines = (app / "isthmus.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def ready_to_check(app: Path, secrets: dict[str, str]) -> tuple[dict[str, str], str]:
    """What init's printed next steps leave for the user to do before `isthmus check`: the
    environment, collectstatic, an exported SPA (a placeholder); the config's path."""
    env = base_env(**secrets, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=app / "backend", env=env, check=True
    )
    spa = app / "frontend" / ".web" / "build" / "client"
    spa.mkdir(parents=True)
    (spa / "index.html").write_text("<!doctype html><title>Shop</title>\n")
    return env, str(app / "isthmus.toml")


def test_init_writes_the_shops_config_and_isthmus_check_accepts_it(isthmus, shop):
    out = init(isthmus, shop, "--python", sys.executable)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", "no warnings for the shop"
    assert "isthmus check --config isthmus.toml" in out.stdout

    config = tomllib.loads((shop / "isthmus.toml").read_text())
    with open(REPO / "examples" / "shop" / "isthmus.toml", "rb") as f:
        example = tomllib.load(f)
    router = config["routing"]["routers"][0]
    assert router["plugin"] == "prefix_router.wasm"
    # What shopsite/urls.py really gives, and what the hand-written example lists (its
    # prefix router comes second, after the shop's own staff_reports router).
    assert router["config"]["django_prefixes"] == ["/_isthmus", "/admin", "/api", "/reports", "/webhooks"]
    [example_router] = [r for r in example["routing"]["routers"] if r["plugin"] == "prefix_router.wasm"]
    assert sorted(example_router["config"]["django_prefixes"]) == router["config"]["django_prefixes"]
    assert router["config"]["static_mount"] == "django_static"
    assert config["static"]["django_static"] == {"root": "backend/staticfiles", "strip_prefix": "/static"}
    assert config["static"]["frontend"] == {"root": "frontend/.web/build/client", "fallback": "index.html"}
    django, reflex = config["upstreams"]["django"], config["upstreams"]["reflex"]
    assert django["run"] == "python -m uvicorn shopsite.asgi:application --host 127.0.0.1 --port {port}"
    assert (django["cwd"], reflex["cwd"]) == ("backend", "frontend")
    assert (django["health"], reflex["health"]) == ("/admin/login/", "/ping")
    assert reflex["run"] == example["upstreams"]["reflex"]["run"]
    assert config["bridge"]["identity_secret"] == "env:ISTHMUS_IDENTITY_SECRET"
    assert config["bridge"]["bridge_secret"] == "env:ISTHMUS_BRIDGE_SECRET"
    assert config["bridge"]["policy"]["config"]["login_url"] == "/admin/login/"

    # The secrets: a private file beside the config, never in it.
    assert stat.S_IMODE((shop / "isthmus.env").stat().st_mode) == 0o600
    secrets = env_file(shop)
    assert secrets["DJANGO_SETTINGS_MODULE"] == "shopsite.settings"
    for name in ("ISTHMUS_IDENTITY_SECRET", "ISTHMUS_BRIDGE_SECRET"):
        assert len(secrets[name]) >= 32
        assert secrets[name] not in (shop / "isthmus.toml").read_text()

    # It wrote the default policies, the very components the repository builds.
    for plugin in PLUGINS:
        assert (shop / "plugins" / plugin).read_bytes() == (REPO / "target" / "plugins" / plugin).read_bytes()

    # The next steps it printed: the environment, static files; then check.
    env, config_path = ready_to_check(shop, secrets)
    check = subprocess.run([str(isthmus), "check", "--config", config_path], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for path, where in [
        ("/admin/login/", "upstream `django`"),
        ("/api/shop/active/", "upstream `django`"),
        ("/static/admin/css/base.css", "static mount `django_static`"),
        ("/_event/", "upstream `reflex`"),
        ("/products", "static mount `frontend`"),
    ]:
        route = subprocess.run([str(isthmus), "route", "--config", config_path, "GET", path], env=env, capture_output=True, text=True)
        last = route.stdout.strip().splitlines()[-1]
        assert route.returncode == 0 and where in last, (path, route.stdout, route.stderr)


def test_init_uses_the_active_virtualenv(isthmus, shop):
    out = init(isthmus, shop, env=base_env(VIRTUAL_ENV=str(VENV_BIN.parent)))
    assert out.returncode == 0, out.stderr
    assert (shop / "isthmus.toml").is_file()


def test_init_refuses_an_existing_config(isthmus, tmp_path):
    app = copy_example(tmp_path / "shop")
    before = (app / "isthmus.toml").read_bytes()
    out = init(isthmus, app, "--python", sys.executable)
    assert out.returncode != 0
    assert "already exists" in out.stderr and "isthmus.toml" in out.stderr
    assert (app / "isthmus.toml").read_bytes() == before
    assert not (app / "isthmus.env").exists()


def test_init_says_what_to_add_without_the_companion_app(isthmus, shop):
    settings = shop / "backend" / "shopsite" / "settings.py"
    text = settings.read_text()
    assert '    "isthmus_django",\n' in text
    settings.write_text(text.replace('    "isthmus_django",\n', ""))
    out = init(isthmus, shop, "--python", sys.executable)
    assert out.returncode != 0
    assert 'add "isthmus_django" to INSTALLED_APPS in shopsite.settings' in out.stderr, out.stderr
    assert not (shop / "isthmus.toml").exists() and not (shop / "isthmus.env").exists()


def test_check_names_the_prefixes_urls_py_gained_and_lost_since_init(isthmus, shop):
    out = init(isthmus, shop, "--python", sys.executable)
    assert out.returncode == 0, out.stderr
    assert tomllib.loads((shop / "isthmus.toml").read_text())["django"] == {
        "manage": "backend/manage.py",
        "python": sys.executable,
    }
    secrets = env_file(shop)
    env, config_path = ready_to_check(shop, secrets)

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([str(isthmus), "check", "--config", config_path], env=env, capture_output=True, text=True)

    assert check().returncode == 0
    urls = shop / "backend" / "shopsite" / "urls.py"
    text = urls.read_text()
    webhooks = '    path("webhooks/stripe/", stripe_webhook_view, name="stripe-webhook"),\n'
    assert webhooks in text
    urls.write_text(text.replace(webhooks, '    path("news/", stock_report_view),\n'))
    drifted = check()
    assert drifted.returncode != 0
    assert "routing.routers[0].config.django_prefixes" in drifted.stderr, drifted.stderr
    assert "missing here (requests there go to the SPA, not Django): /news;" in drifted.stderr, drifted.stderr
    assert "gone from Django (sent to Django, which has no route): /webhooks;" in drifted.stderr, drifted.stderr


def test_init_mounts_media_root_at_media_url(isthmus, shop):
    settings = shop / "backend" / "shopsite" / "settings.py"
    settings.write_text(settings.read_text() + '\nMEDIA_URL = "/media/"\nMEDIA_ROOT = BASE_DIR / "media"\n')
    out = init(isthmus, shop, "--python", sys.executable)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    config = tomllib.loads((shop / "isthmus.toml").read_text())
    assert config["static"]["media"] == {"root": "backend/media", "strip_prefix": "/media"}
    router = config["routing"]["routers"][0]["config"]
    assert (router["media_prefix"], router["media_mount"]) == ("/media", "media")
