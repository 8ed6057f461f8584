"""``ModelState``: list, search, paginate, create, update and delete one Django model from
a Reflex page, with Django's model permissions read from the verified identity.

The counterpart of reflex-django's ``ModelState`` / ``ModelCRUDView``, built on the
companion's :class:`~isthmus_reflex.serializers.ModelSerializer`::

    class ProductSerializer(ModelSerializer):
        class Meta:
            model = Product
            fields = ["id", "name", "sku", "price", "is_active"]

    class ProductAdminState(ModelState, rx.State):
        class Meta:
            model = Product                      # or taken from the serializer's Meta.model
            serializer = ProductSerializer
            search_fields = ["name", "sku"]      # icontains, OR-ed
            ordering = ["name"]
            page_size = 20

        def get_queryset(self):                  # optional: a per-user queryset
            return Product.objects.filter(owner_id=self.django_user.user_id)

Configuration lives in ``Meta`` (as in Django's ``ModelForm`` and the serializer): a plain
class attribute such as ``search_fields = [...]`` on a Reflex state would become a state
var, sent to the browser and settable by it, so it is refused at class creation.

Vars: ``rows`` (the page, serialized), ``page`` (1-based), ``page_count``, ``total``,
``search_text``, ``form`` (the edited row, field name -> value), ``editing_id`` (the pk of
the row being edited as text, ``""`` when creating), ``field_errors`` (field -> message,
``"__all__"`` for the others), ``error`` and ``message``, and ``can_view`` / ``can_add``
/ ``can_change`` / ``can_delete`` for the UI.

Handlers: ``load_rows`` (``on_load``), ``search``, ``next_page``, ``prev_page``,
``go_to_page``, ``set_field``, ``new_row``, ``edit_row``, ``cancel_edit``, ``save``
(create or update), ``create``, ``update``, ``delete_row``. Every one that reads or writes
checks the permission first and refuses without it (``error`` says so; nothing touches the
database).

Permissions: Django's model permissions ``<app>.view_<model>``, ``add_``, ``change_``,
``delete_``, checked against the identity's permission list the gateway delivered (no
database query); as in Django's admin, ``change`` also allows viewing. ``Meta.permissions``
overrides them per action (``None``: no check); ``has_permission(action)`` and
``has_object_permission(action, obj)`` are the hooks.

Database connections: every handler's ORM work runs in one ``sync_to_async`` call that
calls Django's ``close_old_connections()`` before and after it, in the thread that runs
the query, as Django does at the start and end of each request (see
:func:`database_sync_to_async`, also usable in your own handlers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import reflex as rx
from asgiref.sync import sync_to_async
from django.db import close_old_connections, models

from .serializers import ModelSerializer
from .state import DjangoUserMixin, _StateMethod

logger = logging.getLogger("isthmus_reflex.models")

T = TypeVar("T")

ACTIONS = ("view", "add", "change", "delete")
#: Names that configure a ModelState; as plain class attributes they would be state vars.
_META_NAMES = frozenset(
    {
        "model",
        "serializer",
        "search_fields",
        "ordering",
        "page_size",
        "max_page_size",
        "permissions",
        "owner_field",
        "select_related",
    }
)


#: Methods a subclass overrides; never event handlers.
_HOOKS = ("get_queryset", "has_permission", "has_object_permission", "new_instance")


def _run_with_fresh_connections(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def database_sync_to_async(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` (synchronous ORM code) in Django's ORM thread, with
    ``close_old_connections()`` before and after, in that same thread.

    What Django's request handling does through the ``request_started`` /
    ``request_finished`` signals, which Reflex events never send: a connection past
    ``CONN_MAX_AGE``, or one that raised an error and no longer answers (a database
    restart), is closed and the next query opens a new one. ``thread_sensitive=True`` is
    the thread Django's own async ORM methods (``aget``, ``acount``…) use, so their
    connection is the one checked.
    """
    return await sync_to_async(_run_with_fresh_connections, thread_sensitive=True)(fn, *args, **kwargs)


@dataclass(frozen=True)
class ModelStateOptions:
    """A ModelState's ``Meta``, resolved."""

    model: type[models.Model]
    serializer: type[ModelSerializer]
    search_fields: tuple[str, ...]
    ordering: tuple[Any, ...]  # names, or expressions from the model's Meta.ordering
    page_size: int
    max_page_size: int
    permissions: Mapping[str, tuple[str, ...] | None]
    owner_field: str | None
    select_related: tuple[str, ...]


_options_cache: dict[type, ModelStateOptions] = {}


def _tuple(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    msg = f"{what} must be a string or a list of strings, not {value!r}"
    raise TypeError(msg)


def _class_attr(cls: type, name: str) -> Any:
    value = getattr(cls, name, None)
    return value if isinstance(value, type) else None


def resolve_options(cls: type) -> ModelStateOptions:
    """Read ``cls.Meta`` (and its bases' ``Meta``) into :class:`ModelStateOptions`."""
    cached = _options_cache.get(cls)
    if cached is not None:
        return cached
    meta = getattr(cls, "Meta", None)

    def opt(name: str, default: Any) -> Any:
        return getattr(meta, name, default) if meta is not None else default

    # A class, unlike a list or a number, is no state var: `model = Product` in the class
    # body works as well as in Meta.
    serializer = opt("serializer", None) or _class_attr(cls, "serializer")
    model = opt("model", None) or _class_attr(cls, "model")
    if serializer is None:
        if model is None:
            msg = f"{cls.__name__}.Meta needs a model or a serializer"
            raise TypeError(msg)
        serializer = type(
            f"{model.__name__}Serializer", (ModelSerializer,), {"Meta": type("Meta", (), {"model": model})}
        )
    if not (isinstance(serializer, type) and issubclass(serializer, ModelSerializer)):
        msg = f"{cls.__name__}.Meta.serializer must be a ModelSerializer subclass"
        raise TypeError(msg)
    if model is None:
        model = serializer._opt("model", None)
        if model is None:
            msg = f"{cls.__name__}.Meta needs a model (its serializer's Meta.model is not set)"
            raise TypeError(msg)
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        msg = f"{cls.__name__}.Meta.model must be a Django model"
        raise TypeError(msg)
    page_size = int(opt("page_size", 20))
    max_page_size = int(opt("max_page_size", 100))
    if page_size < 1 or max_page_size < 1:
        msg = f"{cls.__name__}.Meta.page_size and max_page_size must be at least 1"
        raise ValueError(msg)
    app, name = model._meta.app_label, model._meta.model_name
    perms: dict[str, tuple[str, ...] | None] = {a: (f"{app}.{a}_{name}",) for a in ACTIONS}
    for action, value in dict(opt("permissions", {}) or {}).items():
        if action not in ACTIONS:
            msg = f"{cls.__name__}.Meta.permissions: unknown action {action!r} (one of {', '.join(ACTIONS)})"
            raise ValueError(msg)
        perms[action] = None if value is None else _tuple(value, f"{cls.__name__}.Meta.permissions[{action!r}]")
    options = ModelStateOptions(
        model=model,
        serializer=serializer,
        search_fields=_tuple(opt("search_fields", ()), "Meta.search_fields"),
        ordering=_tuple(opt("ordering", ()), "Meta.ordering") or tuple(model._meta.ordering or ()) or ("pk",),
        page_size=min(page_size, max_page_size),
        max_page_size=max_page_size,
        permissions=perms,
        owner_field=opt("owner_field", None),
        select_related=_tuple(opt("select_related", ()), "Meta.select_related"),
    )
    _options_cache[cls] = options
    return options


def _helper(fn: Callable[..., Any]) -> Any:
    """A method of the state that the browser cannot call as an event."""
    return _StateMethod(fn)


class ModelState(DjangoUserMixin, mixin=True):
    """Mix into a state: ``class ProductAdminState(ModelState, rx.State)`` with a ``Meta``."""

    rows: list[dict[str, Any]] = []  # noqa: RUF012 (a Reflex var: each state instance gets its own copy)
    page: int = 1
    page_count: int = 1
    total: int = 0
    search_text: str = ""
    form: dict[str, Any] = {}  # noqa: RUF012 (a Reflex var: each state instance gets its own copy)
    editing_id: str = ""
    field_errors: dict[str, str] = {}  # noqa: RUF012 (a Reflex var: each state instance gets its own copy)
    error: str = ""
    message: str = ""
    can_view: bool = False
    can_add: bool = False
    can_change: bool = False
    can_delete: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Configuration errors at import, not at the first event, and before Reflex
        # registers the class (the metaclass has already sorted out its fields).
        fields = getattr(cls, "__own_fields__", {})
        misplaced = sorted(_META_NAMES & set(fields))
        if misplaced:
            msg = (
                f"{cls.__name__}: {', '.join(misplaced)} would be state vars (sent to and settable by the "
                "browser); put them in the state's inner `class Meta:`"
            )
            raise TypeError(msg)
        if not getattr(cls, "_mixin", False):
            resolve_options(cls)
        # A subclass's own hooks (``def get_queryset(self)``) are helpers, not events the
        # browser may call: wrap them before Reflex registers the class's handlers.
        for name in _HOOKS:
            value = cls.__dict__.get(name)
            if callable(value) and not isinstance(value, _StateMethod):
                setattr(cls, name, _StateMethod(value))
        super().__init_subclass__(**kwargs)

    # --- helpers (not events) -----------------------------------------------------------

    def _options(self) -> ModelStateOptions:
        return resolve_options(type(self))

    options = _helper(_options)

    def _has_permission(self, action: str) -> bool:
        """Whether this event's identity may ``action`` (view/add/change/delete) the model.

        Override for other rules; the default reads ``Meta.permissions`` (Django's model
        permissions unless overridden) from the identity, with no database query.
        """
        perms = self._options().permissions
        required = perms[action]
        if required is None:
            return True
        user = self.django_user
        if user.has_perms(required):
            return True
        if action == "view":  # Django's admin: change permission implies view
            change = perms["change"]
            return change is not None and user.has_perms(change)
        return False

    has_permission = _helper(_has_permission)

    def _has_object_permission(self, action: str, obj: models.Model) -> bool:
        """Whether ``action`` is allowed on this row (default: yes). Runs in the ORM thread."""
        return True

    has_object_permission = _helper(_has_object_permission)

    def _get_queryset(self) -> models.QuerySet[Any]:
        """The rows this event's user may see and edit; override to scope them per user.

        Called in the ORM thread. With ``Meta.owner_field``, only the rows whose owner is
        the identity's user (none for an anonymous user).
        """
        opts = self._options()
        qs: models.QuerySet[Any] = opts.model._default_manager.all()
        if opts.owner_field:
            user_id = self.django_user.user_id
            if user_id is None:
                return qs.none()
            qs = qs.filter(**{f"{opts.owner_field}__pk": user_id})
        return qs

    get_queryset = _helper(_get_queryset)

    def _new_instance(self) -> models.Model:
        """The unsaved instance a create starts from (``Meta.owner_field`` set to the user)."""
        opts = self._options()
        instance = opts.model()
        if opts.owner_field:
            field = opts.model._meta.get_field(opts.owner_field)
            setattr(instance, field.attname, self.django_user.user_id)  # type: ignore[union-attr]
        return instance

    new_instance = _helper(_new_instance)

    def _refuse(self, action: str) -> None:
        self.error = "Permission denied."
        self.message = ""
        logger.info(
            "%s.%s refused: %r lacks the %s permission",
            type(self).__name__,
            action,
            self.django_user.username or "anonymous",
            action,
        )

    def _update_flags(self) -> None:
        self.can_view = self.has_permission("view")
        self.can_add = self.has_permission("add")
        self.can_change = self.has_permission("change")
        self.can_delete = self.has_permission("delete")

    def _filtered(self) -> models.QuerySet[Any]:
        opts = self._options()
        qs: models.QuerySet[Any] = self.get_queryset()
        if opts.select_related:
            qs = qs.select_related(*opts.select_related)
        text = str(self.search_text)[:200].strip()  # the var is settable by the browser
        if text and opts.search_fields:
            cond = models.Q()
            for name in opts.search_fields:
                cond |= models.Q(**{f"{name}__icontains": text})
            qs = qs.filter(cond)
        return qs.order_by(*opts.ordering)

    def _load_page(self) -> tuple[list[dict[str, Any]], int, int, int]:
        """(rows, page, page_count, total) of the current search and page. ORM thread."""
        opts = self._options()
        qs = self._filtered()
        total = qs.count()
        page_count = max(1, -(-total // opts.page_size))
        page = min(max(1, int(self.page)), page_count)
        start = (page - 1) * opts.page_size
        rows = opts.serializer.list(qs[start : start + opts.page_size])
        return rows, page, page_count, total

    async def _reload(self) -> None:
        rows, page, page_count, total = await database_sync_to_async(self._load_page)
        self.rows, self.page, self.page_count, self.total = rows, page, page_count, total

    async def _list(self) -> None:
        self._update_flags()
        if not self.can_view:
            self.rows, self.total, self.page_count = [], 0, 1
            self._refuse("view")
            return
        self.error = ""
        await self._reload()

    def _clear_form(self) -> None:
        self.form = {}
        self.editing_id = ""
        self.field_errors = {}

    # --- events ---------------------------------------------------------------------------

    @rx.event
    async def load_rows(self) -> None:
        """Load the current page (use as ``on_load``)."""
        await self._list()

    @rx.event
    async def search(self, text: str) -> None:
        """Search ``Meta.search_fields`` for ``text`` (case-insensitive), from page 1."""
        self.search_text = str(text)[:200]
        self.page = 1
        await self._list()

    @rx.event
    async def next_page(self) -> None:
        self.page = int(self.page) + 1
        await self._list()

    @rx.event
    async def prev_page(self) -> None:
        self.page = max(1, int(self.page) - 1)
        await self._list()

    @rx.event
    async def go_to_page(self, page: int) -> None:
        try:
            self.page = max(1, int(page))
        except (TypeError, ValueError):
            self.page = 1
        await self._list()

    @rx.event
    def set_field(self, name: str, value: Any) -> None:
        """Set one field of the edited row (for ``on_change``)."""
        self.form = {**self.form, str(name): value}

    @rx.event
    def new_row(self) -> None:
        """Start editing a new row (an empty form)."""
        self._clear_form()
        self.error = ""

    @rx.event
    async def edit_row(self, pk: str | int) -> None:
        """Load a row the user may change into ``form`` and ``editing_id``."""
        self._update_flags()
        if not self.can_change:
            self._refuse("change")
            return
        opts = self._options()

        def fetch() -> dict[str, Any] | None:
            obj = self.get_queryset().filter(pk=pk).first()
            if obj is None or not self.has_object_permission("change", obj):
                return None
            return opts.serializer(obj).to_representation(obj)

        row = await database_sync_to_async(fetch)
        if row is None:
            self.error = f"{opts.model._meta.verbose_name} not found."
            return
        self.error = ""
        self.field_errors = {}
        self.editing_id = str(row.get("id", pk))
        self.form = row

    @rx.event
    def cancel_edit(self) -> None:
        self._clear_form()

    @rx.event
    async def save(self, form_data: dict[str, Any] | None = None) -> None:
        """Create (no ``editing_id``) or update the edited row from ``form`` (or
        ``form_data``, as ``rx.form``'s ``on_submit`` passes it)."""
        if form_data is not None:
            self.form = {**self.form, **dict(form_data)}
        await self._save(create=self.editing_id == "")

    @rx.event
    async def create(self, form_data: dict[str, Any] | None = None) -> None:
        """Create a row from ``form`` (or ``form_data``), whatever is being edited."""
        if form_data is not None:
            self.form = dict(form_data)
        await self._save(create=True)

    @rx.event
    async def update(self, pk: str | int, form_data: dict[str, Any]) -> None:
        """Update row ``pk`` with the fields in ``form_data`` (the others are kept)."""
        self.editing_id = str(pk)
        self.form = dict(form_data)
        await self._save(create=False)

    @rx.event
    async def delete_row(self, pk: str | int) -> None:
        """Delete row ``pk`` (only one in ``get_queryset()``)."""
        self._update_flags()
        if not self.can_delete:
            self._refuse("delete")
            return
        opts = self._options()

        def remove() -> bool:
            obj = self.get_queryset().filter(pk=pk).first()
            if obj is None or not self.has_object_permission("delete", obj):
                return False
            obj.delete()
            return True

        if not await database_sync_to_async(remove):
            self.error = f"{opts.model._meta.verbose_name} not found."
            return
        if self.editing_id == str(pk):
            self._clear_form()
        self.error = ""
        self.message = f"{opts.model._meta.verbose_name} deleted."
        await self._reload()

    async def _save(self, *, create: bool) -> None:
        action = "add" if create else "change"
        self._update_flags()
        if not (self.can_add if create else self.can_change):
            self._refuse(action)
            return
        opts = self._options()
        # Never from the browser: the pk, and the owner (Meta.owner_field) a create sets.
        data = {k: v for k, v in self.form.items() if k != "id" and k != opts.owner_field}
        pk = self.editing_id

        def write() -> tuple[str, dict[str, Any] | None, dict[str, str]]:
            if create:
                instance = self.new_instance()
            else:
                instance = self.get_queryset().filter(pk=pk).first()
                if instance is None or not self.has_object_permission("change", instance):
                    return "missing", None, {}
            serializer = opts.serializer(instance, data=data)
            if not serializer.is_valid():
                return "invalid", None, {k: " ".join(v) for k, v in serializer.errors.items()}
            obj = serializer.save()
            return "ok", opts.serializer(obj).to_representation(obj), {}

        status, row, errors = await database_sync_to_async(write)
        name = str(opts.model._meta.verbose_name)
        if status == "missing":
            self.error = f"{name} not found."
            return
        if status == "invalid":
            self.field_errors = errors
            self.error = "Please correct the errors below."
            return
        assert row is not None
        self._clear_form()
        self.error = ""
        self.message = f"{name} {'created' if create else 'saved'}."
        await self._reload()


__all__ = ["ModelState", "ModelStateOptions", "database_sync_to_async", "resolve_options"]
