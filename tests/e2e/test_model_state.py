"""isthmus_reflex.ModelState behind the gateway: the shop's ProductAdminState
(examples/shop/frontend/shop_frontend/state.py) on the real Reflex 0.10.1 backend and the
example's SQLite database, each event carrying the identity the gateway signed. Its
permissions are Django's model permissions of that identity: the demo `admin` is a
superuser (all of them), `buyer` holds only `shop.change_product` (which also allows
viewing), `staffer` is staff without permissions."""

from __future__ import annotations

import httpx

from bridge_client import ROOT

ADMIN_STATE = f"{ROOT}.shop_frontend___state____product_admin_state"


async def socket_for(sockets, browser, username: str | None):
    b = browser()
    if username in ("admin", "staffer"):
        b.admin_login(username)
    elif username:
        b.login(username)
    return await sockets(b if username else None, route="/")


def skus(stack) -> set[str]:
    """Every product's SKU, as Django's own view sees them (the DRF list, active ones) and
    through the ORM-backed admin state being tested would: read from the JSON API."""
    r = httpx.get(f"{stack.gateways['main'].url}/api/shop/active/", timeout=10)
    r.raise_for_status()
    return {p["sku"] for p in r.json()["results"]}


def names(sock) -> list[str]:
    return [row["name"] for row in sock.get(ADMIN_STATE, "rows", [])]


async def test_staff_superuser_lists_searches_and_pages(stack, browser, sockets):
    sock = await socket_for(sockets, browser, "admin")
    await sock.call(f"{ADMIN_STATE}.load_rows")
    assert sock.get(ADMIN_STATE, "error") in ("", None)
    total = sock.get(ADMIN_STATE, "total")
    assert total >= 3
    assert sock.get(ADMIN_STATE, "page_count") == (total + 1) // 2
    first = names(sock)
    assert len(first) == 2
    assert first == sorted(first)
    assert sock.get(ADMIN_STATE, "can_add") is True
    await sock.call(f"{ADMIN_STATE}.next_page")
    assert sock.get(ADMIN_STATE, "page") == 2
    second = names(sock)
    assert second and not set(second) & set(first)
    await sock.call(f"{ADMIN_STATE}.search", {"text": "MUG-cer"})  # the SKU, any case
    assert names(sock) == ["Ceramic mug"]
    assert (sock.get(ADMIN_STATE, "page"), sock.get(ADMIN_STATE, "total")) == (1, 1)
    row = sock.get(ADMIN_STATE, "rows")[0]
    assert row["sku"] == "MUG-CER-350"
    assert row["price"] == "12.50"


async def test_without_permission_listing_is_refused(stack, browser, sockets):
    for who in ("staffer", "plain", None):
        sock = await socket_for(sockets, browser, who)
        await sock.call(f"{ADMIN_STATE}.load_rows")
        assert sock.get(ADMIN_STATE, "error") == "Permission denied.", who
        assert names(sock) == [], who


async def test_create_and_delete_refused_without_permission_allowed_with_it(stack, browser, sockets):
    new = {"name": "Milk frother", "sku": "FRO-MILK-01", "price": "19.90", "is_active": True}
    buyer = await socket_for(sockets, browser, "buyer")  # change_product only
    await buyer.call(f"{ADMIN_STATE}.load_rows")
    assert buyer.get(ADMIN_STATE, "error") in ("", None)  # change implies view
    assert buyer.get(ADMIN_STATE, "can_add") is False
    await buyer.call(f"{ADMIN_STATE}.create", {"form_data": new})
    assert buyer.get(ADMIN_STATE, "error") == "Permission denied."
    assert "FRO-MILK-01" not in skus(stack)

    admin = await socket_for(sockets, browser, "admin")
    await admin.call(f"{ADMIN_STATE}.create", {"form_data": {**new, "price": "cheap"}})
    assert "price" in admin.get(ADMIN_STATE, "field_errors"), admin.state
    await admin.call(f"{ADMIN_STATE}.create", {"form_data": {**new, "sku": "MUG-CER-350"}})
    assert "sku" in admin.get(ADMIN_STATE, "field_errors")  # unique, from the model's validation
    await admin.call(f"{ADMIN_STATE}.create", {"form_data": new})
    assert admin.get(ADMIN_STATE, "error") == "", admin.state
    assert admin.get(ADMIN_STATE, "field_errors") == {}
    assert "FRO-MILK-01" in skus(stack)  # Django sees it
    try:
        await buyer.call(f"{ADMIN_STATE}.search", {"text": "frother"})
        (row,) = buyer.get(ADMIN_STATE, "rows")
        pk = row["id"]
        # buyer may change it, not delete it
        await buyer.call(f"{ADMIN_STATE}.update", {"pk": pk, "form_data": {"price": "18.00"}})
        assert buyer.get(ADMIN_STATE, "error") == ""
        assert buyer.get(ADMIN_STATE, "rows")[0]["price"] == "18.00"
        await buyer.call(f"{ADMIN_STATE}.delete_row", {"pk": pk})
        assert buyer.get(ADMIN_STATE, "error") == "Permission denied."
        assert "FRO-MILK-01" in skus(stack)
    finally:
        await admin.call(f"{ADMIN_STATE}.search", {"text": "FRO-MILK"})
        for row in admin.get(ADMIN_STATE, "rows"):
            await admin.call(f"{ADMIN_STATE}.delete_row", {"pk": row["id"]})
    assert admin.get(ADMIN_STATE, "error") == ""
    assert admin.get(ADMIN_STATE, "rows") == []
    assert "FRO-MILK-01" not in skus(stack)
