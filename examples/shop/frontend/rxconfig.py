"""Reflex config of the shop example's frontend.

The Reflex backend runs as its own process behind the isthmus gateway; it uses Django's
ORM in its event handlers, so Django is set up here, before the app module imports any
model. The Django project lives in ../backend.
"""

import os
import sys
from pathlib import Path

import reflex as rx
from reflex.plugins.sitemap import SitemapPlugin

BACKEND_DIR = Path(__file__).resolve().parent.parent / "backend"
if str(BACKEND_DIR) not in sys.path:
    sys.path.insert(0, str(BACKEND_DIR))

from isthmus_reflex import configure_django  # noqa: E402

configure_django("shopsite.settings")

# The browser talks to the gateway, never to the Reflex backend directly: the exported
# SPA's WebSocket and upload URLs point at the gateway's public origin.
PUBLIC_ORIGIN = os.environ.get("ISTHMUS_PUBLIC_ORIGIN", "http://127.0.0.1:3000").rstrip("/")

config = rx.Config(
    app_name="shop_frontend",
    api_url=PUBLIC_ORIGIN,
    deploy_url=PUBLIC_ORIGIN,
    backend_host="127.0.0.1",
    telemetry_enabled=False,
    # One backend worker keeps the states in memory; no Redis, no state files.
    state_manager_mode="memory",
    plugins=[rx.plugins.RadixThemesPlugin()],
    disable_plugins=[SitemapPlugin],
)
