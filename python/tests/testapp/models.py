import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Category(models.Model):
    name = models.CharField(max_length=50)


class Tag(models.Model):
    name = models.CharField(max_length=50)


class Product(models.Model):
    uid = models.UUIDField(default=uuid.uuid4)
    name = models.CharField(max_length=50)
    sku = models.CharField(max_length=20, blank=True)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    weight = models.FloatField(null=True, blank=True)
    stock = models.IntegerField(default=0)
    active = models.BooleanField(default=True)
    released = models.DateField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)
    opens = models.TimeField(null=True, blank=True)
    lead_time = models.DurationField(null=True, blank=True)
    attrs = models.JSONField(default=dict, blank=True)
    blob = models.BinaryField(null=True, blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    tags = models.ManyToManyField(Tag, blank=True)
    secret_note = models.TextField(blank=True)

    @property
    def label(self):
        return f"{self.name} ({self.sku})"


class Gadget(models.Model):
    code = models.CharField(max_length=10, primary_key=True)
    title = models.CharField(max_length=50)


class Note(models.Model):
    """A per-user row (ModelState's Meta.owner_field)."""

    # No database constraint: the app has no migrations, and PostgreSQL would add the
    # constraint before auth's migrations create auth_user.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    text = models.CharField(max_length=100)
