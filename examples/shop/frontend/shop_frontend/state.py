"""States of the shop example. Every handler runs in the Reflex process with the Django
identity the gateway verified and signed into the event (``DjangoUserMixin``).

Reflex 0.10.1 runs handlers on its event loop, so the ORM is used through its async API.
"""

from __future__ import annotations

import json

import reflex as rx
from isthmus_reflex import (
    DjangoUserMixin,
    ModelSerializer,
    ModelState,
    SessionKeyRefused,
    SessionWriteError,
    auth,
    group_required,
    login_required,
    permission_required,
    staff_required,
)
from shop.models import Product


class ProductSerializer(ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "is_active"]


class ShopState(DjangoUserMixin, rx.State):
    """The product page: the list, the greeting and the staff-only actions."""

    products: list[dict] = []
    greeting: str = "Hello, anonymous"
    is_staff: bool = False
    logged_in: bool = False
    message: str = ""
    # How many times the gateway told this state that the browser's session changed.
    identity_changes: int = 0

    def _greet(self):
        """The greeting and flags from the identity of the current event."""
        user = self.django_user
        self.greeting = f"Hello, {user.username}" if user.is_authenticated else "Hello, anonymous"
        self.is_staff = user.is_staff
        self.logged_in = user.is_authenticated

    @rx.event
    async def load(self):
        """Page load: who is here, and the active products (Django ORM, async)."""
        self._greet()
        qs = Product.objects.filter(is_active=True).order_by("name")
        self.products = await ProductSerializer(qs, many=True).adata()

    @rx.event
    def on_identity_change(self):
        """Called by the gateway (full name
        ``reflex___state____state.shop_frontend___state____shop_state.on_identity_change``)
        when the browser's Django session changed: a login or logout in this tab or in
        another one. The event carries the new identity, like any other."""
        self.identity_changes += 1
        self._greet()

    @rx.event
    def on_logged_out(self, answer: dict):
        """Callback of the logout button: Django's answer, relayed by the browser.

        The answer is no proof of anything, but lowering what the page shows is safe; the
        gateway follows with on_identity_change, which reads the real identity.
        """
        if answer.get("ok"):
            self.greeting = "Hello, anonymous"
            self.is_staff = False
            self.logged_in = False
            self.message = "Logged out."
        else:
            self.message = auth.error_text(answer)

    # Staff-only: guarded twice, by the gateway's bridge rule (`*.deactivate_all` →
    # staff in isthmus.toml) and here, in case an event reaches the backend another way.
    @rx.event
    @staff_required
    async def deactivate_all(self):
        count = await Product.objects.filter(is_active=True).aupdate(is_active=False)
        self.message = f"{count} product(s) deactivated by {self.django_user.username}"
        await self.load()

    @rx.event
    @staff_required
    async def restock(self):
        count = await Product.objects.filter(is_active=False).aupdate(is_active=True)
        self.message = f"{count} product(s) restocked by {self.django_user.username}"
        await self.load()


class ProductAdminState(ModelState, rx.State):
    """Products managed from Reflex: list, search and pages for users with
    ``shop.view_product`` (or ``change_product``), create / edit / delete for those with
    ``shop.add_product`` / ``change_product`` / ``delete_product`` (a superuser has all),
    checked against the identity the gateway signed into the event."""

    class Meta:
        serializer = ProductSerializer
        search_fields = ["name", "sku"]
        ordering = ["name"]
        page_size = 2


class WhoamiState(DjangoUserMixin, rx.State):
    """What a handler saw, for the end-to-end tests (and for debugging a deployment)."""

    authenticated: bool = False
    username: str = ""
    user_id: str = ""
    is_staff: bool = False
    is_superuser: bool = False
    groups: list[str] = []
    cart_id: str = ""
    query: str = "{}"
    rule: str = ""
    verified: bool = False
    reason: str = ""
    calls: int = 0
    # The names of the WebSocket handshake's headers that reached Reflex, as a handler
    # sees them (the spoofing tests check what the gateway removed).
    header_names: list[str] = []
    last_action: str = ""

    @rx.event
    async def whoami(self):
        ctx = self.isthmus
        who = ctx.identity
        self.calls += 1
        self.authenticated = who.is_authenticated
        self.username = who.username
        self.user_id = who.user_id or ""
        self.is_staff = who.is_staff
        self.is_superuser = who.is_superuser
        self.groups = list(who.groups)
        cart = self.django_session.get("cart_id")
        self.cart_id = "" if cart is None else str(cart)
        self.query = json.dumps(self.django_query, sort_keys=True)
        self.rule = ctx.context.get("rule", "")
        self.verified = ctx.verified
        self.reason = ctx.reason or ""
        self.header_names = sorted(k.lower() for k in self.router.headers.raw_headers)

    # One handler per remaining rule kind of the default policy; each is guarded by the
    # gateway rule in isthmus.toml and by the matching decorator.
    @rx.event
    @group_required("clerks")
    async def clerk_action(self):
        self.last_action = f"clerk_action by {self.django_user.username}"

    @rx.event
    @permission_required("shop.change_product")
    async def perm_action(self):
        self.last_action = f"perm_action by {self.django_user.username}"

    @rx.event
    async def members_action(self):
        self.last_action = f"members_action by {self.django_user.username}"

    session_error: str = ""

    @rx.event
    async def set_cart(self, cart_id: int):
        """Write the whitelisted ``cart_id`` into this browser's Django session."""
        try:
            after = await self.update_session(cart_id=cart_id)
        except SessionWriteError as e:
            self.session_error = f"{type(e).__name__}: {e}"
            return
        self.session_error = ""
        self.cart_id = str(after.get("cart_id", ""))

    @rx.event
    async def set_unlisted(self):
        """Try to write a key outside ISTHMUS_SESSION_KEYS: Django refuses it."""
        try:
            await self.update_session(cart_id=1, is_admin=True)
        except SessionKeyRefused as e:
            self.session_error = f"SessionKeyRefused: {','.join(e.keys)}"


class LoginState(rx.State):
    """The Reflex login page: the form posts to Django (isthmus_reflex.auth), this state
    only sees Django's answer, never the password."""

    error: str = ""

    @rx.event
    def on_login(self, answer: dict):
        if answer.get("ok"):
            self.error = ""
            # A navigation inside the app: the socket stays open and the gateway
            # re-identifies it from the new session cookie (then calls on_identity_change).
            return rx.redirect(auth.next_path(answer))
        self.error = auth.error_text(answer)


class AccountState(rx.State):
    """The password change page (Django's PasswordChangeForm and validators)."""

    message: str = ""
    ok: bool = False

    @rx.event
    def on_changed(self, answer: dict):
        self.ok = bool(answer.get("ok"))
        self.message = "Password changed." if self.ok else auth.error_text(answer)


class UploadState(DjangoUserMixin, rx.State):
    """An upload handler with the Django user: the gateway sends the identity in the
    X-Isthmus-Identity header of /_upload, install_upload_identity (shop_frontend.py)
    hands it to the handler's router_data."""

    last_upload: str = ""

    @rx.event
    @login_required
    async def receive(self, files: list[rx.UploadFile]):
        sizes = [len(await f.read()) for f in files]
        self.last_upload = f"{len(files)} file(s), {sum(sizes)} bytes, from {self.django_user.username}"
