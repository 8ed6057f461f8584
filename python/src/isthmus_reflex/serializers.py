"""Declarative serializers turning Django model instances into JSON-safe dicts for Reflex state.

An equivalent of reflex-django's ``ReflexDjangoModelSerializer`` (same name exported)::

    class ProductSerializer(ModelSerializer):
        class Meta:
            model = Product
            fields = ["id", "name", "price", "tags"]      # or "__all__" (the default)
            exclude = ["secret_note"]
            read_only_fields = ["sku"]
            datetime_format = None                        # ISO 8601 (default), or a strftime format
            date_format = None

    row = ProductSerializer(product).data                 # dict
    rows = ProductSerializer(Product.objects.all()).data  # list: a QuerySet implies many=True
    rows = await ProductSerializer(qs, many=True).adata() # in async handlers
    rows = ProductSerializer.list(qs); rows = await ProductSerializer.alist(qs)

Values: ``Decimal`` -> ``str`` (exact, as reflex-django), ``UUID`` -> ``str``, ``datetime``
-> ISO 8601 in the current time zone (or ``Meta.datetime_format``), ``date``/``time`` ->
ISO (or ``Meta.date_format``), ``timedelta`` -> seconds (float), foreign key / one-to-one ->
the related pk, many-to-many -> list of pks, files -> URL (or name), bytes -> base64 text.
``id`` (the pk) is always present unless excluded. A name in ``fields`` that is not a model
field is read from ``get_<name>(self, obj)`` on the serializer, or from the instance
(a property, an annotation).

Writing: ``ProductSerializer(instance_or_None, data={...})`` then ``is_valid()`` /
``errors`` / ``save()`` (``await asave()``) validates with a Django ``ModelForm`` over the
writable fields: the selected editable fields minus ``read_only_fields`` and the pk.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils import timezone

ALL_FIELDS = "__all__"


def json_safe(value: Any, *, datetime_format: str | None = None, date_format: str | None = None) -> Any:
    """Convert one value to something ``json.dumps`` accepts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.strftime(datetime_format) if datetime_format else value.isoformat()
    if isinstance(value, dt.date):
        return value.strftime(date_format) if date_format else value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, FieldFile):
        if not value.name:
            return None
        try:
            return value.url
        except Exception:
            return value.name
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, models.Model):
        return json_safe(value.pk)
    if isinstance(value, Mapping):
        return {
            str(k): json_safe(v, datetime_format=datetime_format, date_format=date_format) for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, datetime_format=datetime_format, date_format=date_format) for v in value]
    return str(value)


class ModelSerializer:
    """Serialize Django model instances (or querysets) to JSON-safe dicts."""

    class Meta:
        model: type[models.Model] | None = None
        fields: str | list[str] | tuple[str, ...] | None = ALL_FIELDS
        exclude: list[str] | tuple[str, ...] = ()
        read_only_fields: list[str] | tuple[str, ...] = ()
        datetime_format: str | None = None
        date_format: str | None = None

    def __init__(
        self,
        instance: Any = None,
        *,
        data: Mapping[str, Any] | None = None,
        many: bool | None = None,
        exclude_fields: Iterable[str] | None = None,
    ) -> None:
        if many is None:
            many = isinstance(instance, models.QuerySet)
        self.instance = instance
        self.many = many
        self.initial_data = data
        self._runtime_exclude = frozenset(exclude_fields or ())
        self._form: Any = None

    # --- options -----------------------------------------------------------------------

    @classmethod
    def _opt(cls, name: str, default: Any) -> Any:
        meta = getattr(cls, "Meta", None)
        return getattr(meta, name, default) if meta is not None else default

    @classmethod
    def _model(cls, obj: Any = None) -> type[models.Model]:
        model: type[models.Model] | None = cls._opt("model", None)
        if model is None:
            if obj is None:
                msg = f"{cls.__name__}.Meta.model is not set"
                raise TypeError(msg)
            return type(obj)
        return model

    def _field_names(self, model: type[models.Model]) -> list[str]:
        opts = model._meta
        declared = self._opt("fields", ALL_FIELDS)
        if declared in (None, ALL_FIELDS):
            names = [f.name for f in opts.concrete_fields] + [f.name for f in opts.local_many_to_many]
            if "id" not in names:
                names.insert(0, "id")
        else:
            if isinstance(declared, str):
                msg = f"{type(self).__name__}.Meta.fields must be '__all__' or a list of names"
                raise TypeError(msg)
            names = list(declared)
            if "id" not in names:
                names.insert(0, "id")
        excluded = frozenset(self._opt("exclude", ())) | self._runtime_exclude
        return [n for n in names if n not in excluded]

    # --- reading -----------------------------------------------------------------------

    def _value(self, obj: models.Model, name: str) -> Any:
        if name == "id" and not any(f.name == "id" for f in obj._meta.get_fields()):
            return obj.pk  # "id" names the pk whatever the pk field is called
        getter = getattr(self, f"get_{name}", None)
        if callable(getter):
            return getter(obj)
        try:
            field = obj._meta.get_field(name)
        except FieldDoesNotExist:
            field = None
        if field is not None:
            if field.many_to_many and not field.auto_created:
                return [related.pk for related in getattr(obj, name).all()]
            if field.is_relation and (field.many_to_one or field.one_to_one) and field.concrete:
                return getattr(obj, field.attname)
            if field.concrete:
                return field.value_from_object(obj)
            msg = f"{type(self).__name__}: {name!r} is a reverse relation; add a get_{name} method"
            raise TypeError(msg)
        if hasattr(obj, name):
            value = getattr(obj, name)
            return value() if callable(value) else value
        msg = f"{type(self).__name__}: {type(obj).__name__} has no field or attribute {name!r}"
        raise AttributeError(msg)

    def to_representation(self, obj: models.Model) -> dict[str, Any]:
        model = self._opt("model", None)
        if model is not None and not isinstance(obj, model):
            msg = f"{type(self).__name__} expects {model.__name__!r}, got {type(obj).__name__!r}"
            raise TypeError(msg)
        dt_fmt = self._opt("datetime_format", None)
        d_fmt = self._opt("date_format", None)
        return {
            name: json_safe(self._value(obj, name), datetime_format=dt_fmt, date_format=d_fmt)
            for name in self._field_names(type(obj))
        }

    @property
    def data(self) -> dict[str, Any] | builtins.list[dict[str, Any]]:
        """The serialized instance, or list for ``many``. Touches the database synchronously."""
        if self.many:
            return [self.to_representation(obj) for obj in self.instance]
        if self.instance is None:
            msg = f"{type(self).__name__} has no instance to serialize"
            raise ValueError(msg)
        return self.to_representation(self.instance)

    async def adata(self) -> dict[str, Any] | builtins.list[dict[str, Any]]:
        """``data`` for async code (Reflex handlers): queryset and related lookups run in a thread."""
        return await sync_to_async(lambda: self.data)()

    @classmethod
    def list(
        cls, queryset: Iterable[Any], *, exclude_fields: Iterable[str] | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Serialize a queryset or iterable of instances."""
        return cast("builtins.list[dict[str, Any]]", cls(queryset, many=True, exclude_fields=exclude_fields).data)

    @classmethod
    async def alist(
        cls, queryset: Iterable[Any], *, exclude_fields: Iterable[str] | None = None
    ) -> builtins.list[dict[str, Any]]:
        """``list`` for async code."""
        rows = await cls(queryset, many=True, exclude_fields=exclude_fields).adata()
        return cast("builtins.list[dict[str, Any]]", rows)

    # --- writing -----------------------------------------------------------------------

    def writable_fields(self) -> builtins.list[str]:
        """Selected editable model fields, minus ``read_only_fields`` and the pk."""
        model = self._model(self.instance)
        read_only = frozenset(self._opt("read_only_fields", ()))
        out = []
        for name in self._field_names(model):
            if name in read_only:
                continue
            try:
                # Any, not Field | ForeignObjectRel: a reverse relation (ForeignObjectRel) has
                # no primary_key, so one named in Meta.fields raises AttributeError just below.
                field: Any = model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if (
                field.primary_key
                or not field.editable
                or field.auto_created
                or (not field.concrete and not field.many_to_many)
            ):
                continue
            out.append(name)
        return out

    def _build_form(self) -> Any:
        from django.forms import modelform_factory

        if self.many:
            msg = "writing is supported for one instance, not many"
            raise TypeError(msg)
        if self.initial_data is None:
            msg = f"{type(self).__name__} was created without data="
            raise ValueError(msg)
        model = self._model(self.instance)
        form_class = modelform_factory(model, fields=self.writable_fields())
        data = dict(self.initial_data)
        if self.instance is not None:
            # A partial update: fields the data leaves out keep the instance's values.
            for name in form_class.base_fields:
                if name not in data:
                    value = self._value(self.instance, name)
                    data[name] = value
        return form_class(data=data, instance=self.instance)

    def is_valid(self) -> bool:
        """Validate ``data`` with a ModelForm over :meth:`writable_fields` (synchronous)."""
        if self._form is None:
            self._form = self._build_form()
        return bool(self._form.is_valid())

    async def ais_valid(self) -> bool:
        return await sync_to_async(self.is_valid)()

    @property
    def errors(self) -> dict[str, builtins.list[str]]:
        if self._form is None:
            return {}
        return {name: [str(e) for e in errs] for name, errs in self._form.errors.items()}

    @property
    def validated_data(self) -> dict[str, Any]:
        if self._form is None or not self._form.is_valid():
            msg = "call is_valid() first"
            raise AssertionError(msg)
        return dict(self._form.cleaned_data)

    def save(self) -> models.Model:
        """Create or update the instance from valid data; read-only fields are never written."""
        if not self.is_valid():
            msg = f"invalid data: {self.errors}"
            raise ValueError(msg)
        instance: models.Model = self._form.save()
        self.instance = instance
        return instance

    async def asave(self) -> models.Model:
        return await sync_to_async(self.save)()


#: reflex-django's name for the same class.
ReflexDjangoModelSerializer = ModelSerializer
