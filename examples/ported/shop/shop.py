"""The app entry, as in the tutorial (standard Reflex)."""
import reflex as rx

from shop.views import AccountState, TodoState, account, index

app = rx.App()
app.add_page(
    index,
    route="/",
    title="My Todos",
    on_load=TodoState.on_load,
)
# The cookbook's `@page(route="/account", title="Account", login_required=True)`.
app.add_page(account, route="/account", title="Account", on_load=AccountState.on_load)
