"""Django alone, served by uvicorn behind the gateway (the tutorial imported
reflex_django.asgi.entry, one ASGI app for Django and Reflex together)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()
