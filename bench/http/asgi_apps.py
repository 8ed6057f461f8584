"""Trivial ASGI upstreams for the HTTP benchmark, served by uvicorn.

- `asgi_apps:django_app` / `asgi_apps:reflex_app`: answer every HTTP request `200 ok`
  (two separate apps standing for Django and the Reflex backend).
- `asgi_apps:dispatch`: reflex-django 4.0.3's own dispatcher, built exactly as
  `reflex_django.bootstrap.app_setup._ensure_django_api_transformer` builds it
  (`make_dispatcher(django_asgi, backend_prefixes=...)` applied to the Reflex ASGI app),
  with the two trivial apps in place of Django's and Reflex's. Lifespan goes to the
  Reflex side, as in reflex-django.
"""

from __future__ import annotations

import os

BODY = b"ok"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]
# Which app answered (both names have the same length, so every response is as long).


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _trivial(name: str):
    headers = [*HEADERS, (b"x-upstream", name.removesuffix("_app").encode())]

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"{name}: unexpected scope {scope['type']}")
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    app.__name__ = name
    return app


django_app = _trivial("django_app")
reflex_app = _trivial("reflex_app")


def _build_dispatch():
    from reflex_django.asgi.app import make_dispatcher

    prefixes = tuple(os.environ.get("BENCH_DJANGO_PREFIXES", "/admin,/api").split(","))
    return make_dispatcher(django_app, backend_prefixes=prefixes)(reflex_app)


def __getattr__(name: str):
    # Built on first use, so that serving the plain apps never imports reflex_django.
    if name == "dispatch":
        global dispatch
        dispatch = _build_dispatch()
        return dispatch
    raise AttributeError(name)
