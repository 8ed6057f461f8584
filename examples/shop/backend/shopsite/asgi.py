"""ASGI entry point: ``uvicorn shopsite.asgi:application --host 127.0.0.1 --port 8001``."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")

application = get_asgi_application()
