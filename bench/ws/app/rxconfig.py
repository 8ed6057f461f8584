"""Reflex config of the event-bridge benchmark app (bench/ws/README.md).

BENCH_BRIDGE selects how the Django user reaches the event handler:
- "none":          plain Reflex (the direct baseline); the handler reads no user.
- "isthmus":       behind the isthmus gateway; the handler verifies the signed identity
                   the gateway injected (isthmus_reflex.identity_of).
- "reflex_django": reflex-django 4.0.3's own bridge (ReflexDjangoPlugin, as its docs
                   configure it); the handler reads the user its bridge bound to the event.
"""

import os
import sys
from pathlib import Path

import reflex as rx
from reflex.plugins.sitemap import SitemapPlugin

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

MODE = os.environ.get("BENCH_BRIDGE", "none")
plugins = []
if MODE == "reflex_django":
    # As reflex-django 4.0.3's README configures it (its default bridge mode, "full",
    # runs settings.MIDDLEWARE on every event).
    from reflex_django.plugins import ReflexDjangoPlugin

    plugins.append(ReflexDjangoPlugin(config={"settings_module": "benchsite.settings", "profile": "integrated"}))
elif MODE not in ("none", "isthmus"):
    raise SystemExit(f"BENCH_BRIDGE={MODE!r}: expected none, isthmus or reflex_django")

config = rx.Config(
    app_name="bench",
    backend_host="127.0.0.1",
    telemetry_enabled=False,
    state_manager_mode="memory",
    plugins=plugins,
    disable_plugins=[SitemapPlugin],
)
