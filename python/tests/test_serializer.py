"""ModelSerializer: JSON-safe dicts from Django models."""

import asyncio
import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from isthmus_reflex import ModelSerializer, ReflexDjangoModelSerializer
from tests.testapp.models import Category, Gadget, Product, Tag

UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
CREATED = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


class ProductSerializer(ModelSerializer):
    class Meta:
        model = Product
        fields = "__all__"


@pytest.fixture
def product(db):
    tools = Category.objects.create(name="tools")
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    p = Product.objects.create(
        uid=UID,
        name="Hammer",
        sku="H-1",
        price=Decimal("12.50"),
        weight=1.25,
        stock=3,
        released=dt.date(2024, 1, 2),
        created=CREATED,
        opens=dt.time(9, 30),
        lead_time=dt.timedelta(hours=1, seconds=30),
        attrs={"color": "red", "sizes": [1, 2]},
        blob=b"\x00\x01binary",
        category=tools,
        secret_note="internal",
    )
    p.tags.set([red, blue])
    return p


def test_all_field_kinds(product):
    data = ProductSerializer(product).data
    assert data == {
        "id": product.pk,
        "uid": str(UID),
        "name": "Hammer",
        "sku": "H-1",
        "price": "12.50",
        "weight": 1.25,
        "stock": 3,
        "active": True,
        "released": "2024-01-02",
        "created": "2024-05-06T07:08:09.123456+00:00",
        "updated": product.updated.isoformat(),
        "opens": "09:30:00",
        "lead_time": 3630.0,
        "attrs": {"color": "red", "sizes": [1, 2]},
        "blob": "AAFiaW5hcnk=",
        "category": product.category_id,
        "tags": sorted(product.tags.values_list("pk", flat=True)),
        "secret_note": "internal",
    }
    assert list(data) == ["id", *[k for k in data if k != "id"]]
    json.dumps(data)


def test_nulls(db):
    p = Product.objects.create(name="Bare", price=Decimal("1"))
    data = ProductSerializer(p).data
    assert data["released"] is None
    assert data["category"] is None
    assert data["blob"] is None
    assert data["tags"] == []
    assert data["lead_time"] is None
    json.dumps(data)


def test_fields_list_order_and_implicit_id(product):
    class S(ModelSerializer):
        class Meta:
            model = Product
            fields = ["name", "price", "tags", "label", "margin"]

        def get_margin(self, obj):
            return obj.price * Decimal("0.2")

    data = S(product).data
    assert list(data) == ["id", "name", "price", "tags", "label", "margin"]
    assert data["label"] == "Hammer (H-1)"
    assert data["margin"] == "2.500"
    json.dumps(data)


def test_exclude_and_runtime_exclude(product):
    class S(ModelSerializer):
        class Meta:
            model = Product
            exclude = ["secret_note", "blob"]

    data = S(product).data
    assert "secret_note" not in data
    assert "blob" not in data
    assert "name" in data
    assert "price" not in S(product, exclude_fields={"price"}).data
    assert "id" not in S(product, exclude_fields=["id"]).data


def test_formats_like_reflex_django(product, settings):
    class S(ModelSerializer):
        class Meta:
            model = Product
            fields = ["created", "released"]
            datetime_format = "%Y-%m-%d %H:%M"
            date_format = "%d/%m/%Y"

    assert S(product).data == {"id": product.pk, "created": "2024-05-06 07:08", "released": "02/01/2024"}
    # Aware datetimes are shown in the current time zone.
    with timezone.override("Europe/Paris"):
        assert S(product).data["created"] == "2024-05-06 09:08"
        assert ProductSerializer(product).data["created"] == "2024-05-06T09:08:09.123456+02:00"


def test_custom_primary_key(db):
    g = Gadget.objects.create(code="G7", title="Widget")

    class S(ModelSerializer):
        class Meta:
            model = Gadget

    assert S(g).data == {"id": "G7", "code": "G7", "title": "Widget"}


def test_many(product):
    Product.objects.create(name="Saw", price=Decimal("9.99"), created=CREATED)
    qs = Product.objects.order_by("name")
    rows = ProductSerializer(qs).data  # a QuerySet implies many
    assert [r["name"] for r in rows] == ["Hammer", "Saw"]
    assert ProductSerializer(list(qs), many=True).data == rows
    assert ProductSerializer.list(qs) == rows
    assert ProductSerializer.list(qs, exclude_fields={"tags"})[0].keys() == rows[0].keys() - {"tags"}
    json.dumps(rows)


def test_wrong_model_is_refused(product):
    class S(ModelSerializer):
        class Meta:
            model = Gadget

    with pytest.raises(TypeError, match="Gadget"):
        _ = S(product).data


def test_reverse_relation_needs_a_getter(product):
    class S(ModelSerializer):
        class Meta:
            model = Category
            fields = ["name", "products"]

    with pytest.raises(TypeError, match="get_products"):
        _ = S(product.category).data

    class T(S):
        def get_products(self, obj):
            return [p.name for p in obj.products.all()]

    assert T(product.category).data["products"] == ["Hammer"]


def test_unknown_field(product):
    class S(ModelSerializer):
        class Meta:
            model = Product
            fields = ["nope"]

    with pytest.raises(AttributeError, match="nope"):
        _ = S(product).data


def test_reflex_django_name():
    assert ReflexDjangoModelSerializer is ModelSerializer


# --- async ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_adata_and_alist_inside_an_event_loop():
    cat = Category.objects.create(name="c")
    tag = Tag.objects.create(name="t")
    p = Product.objects.create(name="A", price=Decimal("1.10"), category=cat, created=CREATED)
    p.tags.add(tag)

    async def handler():
        # What a Reflex handler does: everything touching the DB goes through the async API.
        one = await ProductSerializer(await Product.objects.aget(pk=p.pk)).adata()
        many = await ProductSerializer(Product.objects.all(), many=True).adata()
        listed = await ProductSerializer.alist(Product.objects.all())
        return one, many, listed

    one, many, listed = asyncio.run(handler())
    assert one["tags"] == [tag.pk]
    assert one["price"] == "1.10"
    assert one["category"] == cat.pk
    assert many == listed == [one]
    json.dumps([one, many])


@pytest.mark.django_db(transaction=True)
def test_sync_data_in_an_event_loop_hits_djangos_guard():
    """Why adata exists: Django refuses sync ORM calls on a running event loop."""
    from django.core.exceptions import SynchronousOnlyOperation

    Product.objects.create(name="A", price=Decimal("1"))

    async def handler():
        return ProductSerializer(Product.objects.all()).data

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(handler())


# --- writing --------------------------------------------------------------------------------


class EditSerializer(ModelSerializer):
    class Meta:
        model = Product
        fields = ["name", "sku", "price", "stock", "category", "tags", "created"]
        read_only_fields = ["sku", "created"]


def test_writable_fields(db):
    assert EditSerializer().writable_fields() == ["name", "price", "stock", "category", "tags"]
    # auto_now and the pk are never writable.
    assert "updated" not in ProductSerializer().writable_fields()
    assert "id" not in ProductSerializer().writable_fields()


def test_create(db):
    cat = Category.objects.create(name="c")
    tag = Tag.objects.create(name="t")
    s = EditSerializer(data={"name": "New", "price": "3.20", "stock": 2, "category": cat.pk, "tags": [tag.pk]})
    assert s.is_valid(), s.errors
    p = s.save()
    assert p.pk
    assert p.name == "New"
    assert p.price == Decimal("3.20")
    assert list(p.tags.all()) == [tag]
    assert s.data["price"] == "3.20"


def test_update_is_partial_and_read_only_fields_are_ignored(product):
    s = EditSerializer(product, data={"stock": 9, "sku": "HACKED", "created": "2000-01-01T00:00:00Z"})
    assert s.is_valid(), s.errors
    s.save()
    product.refresh_from_db()
    assert product.stock == 9
    assert product.sku == "H-1"
    assert product.created == CREATED
    assert product.name == "Hammer"
    assert product.tags.count() == 2


def test_validation_errors(product):
    s = EditSerializer(product, data={"price": "not-a-number", "stock": "x"})
    assert not s.is_valid()
    assert set(s.errors) == {"price", "stock"}
    with pytest.raises(ValueError, match="invalid data"):
        s.save()


@pytest.mark.django_db(transaction=True)
def test_async_save():
    async def handler():
        s = EditSerializer(data={"name": "Async", "price": "1.00", "stock": 1})
        assert await s.ais_valid()
        return await s.asave()

    p = asyncio.run(handler())
    assert Product.objects.get(pk=p.pk).name == "Async"
