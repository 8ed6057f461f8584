"""Make Django usable inside the Reflex process (ORM in event handlers)."""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger("isthmus_reflex")

_lock = threading.Lock()


def configure_django(settings_module: str | None = None) -> str:
    """Set ``DJANGO_SETTINGS_MODULE`` (unless already set) and run ``django.setup()`` once.

    Call it at the top of ``rxconfig.py`` or of the app module, before importing models.
    Idempotent and thread-safe. Returns the settings module in use.

    Reflex runs every event handler, sync or async, on its asyncio event loop, so Django's
    synchronous ORM raises ``SynchronousOnlyOperation`` there: use the async ORM API
    (``await Model.objects.aget(...)``, ``acreate``, ``afilter`` via ``async for``,
    ``acount``, ``asave``...) in ``async def`` handlers, or wrap sync code in
    ``asgiref.sync.sync_to_async``.
    """
    import django
    from django.apps import apps
    from django.conf import settings

    with _lock:
        env = os.environ.get("DJANGO_SETTINGS_MODULE", "")
        if apps.ready:
            return env
        if settings.configured and not env:
            # settings.configure() was called by hand.
            django.setup()
            return ""
        if not env:
            if not settings_module:
                msg = "configure_django() needs a settings module, or DJANGO_SETTINGS_MODULE set"
                raise RuntimeError(msg)
            os.environ["DJANGO_SETTINGS_MODULE"] = env = settings_module
        elif settings_module and env != settings_module:
            logger.warning("isthmus: DJANGO_SETTINGS_MODULE is %r; configure_django(%r) keeps it", env, settings_module)
        django.setup()
        return env
