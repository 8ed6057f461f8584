"""Reflex config of the ported tutorial.

reflex-django's plugin (``ReflexDjangoPlugin(config={"settings_module": "config.settings",
"profile": "integrated"})``) set Django up and mounted it in the Reflex process. Here the
Reflex backend is a process of its own behind the isthmus gateway; it only needs Django
set up for the ORM in its handlers, before the app module imports a model.
"""

import os

import reflex as rx
from isthmus_reflex import configure_django
from reflex.plugins.sitemap import SitemapPlugin

configure_django("config.settings")

# The browser talks to the gateway only: the exported SPA's WebSocket URL is its origin.
PUBLIC_ORIGIN = os.environ.get("ISTHMUS_PUBLIC_ORIGIN", "http://127.0.0.1:3000").rstrip("/")

config = rx.Config(
    app_name="shop",
    api_url=PUBLIC_ORIGIN,
    deploy_url=PUBLIC_ORIGIN,
    backend_host="127.0.0.1",
    telemetry_enabled=False,
    state_manager_mode="memory",
    plugins=[rx.plugins.RadixThemesPlugin()],
    disable_plugins=[SitemapPlugin],
)
