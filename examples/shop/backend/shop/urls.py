from django.urls import include, path
from rest_framework.routers import DefaultRouter

from .views import ProductViewSet, active_products_view, set_cart_view

router = DefaultRouter()
router.register(r"products", ProductViewSet, basename="product")

urlpatterns = [
    path("active/", active_products_view, name="active-products"),
    path("cart/", set_cart_view, name="set-cart"),
    path("", include(router.urls)),
]
