"""The shop's /products page (isthmus_reflex.ModelState, `ProductAdminState`) in headless
Chromium, on a gateway serving the exported SPA: what each person sees and may do follows
their Django model permissions, delivered with the identity the gateway signs into each
event. `admin` (superuser) pages and searches and has Edit / Delete buttons; `buyer`
(`shop.change_product` only) sees the rows and Edit, no Delete; `staffer` (staff, no
permission) is told "Permission denied." and sees no row."""

from __future__ import annotations

import json

import pytest

from spa import reflex_login, start_spa_gateway
from stack import Gateway

pytestmark = pytest.mark.timeout(240)

NAME = "modelstate"
ROWS = "#product-rows tbody tr"


@pytest.fixture(scope="module")
def products_site(stack, spa_export):
    start_spa_gateway(stack, NAME, spa_export)
    yield spa_export
    if NAME in stack.gateways:
        stack.stop_gateway(NAME)


@pytest.fixture
def gw(stack, products_site) -> Gateway:
    return stack.gateways[NAME]


def rows_are(tab, count: int, timeout: float = 15) -> None:
    tab.wait_for(f"document.querySelectorAll({json.dumps(ROWS)}).length === {count}", timeout)


def buttons(tab, label: str) -> int:
    return tab.evaluate(
        f"[...document.querySelectorAll('{ROWS} button')].filter(b => b.textContent === {json.dumps(label)}).length"
    )


def open_products_as(chromium, gw, user: str):
    tab = chromium.context().page()
    answer = reflex_login(tab, gw, user, next_="/products/")
    assert answer["status"] == 200 and json.loads(answer["body"])["ok"] is True, answer
    tab.wait_for_path("/products/")
    return tab


def test_admin_pages_and_searches(gw, chromium):
    tab = open_products_as(chromium, gw, "admin")
    rows_are(tab, 2)  # two a page
    assert buttons(tab, "Delete") == 2
    assert buttons(tab, "Edit") == 2
    tab.click("text=Next")
    tab.wait_for("document.body.textContent.includes('Page 2 of')")
    tab.wait_for_text(ROWS, "t.includes('Pour-over kettle')")  # page 2: the third product alone
    rows_are(tab, 1)
    tab.fill("#product-search", "mug")
    tab.wait_for("document.body.textContent.includes('Page 1 of 1 (1 products)')")
    rows_are(tab, 1)
    assert "Ceramic mug" in tab.text(ROWS)
    assert "MUG-CER-350" in tab.text(ROWS)


def test_buyer_edits_but_cannot_delete(gw, chromium):
    tab = open_products_as(chromium, gw, "buyer")
    rows_are(tab, 2)
    assert buttons(tab, "Edit") == 2
    assert buttons(tab, "Delete") == 0


def test_staff_without_permission_sees_nothing(gw, chromium):
    tab = open_products_as(chromium, gw, "staffer")
    tab.wait_for_text("#product-error", "t === 'Permission denied.'")
    rows_are(tab, 0)
