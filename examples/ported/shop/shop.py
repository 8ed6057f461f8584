"""The app entry, as in the tutorial (standard Reflex)."""
import reflex as rx
from isthmus_reflex import guard_pages

from shop.views import TodoState, account, index

app = rx.App()
# The page guards of isthmus.toml (`isthmus run` names it in ISTHMUS_CONFIG) on every
# event of a guarded page, for client-side navigation.
guard_pages(app)
app.add_page(
    index,
    route="/",
    title="My Todos",
    on_load=TodoState.on_load,
)
# The cookbook's `@page(route="/account", title="Account", login_required=True)`: the
# page guard in isthmus.toml, and @login_required on the page function (views.py).
app.add_page(account, route="/account", title="Account")
