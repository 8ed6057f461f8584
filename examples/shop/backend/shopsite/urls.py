from django.contrib import admin
from django.urls import include, path

from shop.views import stock_report_view, stripe_webhook_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/shop/", include("shop.urls")),
    # Log in / out for customers (the admin's login page only takes staff accounts).
    path("api/auth/", include("django.contrib.auth.urls")),
    # Staff only: the gateway's staff_reports router guards /reports, the view checks again.
    path("reports/stock/", stock_report_view, name="stock-report"),
    path("webhooks/stripe/", stripe_webhook_view, name="stripe-webhook"),
    # The identity endpoint the gateway's event bridge calls (isthmus companion app).
    path("_isthmus/", include("isthmus_django.urls")),
]
