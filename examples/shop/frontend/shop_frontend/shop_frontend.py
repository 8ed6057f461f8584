"""The shop page: products from the Django ORM, the Django user's name, a staff action."""

import reflex as rx

from .state import ShopState, WhoamiState


def product_row(product: rx.Var[dict]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(product["name"]),
        rx.table.cell(product["sku"]),
        rx.table.cell(product["price"]),
    )


def index() -> rx.Component:
    return rx.container(
        rx.vstack(
            rx.heading("Shop", size="7"),
            rx.text(ShopState.greeting, id="greeting"),
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell("Product"),
                        rx.table.column_header_cell("SKU"),
                        rx.table.column_header_cell("Price"),
                    )
                ),
                rx.table.body(rx.foreach(ShopState.products, product_row)),
                id="products",
            ),
            rx.hstack(
                rx.button("Deactivate all", on_click=ShopState.deactivate_all, id="deactivate-all", color_scheme="red"),
                rx.button("Restock", on_click=ShopState.restock, id="restock"),
                rx.link("Log in", href="/admin/login/?next=/", id="login"),
            ),
            rx.text(ShopState.message, id="message"),
            spacing="4",
        ),
        padding_top="2em",
    )


def whoami() -> rx.Component:
    """A debugging page: what the event bridge told the last handler."""
    return rx.container(
        rx.vstack(
            rx.heading("Who am I?"),
            rx.button("Ask", on_click=WhoamiState.whoami, id="ask"),
            rx.text("username: ", WhoamiState.username, id="who-username"),
            rx.text("staff: ", rx.cond(WhoamiState.is_staff, "yes", "no")),
            rx.text("verified: ", rx.cond(WhoamiState.verified, "yes", "no")),
        )
    )


app = rx.App()
app.add_page(index, route="/", title="Shop", on_load=ShopState.load)
app.add_page(whoami, route="/whoami", title="Who am I", on_load=WhoamiState.whoami)
