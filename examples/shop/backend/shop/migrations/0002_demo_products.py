"""A few demo products so the example shows something on first start."""

from decimal import Decimal

from django.db import migrations

DEMO = [
    ("Espresso beans, 1 kg", "COF-ESP-1000", Decimal("24.90")),
    ("Pour-over kettle", "KIT-KETTLE-01", Decimal("49.00")),
    ("Ceramic mug", "MUG-CER-350", Decimal("12.50")),
]


def add_demo(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    for name, sku, price in DEMO:
        Product.objects.get_or_create(sku=sku, defaults={"name": name, "price": price, "is_active": True})


def remove_demo(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    Product.objects.filter(sku__in=[sku for _, sku, _ in DEMO]).delete()


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [migrations.RunPython(add_demo, remove_demo)]
