"""DjangoUserMixin and the handler guards on real reflex 0.10.1 State classes."""

import asyncio
import inspect
import json

import pytest

rx = pytest.importorskip("reflex")

from django.contrib.auth.models import AnonymousUser, User  # noqa: E402
from reflex_base.event import Event  # noqa: E402
from reflex_base.event.processor.base_state_processor import BaseStateEventProcessor  # noqa: E402

from isthmus_reflex import (  # noqa: E402
    DjangoUserMixin,
    Identity,
    group_required,
    login_required,
    make_injection,
    permission_required,
    staff_required,
    superuser_required,
)
from tests.conftest import BRIDGE_SECRET, shared_reflex_app  # noqa: E402


def identity(**kw):
    base = {
        "authenticated": True,
        "user_id": "1",
        "username": "alice",
        "email": "a@x.org",
        "is_staff": False,
        "is_superuser": False,
        "groups": [],
        "permissions": [],
        "session": {},
    }
    return {**base, **kw}


ANON = identity(authenticated=False, user_id=None, username="", email="")


class ShopState(DjangoUserMixin, rx.State):
    count: int = 0
    last: str = ""

    @rx.event
    @login_required
    def buy(self):
        self.count += 1

    @rx.event
    @permission_required("shop.add_product", redirect="/denied")
    async def add(self, name: str):
        self.last = name
        self.count += 1

    @rx.event
    @group_required(["editors", "writers"], full_page=False)
    def steps(self):
        self.count += 1
        yield
        self.count += 1

    @rx.event
    @staff_required(login_url="/staff/login/")
    async def stream(self):
        self.count += 1
        yield
        self.count += 1

    @rx.event
    def whoami(self):
        self.last = f"{self.django_user.username}|{self.django_query}|{self.django_session}|{self.django_context}"


class ChildState(ShopState):
    """A substate of a mixin user: inherits the properties and the guarded handlers."""

    @rx.event
    @superuser_required
    def wipe(self):
        self.count = 0


class MoreMixin(DjangoUserMixin):
    """Only mixin bases: reflex 0.10.1 makes this a mixin too (no mixin=True needed)."""

    def shout(self):
        return self.django_user.username.upper()


class SoloState(MoreMixin, rx.State):
    """A composed mixin; the non-mixin base rx.State makes it a real state."""

    last: str = ""

    @rx.event(background=True)
    @login_required
    async def slow(self):
        async with self:
            self.last = self.django_user.username


def tree(ident=None, *, as_path="/shop?page=2", query=None, secret=BRIDGE_SECRET, iat=None, extra=None):
    """A root state with router_data set the way reflex's event processor sets it."""
    root = rx.State(_reflex_internal_init=True)
    router_data = {
        "pathname": "/shop",
        "asPath": as_path,
        "query": {"page": "2"},
        "headers": {"origin": "http://127.0.0.1:3000"},
        "token": "tok",
        "sid": "sid",
    }
    if ident is not None:
        router_data["isthmus"] = make_injection(ident, secret, query=query or {"page": "2"}, iat=iat)
    if extra:
        router_data.update(extra)
    previous = root.router_data
    root.router_data = root._update_router_vars(router_data, previous)
    return root


def sub(root, cls):
    return root.get_substate(cls.get_full_name().split("."))


def call(state, handler_name, **payload):
    """Run a handler as reflex's process_event does: fn(state, **payload), then drain generators."""
    fn = type(state).event_handlers[handler_name].fn
    result = fn(state, **payload)

    async def drain(r):
        if inspect.isawaitable(r):
            return await r
        if inspect.isasyncgen(r):
            return [x async for x in r]
        if inspect.isgenerator(r):
            return list(r)
        return r

    return asyncio.run(drain(result))


def nav_target(spec):
    """(kind, url) of the navigation event a refusal returns."""
    args = {str(k): getattr(v, "_var_value", None) for k, v in spec.args}
    name = spec.handler.fn.__qualname__
    if name == "_redirect":
        return "spa", args["path"]
    assert name == "_call_script", name
    code = args["javascript_code"]
    assert code.startswith("window.location.assign(")
    assert code.endswith(")")
    return "document", json.loads(code[len("window.location.assign(") : -1])


# --- registration -------------------------------------------------------------------------


def test_handlers_are_registered_and_helpers_are_not():
    handlers = set(ShopState.event_handlers)
    assert {"buy", "add", "steps", "stream", "whoami"} <= handlers
    for helper in (
        "get_user",
        "_get_user",
        "update_session",
        "_update_session",
        "django_user",
        "django_session",
        "django_query",
        "isthmus",
    ):
        assert helper not in handlers
        assert helper not in ShopState.vars
    assert {"wipe", "buy"} <= set(ChildState.event_handlers) | set(ShopState.event_handlers)
    assert MoreMixin._mixin is True
    assert SoloState._mixin is False
    assert SoloState.get_parent_state() is rx.State
    assert "shout" in SoloState.event_handlers  # a public function of a mixin becomes a handler
    assert "slow" in SoloState.event_handlers
    assert SoloState.event_handlers["slow"].is_background


def test_guarded_handlers_keep_name_signature_and_kind():
    add = ShopState.event_handlers["add"].fn
    assert add.__name__ == "add"
    assert list(inspect.signature(add).parameters) == ["self", "name"]
    assert inspect.iscoroutinefunction(add)
    assert inspect.isgeneratorfunction(ShopState.event_handlers["steps"].fn)
    assert inspect.isasyncgenfunction(ShopState.event_handlers["stream"].fn)
    # The event spec the frontend gets is built from the real signature.
    spec = ShopState.add("x")
    assert spec.handler.fn.__qualname__.endswith("add")


def test_mixin_cannot_be_instantiated():
    with pytest.raises(Exception, match="mixin"):
        DjangoUserMixin(_reflex_internal_init=True)


# --- the mixin's properties ----------------------------------------------------------------


def test_router_data_lives_on_the_root_and_substates_read_it():
    root = tree(identity(session={"cart_id": "3"}), query={"page": "2", "q": "shoes"})
    state = sub(root, ShopState)
    assert state.router_data is root.router_data
    assert state.django_user.username == "alice"
    assert state.django_user.authenticated
    assert state.django_session == {"cart_id": 3}
    assert state.django_query == {"page": "2", "q": "shoes"}
    assert state.django_context == {}
    call(state, "whoami")
    assert state.last == "alice|{'page': '2', 'q': 'shoes'}|{'cart_id': 3}|{}"
    assert sub(root, ChildState).django_user.username == "alice"


def test_no_injection_is_anonymous():
    state = sub(tree(None), ShopState)
    assert state.django_user == Identity()
    assert not state.isthmus.verified
    assert "no identity injected" in state.isthmus.reason


def test_client_supplied_unsigned_identity_is_ignored():
    forged = {"payload": json.dumps({"v": 1, "iat": 0, "identity": identity(is_superuser=True)}), "sig": "0" * 64}
    state = sub(tree(None, extra={"isthmus": forged}), ShopState)
    assert state.django_user.authenticated is False
    assert state.isthmus.reason == "bad signature"


def test_router_data_is_not_sent_to_the_browser():
    root = tree(identity())
    # (isthmus_reflex.UserState sends the identity on purpose when a test module loaded it.)
    delta = json.dumps({k: v for k, v in root.get_delta().items() if "userstate" not in k}, default=str)
    assert "isthmus" not in delta
    assert "alice" not in delta


# --- guards on real handlers ---------------------------------------------------------------


def test_login_required_allows_and_refuses():
    state = sub(tree(identity()), ShopState)
    assert call(state, "buy") is None
    assert state.count == 1
    anon = sub(tree(ANON, as_path="/shop?page=2"), ShopState)
    spec = call(anon, "buy")
    assert anon.count == 0
    assert nav_target(spec) == ("document", "/accounts/login/?next=/shop%3Fpage%3D2")


def test_permission_required_async():
    allowed = sub(tree(identity(permissions=["shop.add_product"])), ShopState)
    assert call(allowed, "add", name="hat") is None
    assert (allowed.count, allowed.last) == (1, "hat")
    superuser = sub(tree(identity(is_superuser=True)), ShopState)
    assert call(superuser, "add", name="cap") is None
    assert superuser.last == "cap"
    # Logged in without the permission: the redirect= target.
    lacking = sub(tree(identity(permissions=["shop.view_product"])), ShopState)
    assert nav_target(call(lacking, "add", name="x")) == ("document", "/denied")
    assert lacking.count == 0
    # Anonymous: the login URL with next=.
    anon = sub(tree(ANON, as_path="/"), ShopState)
    assert nav_target(call(anon, "add", name="x")) == ("document", "/accounts/login/?next=/")


def test_group_required_generator_spa_redirect():
    member = sub(tree(identity(groups=["writers"])), ShopState)
    call(member, "steps")
    assert member.count == 2
    outsider = sub(tree(identity(groups=["readers"]), as_path="/a/b"), ShopState)
    events = call(outsider, "steps")
    assert len(events) == 1
    assert nav_target(events[0]) == ("spa", "/accounts/login/?next=/a/b")
    assert outsider.count == 0


def test_staff_required_async_generator_custom_login_url():
    staff = sub(tree(identity(is_staff=True)), ShopState)
    call(staff, "stream")
    assert staff.count == 2
    plain = sub(tree(identity(), as_path="/x"), ShopState)
    events = call(plain, "stream")
    assert [nav_target(e) for e in events] == [("document", "/staff/login/?next=/x")]
    assert plain.count == 0


def test_superuser_required_on_a_substate():
    child = sub(tree(identity(is_superuser=True)), ChildState)
    child.count = 5
    call(child, "wipe")
    assert child.count == 0
    other = sub(tree(identity(is_staff=True)), ChildState)
    other.count = 5
    assert nav_target(call(other, "wipe"))[0] == "document"
    assert other.count == 5


def test_expired_injection_is_refused():
    import time

    state = sub(tree(identity(), iat=int(time.time()) - 301), ShopState)
    assert nav_target(call(state, "buy"))[1].startswith("/accounts/login/")
    assert state.count == 0


def test_unsafe_as_path_falls_back_to_root():
    anon = sub(tree(ANON, as_path="//evil.example/x"), ShopState)
    assert nav_target(call(anon, "buy"))[1] == "/accounts/login/?next=/"


# --- update_session --------------------------------------------------------------------------


def test_update_session_sends_this_event_s_injection_and_later_reads_see_it(monkeypatch):
    from isthmus_reflex import session as rsession

    sent = []

    async def fake_write(router_data, values, delete):
        sent.append((router_data["isthmus"], values, tuple(delete)))
        rsession._remember("v1.ref", {"cart_id": "42"})
        return {"cart_id": 42}

    monkeypatch.setattr("isthmus_reflex.state.write_session", fake_write)
    rsession._reset_overlays()
    try:
        state = sub(tree(identity(session={"cart_id": "3"}, session_ref="v1.ref")), ShopState)
        assert state.django_session == {"cart_id": 3}
        assert asyncio.run(state.update_session({"cart_id": 40}, delete=["theme"], cart_id=42)) == {"cart_id": 42}
        assert sent == [(state.router_data["isthmus"], {"cart_id": 42}, ("theme",))]
        assert state.django_session == {"cart_id": 42}, "the rest of the handler sees the write"
        other = sub(tree(identity(session={"cart_id": "3"}, session_ref="v1.another")), ShopState)
        assert other.django_session == {"cart_id": 3}, "another session's events do not"
    finally:
        rsession._reset_overlays()


# --- get_user ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_get_user_loads_the_model_instance():
    alice = User.objects.create_user("alice", "a@x.org", "pw")
    state = sub(tree(identity(user_id=str(alice.pk))), ShopState)
    user = asyncio.run(state.get_user())
    assert isinstance(user, User)
    assert user.pk == alice.pk


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "ident",
    [ANON, identity(user_id="999999"), identity(user_id="not-a-number"), None],
)
def test_get_user_anonymous_cases(ident):
    User.objects.create_user("alice", "a@x.org", "pw")
    state = sub(tree(ident), ShopState)
    assert isinstance(asyncio.run(state.get_user()), AnonymousUser)


@pytest.mark.django_db(transaction=True)
def test_get_user_deactivated_is_anonymous():
    bob = User.objects.create_user("bob", "", "pw", is_active=False)
    state = sub(tree(identity(user_id=str(bob.pk))), ShopState)
    assert isinstance(asyncio.run(state.get_user()), AnonymousUser)


# --- through reflex's own event processor --------------------------------------------------

app = shared_reflex_app()  # the processor resolves handlers through the registered app


class _Namespace:
    """Stands in for the Socket.IO namespace: collects what would go to the browser."""

    def __init__(self):
        self.updates = []

    async def emit_update(self, update, token):
        self.updates.append(update)


async def _process(events):
    """Run events, one after the other, for one client token; return (deltas, frontend events)."""
    namespace = _Namespace()
    processor = BaseStateEventProcessor().configure(event_namespace=namespace)
    deltas = []
    async with processor:
        for event in events:
            async for delta in processor.enqueue_stream_delta("token-1", event):
                deltas.append(delta)
        await asyncio.sleep(0.05)
    frontend = [e for u in namespace.updates for e in u.events]
    return deltas, frontend


def event(cls, handler, router_data, **payload):
    return Event(name=f"{cls.get_full_name()}.{handler}", router_data=router_data, payload=payload)


def router_data(ident, as_path="/shop", **kw):
    data = {"pathname": as_path.split("?")[0], "asPath": as_path, "query": {}}
    if ident is not None:
        data["isthmus"] = make_injection(ident, BRIDGE_SECRET, **kw)
    return data


def values(deltas, cls, name):
    """The values a handler set for ``cls.name``, leaving out the (re)hydration snapshot."""
    key = cls.get_full_name()
    root = rx.State.get_full_name()
    return [
        d[key][f"{name}_rx_state_"]
        for d in deltas
        if f"{name}_rx_state_" in d.get(key, {}) and "is_hydrated_rx_state_" not in d.get(root, {})
    ]


def test_processor_allowed_event_sees_the_identity():
    deltas, frontend = asyncio.run(
        _process([event(ShopState, "whoami", router_data(identity(session={"cart_id": "3"}), query={"q": "x"}))])
    )
    assert values(deltas, ShopState, "last") == ["alice|{'q': 'x'}|{'cart_id': 3}|{}"]
    assert frontend == []
    # The injection stays on the backend: no delta carries it.
    assert '"isthmus"' not in json.dumps(deltas, default=str)


def test_processor_refused_event_navigates_to_login():
    deltas, frontend = asyncio.run(_process([event(ShopState, "buy", router_data(ANON, "/shop?page=2"))]))
    assert values(deltas, ShopState, "count") == []
    assert [e.name for e in frontend] == ["_call_script"]
    assert "/accounts/login/?next=/shop%3Fpage%3D2" in frontend[0].payload["javascript_code"]


def test_processor_forged_injection_is_refused():
    forged = router_data(None)
    forged["isthmus"] = {"payload": json.dumps({"v": 1, "iat": 0, "identity": identity()}), "sig": "f" * 64}
    deltas, frontend = asyncio.run(_process([event(ShopState, "buy", forged)]))
    assert values(deltas, ShopState, "count") == []
    assert [e.name for e in frontend] == ["_call_script"]


def test_processor_logout_between_events_takes_effect():
    deltas, frontend = asyncio.run(
        _process(
            [
                event(ShopState, "buy", router_data(identity())),
                event(ShopState, "buy", router_data(ANON)),
            ]
        )
    )
    assert values(deltas, ShopState, "count") == [1]
    assert [e.name for e in frontend] == ["_call_script"]


def test_processor_keeps_the_last_injection_for_events_without_one():
    """Reflex merges router_data across events: an event lacking the key keeps the previous one
    (the gateway injects into every event, so through it this never happens)."""
    deltas, _ = asyncio.run(
        _process(
            [
                event(ShopState, "buy", router_data(identity())),
                event(ShopState, "buy", router_data(None)),
            ]
        )
    )
    assert values(deltas, ShopState, "count") == [1, 2]


def test_processor_background_task():
    deltas, frontend = asyncio.run(_process([event(SoloState, "slow", router_data(identity()))]))
    assert values(deltas, SoloState, "last") == ["alice"]
    deltas, frontend = asyncio.run(_process([event(SoloState, "slow", router_data(ANON))]))
    assert values(deltas, SoloState, "last") == []
    assert [e.name for e in frontend] == ["_call_script"]


@pytest.mark.django_db(transaction=True)
def test_end_to_end_from_the_identity_view(client, settings):
    """Django's identity answer, signed as the gateway does, gives the same user in a handler."""
    from django.contrib.auth.models import Group, Permission

    alice = User.objects.create_user("alice", "a@x.org", "pw")
    group = Group.objects.create(name="editors")
    alice.groups.add(group)
    alice.user_permissions.add(Permission.objects.get(codename="add_product"))
    client.force_login(alice)
    session = client.session
    session["cart_id"] = 3
    session.save()
    answer = client.get("/_isthmus/identity", HTTP_X_ISTHMUS_SECRET=settings.ISTHMUS_IDENTITY_SECRET)
    ident = json.loads(answer.content)

    class Probe(DjangoUserMixin, rx.State):
        seen: str = ""

        @rx.event
        @permission_required("testapp.add_product")
        @group_required("editors")
        async def look(self):
            user = await self.get_user()
            self.seen = f"{user.username}:{self.django_user.user_id}:{self.django_session['cart_id']}"

    deltas, frontend = asyncio.run(_process([event(Probe, "look", router_data(ident))]))
    assert frontend == []
    assert values(deltas, Probe, "seen") == [f"alice:{alice.pk}:3"]
