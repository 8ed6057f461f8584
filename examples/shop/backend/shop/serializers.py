from rest_framework import serializers

from .models import Product


class DRFProductSerializer(serializers.ModelSerializer):
    """Django REST Framework serializer (HTTP API); the Reflex side uses isthmus_reflex.ModelSerializer."""

    class Meta:
        model = Product
        fields = ["id", "name", "price", "sku", "is_active", "created_at"]
        read_only_fields = ["created_at"]
