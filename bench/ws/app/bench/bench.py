"""One page and one trivial event handler: `tick` counts and names the user it ran for.

`who` changes on every event (`<username>#<n>`), so each update carries it and the load
generator can check, reply by reply, that the user really reached the handler.
"""

import os

import reflex as rx

MODE = os.environ.get("BENCH_BRIDGE", "none")

if MODE == "isthmus":
    from isthmus_reflex import identity_of

    def username(state) -> str:
        # Verifies the gateway's HMAC over the injected payload, parses it (per event).
        return identity_of(state).username or "anonymous"

elif MODE == "reflex_django":
    from reflex_django.bridge.context import current_user

    def username(state) -> str:
        # The user reflex-django's event bridge resolved for this event.
        user = current_user()
        return (user.get_username() if user is not None and user.is_authenticated else "") or "anonymous"

else:

    def username(state) -> str:
        return "nobody"


class BenchState(rx.State):
    n: int = 0
    who: str = ""

    @rx.event
    def tick(self, k: int = 0):
        self.n += 1
        self.who = f"{username(self)}#{self.n}"


def index() -> rx.Component:
    return rx.text(BenchState.who)


app = rx.App()
app.add_page(index, route="/")
