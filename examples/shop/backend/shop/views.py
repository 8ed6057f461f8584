import json

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework import viewsets

from .models import Product
from .serializers import DRFProductSerializer


@require_GET
def active_products_view(request: HttpRequest) -> JsonResponse:
    """Active products as plain JSON (a traditional Django view under /api)."""
    products = Product.objects.filter(is_active=True).order_by("-id")
    data = [{"id": p.id, "name": p.name, "sku": p.sku, "price": float(p.price)} for p in products]
    return JsonResponse({"results": data})


class ProductViewSet(viewsets.ModelViewSet):
    """DRF CRUD at /api/shop/products/: anyone reads, writing needs shop.*_product permissions."""

    queryset = Product.objects.all().order_by("id")
    serializer_class = DRFProductSerializer


@require_http_methods(["GET", "POST"])
def set_cart_view(request: HttpRequest) -> JsonResponse:
    """Put ``cart_id`` in the session: a key whitelisted (ISTHMUS_SESSION_KEYS) for Reflex.

    GET answers the session's ``cart_id`` (one a Reflex handler wrote, too).
    """
    if request.method == "GET":
        return JsonResponse({"cart_id": request.session.get("cart_id")})
    try:
        cart_id = int(request.POST.get("cart_id", ""))
    except ValueError:
        return JsonResponse({"error": "cart_id must be an integer"}, status=400)
    request.session["cart_id"] = cart_id
    return JsonResponse({"cart_id": cart_id})


@require_GET
@staff_member_required
def stock_report_view(request: HttpRequest) -> HttpResponse:
    """The staff report at /reports/stock/: every product, in stock (active) or not.

    Guarded twice: the gateway's staff_reports router (a Python policy, first in
    isthmus.toml's chain) refuses non-staff before Django sees the request, and
    ``staff_member_required`` checks again here, in case a request reaches Django
    another way (another gateway config, or Django's own port)."""
    products = list(Product.objects.order_by("sku"))
    in_stock = sum(1 for p in products if p.is_active)
    context = {"products": products, "in_stock": in_stock, "out_of_stock": len(products) - in_stock}
    return render(request, "shop/stock_report.html", context)


@csrf_exempt
@require_POST
def stripe_webhook_view(request: HttpRequest) -> JsonResponse:
    """A third-party webhook: CSRF-exempt, reads the raw body as sent."""
    raw = request.body
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"received": len(raw), "error": "body is not JSON"}, status=400)
    return JsonResponse(
        {
            "received": len(raw),
            "type": type(parsed).__name__,
            "event_type": parsed.get("type") if isinstance(parsed, dict) else None,
        }
    )
