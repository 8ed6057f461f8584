"""HTTP through the gateway: Django's admin, JSON view, DRF, webhook, static files; Reflex's /ping."""

from __future__ import annotations

import json
import secrets

import httpx

from stack import PASSWORD


def test_example_config_passes_isthmus_check(stack):
    out = stack.check(stack.gateways["main"].config_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout


def test_ping_reaches_reflex(stack, browser):
    r = browser().http.get("/ping")
    assert r.status_code == 200
    assert r.text.strip('"') == "pong"
    assert r.headers.get("x-request-id")


def test_admin_login_page_and_its_static_files(stack, browser):
    b = browser()
    r = b.http.get("/admin/login/?next=/admin/")
    assert r.status_code == 200
    assert "csrfmiddlewaretoken" in r.text
    assert "csrftoken" in b.http.cookies
    # The admin's CSS comes from STATIC_ROOT through the gateway's static mount.
    css = b.http.get("/static/admin/css/base.css")
    assert css.status_code == 200, css.text[:200]
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers.get("etag")
    # The admin itself wants a login.
    r = b.http.get("/admin/")
    assert r.status_code == 302 and r.headers["location"].startswith("/admin/login/")


def test_admin_login_and_product_admin(stack, browser):
    b = browser()
    b.admin_login("admin")
    r = b.http.get("/admin/shop/product/")
    assert r.status_code == 200
    assert "COF-ESP-1000" in r.text


def test_active_products_json_view(stack, browser):
    r = browser().http.get("/api/shop/active/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    skus = {p["sku"] for p in body["results"]}
    assert {"COF-ESP-1000", "KIT-KETTLE-01", "MUG-CER-350"} <= skus
    assert all(isinstance(p["price"], float) for p in body["results"])


def test_drf_list_create_retrieve(stack, browser):
    anon = browser()
    r = anon.http.get("/api/shop/products/", headers={"Accept": "application/json"})
    assert r.status_code == 200
    before = len(r.json())
    assert before >= 3

    sku = "E2E-" + secrets.token_hex(3).upper()
    new = {"name": "Test grinder", "sku": sku, "price": "89.00", "is_active": True}
    # Anonymous: read-only.
    r = anon.http.post("/api/shop/products/", json=new)
    assert r.status_code == 403, r.text

    # A logged-in user without shop.add_product: refused by DjangoModelPermissions.
    plain = browser()
    plain.login("plain")
    r = plain.http.post("/api/shop/products/", json=new, headers={"X-CSRFToken": plain.http.cookies["csrftoken"]})
    assert r.status_code == 403, r.text

    # The superuser, with session auth: without the CSRF token DRF refuses…
    admin = browser()
    admin.admin_login("admin")
    r = admin.http.post("/api/shop/products/", json=new)
    assert r.status_code == 403 and "CSRF" in r.text, r.text
    # …with it, the product is created.
    r = admin.http.post(
        "/api/shop/products/",
        json=new,
        headers={"X-CSRFToken": admin.http.cookies["csrftoken"], "Referer": admin.base_url + "/api/shop/products/"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["sku"] == sku and created["price"] == "89.00"

    r = anon.http.get(f"/api/shop/products/{created['id']}/", headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.json()["name"] == "Test grinder"
    assert len(anon.http.get("/api/shop/products/", headers={"Accept": "application/json"}).json()) == before + 1

    # The DRF browsable API renders HTML through the gateway too.
    r = anon.http.get("/api/shop/products/", headers={"Accept": "text/html"})
    assert r.status_code == 200 and "Django REST framework" in r.text


def test_stripe_webhook_raw_body(stack, browser):
    http = browser().http
    body = json.dumps({"type": "checkout.session.completed", "data": {"object": {"id": "cs_test_1"}}}, separators=(",", ":")).encode()
    # No CSRF token, no cookie: the view is csrf_exempt and reads the raw body.
    r = http.post("/webhooks/stripe/", content=body, headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=x"})
    assert r.status_code == 200, r.text
    assert r.json() == {"received": len(body), "type": "dict", "event_type": "checkout.session.completed"}
    r = http.post("/webhooks/stripe/", content=b"[1, 2, 3]", headers={"Content-Type": "application/json"})
    assert r.json() == {"received": 9, "type": "list", "event_type": None}
    r = http.post("/webhooks/stripe/", content=b"not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["received"] == 8
    r = http.get("/webhooks/stripe/")
    assert r.status_code == 405


def test_identity_endpoint_is_not_usable_through_the_gateway(stack, browser):
    """The gateway strips X-Isthmus-Secret from clients: even the right secret gets 403."""
    b = browser()
    b.admin_login("staffer")
    r = b.http.get("/_isthmus/identity", headers={"X-Isthmus-Secret": stack.identity_secret})
    assert r.status_code == 403, r.text
    # Straight to Django (loopback only), with the secret: the identity.
    direct = httpx.get(
        f"http://127.0.0.1:{stack.django_port}/_isthmus/identity",
        headers={"X-Isthmus-Secret": stack.identity_secret, "Cookie": f"sessionid={b.session_id}"},
    )
    assert direct.status_code == 200
    assert direct.json()["username"] == "staffer"


def test_spa_fallback_and_unknown_paths(stack, browser):
    http = browser().http
    index = (stack.spa_root / "index.html").read_text()
    r = http.get("/some/page")
    assert r.status_code == 200
    assert r.text == index
    # A path canonicalised into Django's prefix goes to Django, not the SPA.
    r = http.get("/%61dmin/login/")
    assert r.status_code == 200 and "csrfmiddlewaretoken" in r.text


def test_customer_login_page(stack, browser):
    b = browser()
    r = b.http.get("/api/auth/login/?next=/")
    assert r.status_code == 200 and "csrfmiddlewaretoken" in r.text
    b.login("plain")
    r = b.post_form("/api/auth/login/", {"username": "plain", "password": PASSWORD + "x"})
    assert r.status_code == 200  # the form again, with an error
