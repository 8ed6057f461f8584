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
    group_required,
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
    message: str = ""

    @rx.event
    async def load(self):
        """Page load: who is here, and the active products (Django ORM, async)."""
        user = self.django_user
        self.greeting = f"Hello, {user.username}" if user.is_authenticated else "Hello, anonymous"
        self.is_staff = user.is_staff
        qs = Product.objects.filter(is_active=True).order_by("name")
        self.products = await ProductSerializer(qs, many=True).adata()

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
    # Spoofing headers the client sent with its WebSocket handshake that reached Reflex.
    spoof_headers: list[str] = []
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
        raw = self.router.headers.raw_headers
        self.spoof_headers = sorted(k for k in raw if k.lower() in ("x-django-user", "x-isthmus-secret", "x-isthmus-identity"))

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
