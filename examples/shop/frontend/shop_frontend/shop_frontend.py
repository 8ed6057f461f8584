"""The shop page: products from the Django ORM, the Django user's name, a staff action;
a Reflex login page, a password change page and an upload, all with Django's auth."""

import os

import reflex as rx
from isthmus_reflex import UserState, auth, fetch_messages, guard_pages, install_locale, install_upload_identity

from .state import AccountState, LoginState, ProductAdminState, ShopState, UploadState, WhoamiState


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
            # isthmus_reflex.UserState: the verified identity as vars, refreshed by every
            # event (on_identity_change included), no handler of the page's own.
            rx.text(
                rx.cond(
                    UserState.is_authenticated,
                    rx.fragment("Signed in as ", UserState.full_name, rx.cond(UserState.is_staff, " (staff)", "")),
                    "Not signed in",
                ),
                id="signed-in",
            ),
            # Django's messages (fetched from /_isthmus/messages by the browser once the
            # list is on the page) and the handlers'.
            rx.vstack(
                rx.foreach(UserState.messages, lambda m: rx.text(m["text"], class_name=m["tag"])),
                id="messages",
                on_mount=fetch_messages(),
            ),
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
                rx.cond(
                    ShopState.logged_in,
                    rx.hstack(
                        # Posts to Django's logout from the browser (isthmus_reflex.auth).
                        auth.logout_button(on_done=ShopState.on_logged_out, id="logout", variant="soft"),
                        rx.link("Change password", href="/account", id="account"),
                        align="center",
                    ),
                    rx.hstack(
                        # "/login/", not "/login": the gateway's static mount redirects a
                        # directory without its slash and the query (?next=) is lost.
                        rx.link("Log in", href="/login/?next=/", id="login"),
                        rx.link("Staff: the admin's login", href="/admin/login/?next=/", id="admin-login"),
                        align="center",
                    ),
                ),
                align="center",
            ),
            rx.text(ShopState.message, id="message"),
            spacing="4",
        ),
        padding_top="2em",
    )


def admin_row(product: rx.Var[dict]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(product["name"]),
        rx.table.cell(product["sku"]),
        rx.table.cell(product["price"]),
        rx.table.cell(
            rx.hstack(
                rx.cond(
                    ProductAdminState.can_change,
                    rx.button("Edit", size="1", on_click=ProductAdminState.edit_row(product["id"])),
                ),
                rx.cond(
                    ProductAdminState.can_delete,
                    rx.button(
                        "Delete", size="1", color_scheme="red", on_click=ProductAdminState.delete_row(product["id"])
                    ),
                ),
            )
        ),
    )


def admin_field(name: str, label: str) -> rx.Component:
    """One input of the edit form, bound to ProductAdminState.form, with its error."""
    return rx.vstack(
        rx.text(label, size="2"),
        rx.input(
            value=ProductAdminState.form[name].to(str),
            on_change=lambda value: ProductAdminState.set_field(name, value),
            id=f"product-{name}",
        ),
        rx.text(ProductAdminState.field_errors[name].to(str), color_scheme="red", size="1"),
        spacing="1",
    )


def products() -> rx.Component:
    """Product management with isthmus_reflex.ModelState: what each user may do follows
    their Django model permissions (shop.view_product, add_, change_, delete_)."""
    return rx.container(
        rx.vstack(
            rx.heading("Products", size="7"),
            rx.input(
                placeholder="Search name or SKU",
                value=ProductAdminState.search_text,
                on_change=ProductAdminState.search,
                id="product-search",
            ),
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell("Product"),
                        rx.table.column_header_cell("SKU"),
                        rx.table.column_header_cell("Price"),
                        rx.table.column_header_cell(""),
                    )
                ),
                rx.table.body(rx.foreach(ProductAdminState.rows, admin_row)),
                id="product-rows",
            ),
            rx.hstack(
                rx.button("Previous", on_click=ProductAdminState.prev_page, size="1"),
                rx.text(
                    "Page ",
                    ProductAdminState.page.to(str),
                    " of ",
                    ProductAdminState.page_count.to(str),
                    " (",
                    ProductAdminState.total.to(str),
                    " products)",
                ),
                rx.button("Next", on_click=ProductAdminState.next_page, size="1"),
                align="center",
            ),
            rx.cond(
                ProductAdminState.can_add | ProductAdminState.can_change,
                rx.vstack(
                    rx.heading(rx.cond(ProductAdminState.editing_id == "", "New product", "Edit product"), size="4"),
                    admin_field("name", "Name"),
                    admin_field("sku", "SKU"),
                    admin_field("price", "Price"),
                    rx.hstack(
                        rx.button("Save", on_click=ProductAdminState.save(None), id="product-save"),
                        rx.button("Cancel", on_click=ProductAdminState.cancel_edit, variant="soft"),
                    ),
                    spacing="2",
                ),
            ),
            rx.text(ProductAdminState.error, id="product-error", color_scheme="red"),
            rx.text(ProductAdminState.message, id="product-message"),
            rx.link("Back to the shop", href="/"),
            spacing="4",
        ),
        padding_top="2em",
    )


def login() -> rx.Component:
    """A login page written in Reflex; the password goes from the browser to Django only."""
    return rx.container(
        rx.vstack(
            rx.heading("Log in", size="7"),
            auth.login_form(on_done=LoginState.on_login, width="100%", max_width="24em"),
            rx.text(LoginState.error, id="login-error", color_scheme="red"),
            rx.text(
                "Staff can also use ",
                rx.link("the admin's login page", href="/admin/login/?next=/", id="admin-login"),
                ".",
            ),
            rx.link("Back to the shop", href="/"),
            spacing="4",
        ),
        padding_top="2em",
    )


def account() -> rx.Component:
    """Django's PasswordChangeForm (and AUTH_PASSWORD_VALIDATORS), from a Reflex page."""
    return rx.container(
        rx.vstack(
            rx.heading("Change your password", size="7"),
            rx.text(ShopState.greeting),
            auth.change_password_form(on_done=AccountState.on_changed, width="100%", max_width="24em"),
            rx.text(AccountState.message, id="account-message", color_scheme=rx.cond(AccountState.ok, "green", "red")),
            rx.link("Back to the shop", href="/"),
            spacing="4",
        ),
        padding_top="2em",
    )


def upload() -> rx.Component:
    """An upload whose handler knows the Django user (login_required)."""
    return rx.container(
        rx.vstack(
            rx.heading("Upload", size="7"),
            rx.upload(rx.text("Drop files here, or click to choose"), id="files", border="1px dashed", padding="2em"),
            rx.button(
                "Upload",
                on_click=UploadState.receive(rx.upload_files(upload_id="files")),
                id="upload",
            ),
            rx.text(UploadState.last_upload, id="last-upload"),
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


# OpenTelemetry, when the environment asks for it (OTEL_TRACES_EXPORTER=otlp and the
# OTEL_EXPORTER_OTLP_* settings; `pip install reflex-otel opentelemetry-sdk
# opentelemetry-exporter-otlp-proto-http`): each event handler's span is then a child of
# the gateway's span of that event.
if os.environ.get("OTEL_TRACES_EXPORTER"):
    from reflex_otel import ReflexInstrumentor

    ReflexInstrumentor().instrument()

app = rx.App()
# Upload handlers get the Django user from the gateway's X-Isthmus-Identity header.
install_upload_identity(app)
# Each event's language (LocaleMiddleware's choice) and time zone, activated before its handler.
install_locale(app)
# The page guards of isthmus.toml (`isthmus run` names it in ISTHMUS_CONFIG), on every
# event of a guarded page: installed last, so that they run first.
guard_pages(app)
app.add_page(index, route="/", title="Shop", on_load=ShopState.load)
app.add_page(login, route="/login", title="Log in")
app.add_page(account, route="/account", title="Your account", on_load=ShopState.load)
app.add_page(upload, route="/upload", title="Upload")
app.add_page(products, route="/products", title="Products", on_load=ProductAdminState.load_rows)
app.add_page(whoami, route="/whoami", title="Who am I", on_load=WhoamiState.whoami)
