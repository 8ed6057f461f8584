"""Database connections of ModelState handlers on a real PostgreSQL server: the server
ends the handler's persistent connection underneath it (as a restart or an idle timeout
does). Django's own async ORM keeps failing on the dead connection, since nothing in a
Reflex process calls close_old_connections(); ModelState's handlers recover.

Needs ISTHMUS_TEST_POSTGRES (a postgresql:// URL of a server where the user may create
the test database) and psycopg; skipped otherwise.
"""

import asyncio
import os

import pytest

rx = pytest.importorskip("reflex")

if not os.environ.get("ISTHMUS_TEST_POSTGRES"):
    pytest.skip("ISTHMUS_TEST_POSTGRES is not set", allow_module_level=True)
pytest.importorskip("psycopg")

from asgiref.sync import sync_to_async  # noqa: E402
from django.db import Error as DatabaseError  # noqa: E402
from django.db import connections  # noqa: E402

from isthmus_reflex import ModelState  # noqa: E402
from tests.test_reflex_state import call, identity, sub, tree  # noqa: E402
from tests.testapp.models import Product  # noqa: E402

pytestmark = pytest.mark.django_db(databases=["default", "pg"], transaction=True)


class PgProductState(ModelState, rx.State):
    class Meta:
        model = Product
        ordering = ("name",)

    def get_queryset(self):
        return Product.objects.using("pg").all()


def in_orm_thread(fn):
    return asyncio.run(sync_to_async(fn, thread_sensitive=True)())


def kill_orm_connection():
    """The server ends the ORM thread's session (pg_terminate_backend from another session)."""

    def pid():
        with connections["pg"].cursor() as cur:
            cur.execute("select pg_backend_pid()")
            return cur.fetchone()[0]

    backend = in_orm_thread(pid)
    with connections["pg"].cursor() as cur:  # the test thread's own connection
        cur.execute("select pg_terminate_backend(%s)", [backend])
        assert cur.fetchone()[0] is True
    return backend


@pytest.fixture
def state():
    Product.objects.using("pg").create(name="kettle", price="49.00")
    s = sub(tree(identity(is_superuser=True)), PgProductState)
    yield s
    in_orm_thread(lambda: connections["pg"].close())


def test_plain_async_orm_stays_broken_after_the_server_ends_the_connection(state):
    call(state, "load_rows")
    assert state.total == 1
    kill_orm_connection()
    for _ in range(3):  # every later event fails too: nobody closes the dead connection
        with pytest.raises(DatabaseError):
            asyncio.run(Product.objects.using("pg").acount())


def test_model_state_recovers_on_the_next_event(state):
    call(state, "load_rows")
    first = in_orm_thread(lambda: connections["pg"].connection.info.backend_pid)
    kill_orm_connection()
    # The event that meets the dead connection fails (the error marks the connection)...
    with pytest.raises(DatabaseError):
        call(state, "load_rows")
    # ...and the handler closed it on the way out, so the next event gets a new one.
    call(state, "load_rows")
    assert state.total == 1
    assert in_orm_thread(lambda: connections["pg"].connection.info.backend_pid) != first


def test_with_health_checks_not_even_one_event_fails(state):
    conn_settings = connections["pg"].settings_dict
    in_orm_thread(lambda: connections["pg"].close())
    conn_settings["CONN_HEALTH_CHECKS"] = True
    try:
        call(state, "load_rows")  # connects with health checks on
        kill_orm_connection()
        call(state, "load_rows")  # close_old_connections() re-arms the check; it reconnects
        assert state.total == 1
    finally:
        conn_settings["CONN_HEALTH_CHECKS"] = False
