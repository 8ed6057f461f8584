# The Meta classes below are declarations written as users write them (lists); never mutated.
# ruff: noqa: RUF012
"""ModelState: list / search / paginate / create / update / delete on real reflex 0.10.1
states and the test app's models, permissions from the identity, and Django's database
connections closed around each handler's ORM work."""

import asyncio
import threading
import time

import pytest

rx = pytest.importorskip("reflex")

from asgiref.sync import sync_to_async  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connections  # noqa: E402

from isthmus_reflex import ModelState, database_sync_to_async  # noqa: E402
from isthmus_reflex.models import resolve_options  # noqa: E402
from isthmus_reflex.serializers import ModelSerializer  # noqa: E402
from tests.test_reflex_state import call, identity, sub, tree  # noqa: E402
from tests.testapp.models import Category, Note, Product  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


class ProductRowSerializer(ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "stock"]
        read_only_fields = ["stock"]


class ProductCrudState(ModelState, rx.State):
    class Meta:
        serializer = ProductRowSerializer
        search_fields = ["name", "sku"]
        ordering = ["name"]
        page_size = 2


class ScopedCrudState(ModelState, rx.State):
    """A per-user queryset: only the products of the user's category (named after them)."""

    class Meta:
        serializer = ProductRowSerializer
        ordering = ["name"]
        permissions = {"view": None}  # listing needs no permission

    def get_queryset(self):
        return Product.objects.filter(category__name=self.django_user.username)


class NoteState(ModelState, rx.State):
    class Meta:
        model = Note
        owner_field = "owner"
        ordering = ["text"]


ALL = ["testapp.view_product", "testapp.add_product", "testapp.change_product", "testapp.delete_product"]


def state_for(cls=ProductCrudState, perms=(), **kw):
    return sub(tree(identity(permissions=list(perms), **kw)), cls)


def make_products(*names):
    return [Product.objects.create(name=n, sku=n[:3].upper() + str(i), price="1.00") for i, n in enumerate(names)]


def test_options_and_vars():
    opts = resolve_options(ProductCrudState)
    assert opts.model is Product
    assert opts.permissions["add"] == ("testapp.add_product",)
    assert opts.page_size == 2
    for var in ("rows", "page", "page_count", "total", "search_text", "form", "editing_id", "field_errors", "error"):
        assert var in ProductCrudState.vars
    handlers = set(ProductCrudState.event_handlers)
    assert {"load_rows", "search", "next_page", "prev_page", "save", "create", "update", "delete_row"} <= handlers
    for helper in ("get_queryset", "has_permission", "has_object_permission", "options", "new_instance"):
        assert helper not in handlers
        assert helper not in ProductCrudState.vars


def test_config_as_plain_attributes_is_refused():
    with pytest.raises(TypeError, match=r"search_fields.*class Meta"):

        class Bad(ModelState, rx.State):
            search_fields = ["name"]

            class Meta:
                model = Product


def test_model_in_the_class_body_and_missing_model():
    class Plain(ModelState, rx.State):
        model = Product

    assert resolve_options(Plain).model is Product
    assert resolve_options(Plain).ordering == ("pk",)
    assert "model" not in Plain.vars
    with pytest.raises(TypeError, match="needs a model"):

        class Nothing(ModelState, rx.State):
            pass

    # refused before Reflex registered them
    assert not {"bad", "nothing"} & {c.__name__.lower() for c in rx.State.get_substates()}


def test_list_search_and_pages():
    make_products("apple", "banana", "cherry", "date", "apricot")
    s = state_for(perms=["testapp.view_product"])
    call(s, "load_rows")
    assert s.error == ""
    assert [r["name"] for r in s.rows] == ["apple", "apricot"]
    assert (s.page, s.page_count, s.total) == (1, 3, 5)
    assert s.rows[0]["price"] == "1.00"
    call(s, "next_page")
    assert [r["name"] for r in s.rows] == ["banana", "cherry"]
    call(s, "next_page")
    call(s, "next_page")  # clamped to the last page
    assert (s.page, [r["name"] for r in s.rows]) == (3, ["date"])
    call(s, "prev_page")
    assert s.page == 2
    call(s, "search", text="AP")
    assert (s.page, s.total, [r["name"] for r in s.rows]) == (1, 2, ["apple", "apricot"])
    call(s, "search", text="BAN1")  # sku, case-insensitive
    assert [r["name"] for r in s.rows] == ["banana"]
    call(s, "go_to_page", page="x")
    assert s.page == 1
    assert (s.can_view, s.can_add, s.can_change, s.can_delete) == (True, False, False, False)


def test_change_permission_allows_viewing():
    make_products("apple")
    s = state_for(perms=["testapp.change_product"])
    call(s, "load_rows")
    assert s.total == 1


@pytest.mark.parametrize("who", [{"authenticated": False, "user_id": None}, {}, {"is_staff": True}])
def test_list_refused_without_view_permission(who):
    make_products("apple")
    s = state_for(**who)
    call(s, "load_rows")
    assert s.rows == []
    assert s.error == "Permission denied."


def test_superuser_has_every_permission():
    make_products("apple")
    s = state_for(is_superuser=True)
    call(s, "load_rows")
    assert s.total == 1
    assert s.can_delete


def test_create_refused_then_allowed_with_validation():
    s = state_for(perms=["testapp.view_product"])
    call(s, "create", form_data={"name": "kiwi", "sku": "K1", "price": "2.50"})
    assert s.error == "Permission denied."
    assert Product.objects.count() == 0

    s = state_for(perms=["testapp.view_product", "testapp.add_product"])
    call(s, "set_field", name="name", value="kiwi")
    call(s, "set_field", name="price", value="not a number")
    call(s, "save")
    assert "price" in s.field_errors
    assert s.error
    assert Product.objects.count() == 0
    call(s, "set_field", name="price", value="2.50")
    call(s, "set_field", name="stock", value=99)  # read-only in the serializer: ignored
    call(s, "save")
    assert s.field_errors == {}
    assert s.error == ""
    p = Product.objects.get()
    assert (p.name, str(p.price), p.stock) == ("kiwi", "2.50", 0)
    assert s.form == {}
    assert [r["name"] for r in s.rows] == ["kiwi"]
    assert s.message == "product created."


def test_update_and_edit():
    (p,) = make_products("apple")
    s = state_for(perms=["testapp.view_product"])
    call(s, "edit_row", pk=p.pk)
    assert s.error == "Permission denied."
    call(s, "update", pk=p.pk, form_data={"name": "pear"})
    assert s.error == "Permission denied."
    p.refresh_from_db()
    assert p.name == "apple"

    s = state_for(perms=["testapp.change_product"])
    call(s, "edit_row", pk=str(p.pk))
    assert s.editing_id == str(p.pk)
    assert s.form["name"] == "apple"
    call(s, "set_field", name="name", value="pear")
    call(s, "save")
    p.refresh_from_db()
    assert p.name == "pear"
    assert s.editing_id == ""
    call(s, "update", pk=p.pk, form_data={"price": "-"})
    assert "price" in s.field_errors
    call(s, "update", pk=p.pk, form_data={"price": "9.99"})  # partial: the name is kept
    p.refresh_from_db()
    assert (p.name, str(p.price)) == ("pear", "9.99")
    call(s, "edit_row", pk=987654)
    assert "not found" in s.error


def test_delete_refused_then_allowed():
    a, _b = make_products("apple", "banana")
    s = state_for(perms=["testapp.view_product", "testapp.change_product", "testapp.add_product"])
    call(s, "delete_row", pk=a.pk)
    assert s.error == "Permission denied."
    assert Product.objects.count() == 2
    s = state_for(perms=ALL)
    call(s, "load_rows")
    call(s, "delete_row", pk=a.pk)
    assert s.error == ""
    assert list(Product.objects.values_list("name", flat=True)) == ["banana"]
    assert [r["name"] for r in s.rows] == ["banana"]
    call(s, "delete_row", pk=a.pk)
    assert "not found" in s.error


def test_user_scoped_queryset():
    mine, theirs = Category.objects.create(name="alice"), Category.objects.create(name="bob")
    a, b = make_products("apple", "banana")
    a.category, b.category = mine, theirs
    a.save()
    b.save()
    s = state_for(ScopedCrudState, perms=ALL)
    call(s, "load_rows")
    assert [r["name"] for r in s.rows] == ["apple"]
    call(s, "delete_row", pk=b.pk)  # outside the user's queryset
    assert "not found" in s.error
    call(s, "update", pk=b.pk, form_data={"name": "x"})
    assert "not found" in s.error
    assert Product.objects.filter(name="banana").exists()
    anon = sub(tree(identity(authenticated=False, user_id=None, username="")), ScopedCrudState)
    call(anon, "load_rows")  # "view": None, and the anonymous queryset is empty
    assert (anon.error, anon.rows) == ("", [])
    call(anon, "create", form_data={"name": "z", "price": "1"})
    assert anon.error == "Permission denied."


def test_owner_field_scopes_rows_and_sets_the_owner():
    alice = User.objects.create(username="alice")
    bob = User.objects.create(username="bob")
    Note.objects.create(owner=alice, text="a1")
    theirs = Note.objects.create(owner=bob, text="b1")
    perms = ["testapp.view_note", "testapp.add_note", "testapp.change_note", "testapp.delete_note"]
    s = state_for(NoteState, perms=perms, user_id=str(alice.pk))
    call(s, "load_rows")
    assert [r["text"] for r in s.rows] == ["a1"]
    call(s, "create", form_data={"text": "a2", "owner": bob.pk})  # the owner is not the browser's to choose
    assert s.error == "", s.field_errors
    assert Note.objects.get(text="a2").owner_id == alice.pk
    call(s, "update", pk=theirs.pk, form_data={"text": "mine now"})
    assert "not found" in s.error
    mine = Note.objects.get(text="a1")
    call(s, "update", pk=mine.pk, form_data={"text": "a1!", "owner": bob.pk})
    mine.refresh_from_db()
    assert (mine.text, mine.owner_id) == ("a1!", alice.pk)
    call(s, "delete_row", pk=theirs.pk)
    assert Note.objects.filter(pk=theirs.pk).exists()
    anon = sub(tree(identity(authenticated=False, user_id=None, username="", permissions=perms)), NoteState)
    call(anon, "load_rows")  # an anonymous identity holds no permission
    assert (anon.rows, anon.error) == ([], "Permission denied.")


# --- database connections -----------------------------------------------------------------
#
# Django's connections are per thread; Reflex handlers use the ORM through sync_to_async
# (thread_sensitive=True), which runs in one ORM thread. The set-up below runs there too.
# SQLite's is_usable() is always true and an in-memory database is never really closed,
# so the tests record close() calls on the ORM thread's connection instead.


def in_orm_thread(fn):
    return asyncio.run(sync_to_async(fn, thread_sensitive=True)())


@pytest.fixture
def closes():
    """The close() calls made on the ORM thread's default connection during the test."""
    calls = []

    def install():
        conn = connections["default"]
        real = conn.close

        def close():
            calls.append(threading.get_ident())
            real()

        conn.close = close
        return conn, real

    conn, real = in_orm_thread(install)
    yield calls
    conn.close = real
    conn.settings_dict["CONN_MAX_AGE"] = 0
    conn.close_at = None
    conn.errors_occurred = False
    conn.__dict__.pop("is_usable", None)


def orm_thread_ident():
    return in_orm_thread(threading.get_ident)


def test_connection_past_conn_max_age_is_closed_before_the_handler_query(closes):
    make_products("apple")
    s = state_for(perms=ALL)
    call(s, "load_rows")  # opens the ORM thread's connection
    closes.clear()

    def age():  # what CONN_MAX_AGE = 60 leaves after 60 s
        conn = connections["default"]
        conn.settings_dict["CONN_MAX_AGE"] = 60
        conn.close_at = time.monotonic() - 1

    in_orm_thread(age)
    asyncio.run(Product.objects.acount())  # control: Django's async ORM keeps it
    assert closes == []
    call(s, "load_rows")
    assert closes, "an obsolete connection must be closed"
    assert set(closes) == {orm_thread_ident()}  # in the thread whose connection it is
    assert s.total == 1


def test_broken_connection_is_closed_after_the_error(closes):
    """A connection that raised an error and no longer answers (the server went away) is
    closed when the handler's ORM work ends, so the next event opens a new one."""
    make_products("apple")
    s = state_for(perms=ALL)
    call(s, "load_rows")
    closes.clear()

    def break_it():
        conn = connections["default"]
        conn.errors_occurred = True  # as after an OperationalError
        conn.is_usable = lambda: False

    in_orm_thread(break_it)
    asyncio.run(Product.objects.acount())  # control: nothing notices
    assert closes == []
    call(s, "load_rows")
    assert closes
    assert set(closes) == {orm_thread_ident()}
    assert s.total == 1


def test_database_sync_to_async_in_your_own_handlers(closes):
    make_products("apple", "banana")
    assert asyncio.run(database_sync_to_async(Product.objects.count)) == 2

    def boom():
        raise RuntimeError("handler failed")

    in_orm_thread(lambda: setattr(connections["default"], "is_usable", lambda: False))
    in_orm_thread(lambda: setattr(connections["default"], "errors_occurred", True))
    with pytest.raises(RuntimeError):
        asyncio.run(database_sync_to_async(boom))
    assert closes  # closed even when the work raised
