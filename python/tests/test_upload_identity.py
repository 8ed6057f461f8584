"""Upload handlers get the gateway's identity from X-Isthmus-Identity: real reflex 0.10.1
upload requests (its /_upload endpoint, event processor and state manager) through
starlette's TestClient, with isthmus_reflex.upload's middleware in front."""

import base64
import json
import time
import types
import warnings

import pytest

rx = pytest.importorskip("reflex")

from reflex.app import _ContextMiddleware  # noqa: E402
from reflex.istate.manager.memory import StateManagerMemory  # noqa: E402
from reflex_base.event import Event  # noqa: E402
from reflex_components_core.core._upload import upload  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import StarletteDeprecationWarning  # noqa: E402
from starlette.routing import Route  # noqa: E402

with warnings.catch_warnings():
    # starlette 1.10 would rather the test client used httpx2; httpx is what is installed.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from isthmus_reflex import DjangoUserMixin, login_required, make_injection  # noqa: E402
from isthmus_reflex import upload as isthmus_upload  # noqa: E402
from isthmus_reflex.upload import (  # noqa: E402
    IDENTITY_HEADER,
    UploadIdentityMiddleware,
    decode_identity_header,
    encode_identity_header,
    install_upload_identity,
)
from tests.conftest import BRIDGE_SECRET, shared_reflex_app  # noqa: E402

ALICE = {
    "authenticated": True,
    "user_id": "7",
    "username": "alice",
    "email": "a@x.org",
    "is_staff": True,
    "is_superuser": False,
    "groups": [],
    "permissions": [],
    "session": {"cart_id": "3"},
}

#: What the streaming (background) handler saw, by file name.
STREAMED: dict[str, str] = {}
#: Who the login_required guard of members_upload refused.
DENIED: list[str] = []


class UploadState(DjangoUserMixin, rx.State):
    seen: str = ""
    files: int = 0

    @rx.event
    async def handle_upload(self, files: list[rx.UploadFile]):
        user = self.django_user
        self.files = len(files)
        self.seen = f"{user.username or 'anonymous'}|staff={user.is_staff}|cart={self.django_session.get('cart_id')}"

    @rx.event
    @login_required(on_denied=lambda state: DENIED.append(state.django_user.username or "anonymous"))
    async def members_upload(self, files: list[rx.UploadFile]):
        self.seen = f"member {self.django_user.username}"

    @rx.event
    def whoami(self):
        self.seen = f"event {self.django_user.username or 'anonymous'}"

    @rx.event(background=True)
    async def stream_upload(self, chunks: rx.UploadChunkIterator):
        size, name = 0, "?"
        async for chunk in chunks:
            size += len(chunk.data)
            name = chunk.filename
        STREAMED[name] = f"{self.django_user.username or 'anonymous'}|{size}"


app = shared_reflex_app()


@pytest.fixture
def client():
    """Reflex's backend as App.__call__ assembles it, minus the page compilation: the
    upload route, the api_transformer (our middleware), the context middleware and the
    lifespan that starts the event processor; states in memory."""
    app._state_manager = StateManagerMemory()
    api = Starlette(routes=[Route("/_upload", upload(app), methods=["POST"])])
    top = Starlette(lifespan=app._run_lifespan_tasks)
    top.add_middleware(_ContextMiddleware, reflex_app=app)
    top.mount("", UploadIdentityMiddleware(api))
    with TestClient(top) as test_client:
        yield test_client


def header(identity=ALICE, secret=BRIDGE_SECRET, **kw):
    return encode_identity_header(make_injection(identity, secret, **kw))


def post_upload(client, handler="handle_upload", token="tok-1", identity_headers=(), files=None):
    headers = [
        ("reflex-client-token", token),
        ("reflex-event-handler", f"{UploadState.get_full_name()}.{handler}"),
        *[(IDENTITY_HEADER, value) for value in identity_headers],
    ]
    return client.post(
        "/_upload", headers=headers, files=files or [("files", ("a.txt", b"hello")), ("files", ("b.txt", b"!"))]
    )


def updates(response):
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def seen(response):
    key = UploadState.get_full_name()
    values = [
        u["delta"][key]["seen_rx_state_"] for u in updates(response) if "seen_rx_state_" in u["delta"].get(key, {})
    ]
    # A fresh client token's first delta is Reflex's hydration snapshot ("" here).
    assert values, updates(response)
    return values[-1]


# --- the header ------------------------------------------------------------------------------


def test_header_is_base64url_without_padding_of_the_injection():
    injection = make_injection(ALICE, BRIDGE_SECRET)
    value = encode_identity_header(injection)
    assert "=" not in value
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    decoded = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    assert decoded == injection
    assert decode_identity_header(value) == injection
    assert decode_identity_header(value.encode()) == injection
    # Padding, if a sender adds it, is accepted too.
    assert decode_identity_header(base64.urlsafe_b64encode(json.dumps(injection).encode()).decode()) == injection


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "!!!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b"[1]").decode(),
        base64.urlsafe_b64encode(b'{"payload": 1, "sig": "x"}').decode(),
        base64.urlsafe_b64encode(b'{"payload": "x"}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "A" * (isthmus_upload.MAX_HEADER_LENGTH + 4),
    ],
)
def test_malformed_headers_decode_to_none(value):
    assert decode_identity_header(value) is None


# --- real uploads ----------------------------------------------------------------------------


def test_upload_handler_sees_the_gateway_identity(client):
    response = post_upload(client, identity_headers=[header()])
    assert seen(response) == "alice|staff=True|cart=3"
    # The injection stays on the backend.
    assert "payload" not in response.text
    assert '"isthmus"' not in response.text


def test_guarded_upload_handler(client):
    DENIED.clear()
    assert seen(post_upload(client, "members_upload", identity_headers=[header()])) == "member alice"
    assert DENIED == []
    # Anonymous: the guard refuses, the handler does not run.
    refused = updates(post_upload(client, "members_upload", token="tok-anon"))
    assert "member" not in json.dumps(refused)
    assert DENIED == ["anonymous"]


def test_missing_header_is_anonymous_even_after_an_identified_event(client):
    """Reflex merges router_data over the previous event's: without the explicit anonymous
    marker the upload would inherit the last identified event's user."""
    assert seen(post_upload(client, token="tok-2", identity_headers=[header()])).startswith("alice")
    assert seen(post_upload(client, token="tok-2")) == "anonymous|staff=False|cart=None"


def test_upload_identity_replaces_the_previous_one(client):
    bob = {**ALICE, "user_id": "8", "username": "bob", "is_staff": False, "session": {}}
    assert seen(post_upload(client, token="tok-3", identity_headers=[header()])).startswith("alice")
    assert seen(post_upload(client, token="tok-3", identity_headers=[header(bob)])) == "bob|staff=False|cart=None"


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["garbage"], id="not-base64"),
        pytest.param([base64.urlsafe_b64encode(b"{}").decode()], id="empty-object"),
        pytest.param(["x" * 70000], id="long"),
        pytest.param(lambda: [header(secret="another-secret-0123456789abcdefghijklmnop")], id="wrong-secret"),
        pytest.param(lambda: [header(iat=int(time.time()) - 301)], id="expired"),
        pytest.param(lambda: [header(), header()], id="two-copies"),
        pytest.param(
            lambda: [
                encode_identity_header(
                    {
                        "payload": make_injection(ALICE, BRIDGE_SECRET)["payload"].replace("alice", "admin"),
                        "sig": "0" * 64,
                    }
                )
            ],
            id="forged",
        ),
    ],
)
def test_unverifiable_header_is_anonymous_not_an_error(client, values):
    if callable(values):
        values = values()
    response = post_upload(client, token="tok-bad", identity_headers=values)
    assert seen(response) == "anonymous|staff=False|cart=None"


def test_streaming_background_upload_sees_the_identity(client):
    STREAMED.clear()
    response = post_upload(
        client,
        "stream_upload",
        token="tok-stream",
        identity_headers=[header()],
        files=[("files", ("c.bin", b"x" * 1000))],
    )
    assert response.status_code == 202
    deadline = time.monotonic() + 10
    while "c.bin" not in STREAMED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert STREAMED.get("c.bin") == "alice|1000", STREAMED


def test_streaming_upload_without_header_is_anonymous(client):
    STREAMED.clear()
    response = post_upload(client, "stream_upload", token="tok-stream2", files=[("files", ("d.bin", b"xy"))])
    assert response.status_code == 202
    deadline = time.monotonic() + 10
    while "d.bin" not in STREAMED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert STREAMED.get("d.bin") == "anonymous|2", STREAMED


# --- the pieces --------------------------------------------------------------------------------


class _Namespace:
    async def emit_update(self, update, token):
        pass


async def run_event(event, mark=None):
    """Process ``event`` on a real event processor, optionally inside an upload request's
    mark; return what UploadState.seen became."""
    from reflex_base.event.processor.base_state_processor import BaseStateEventProcessor

    app._state_manager = StateManagerMemory()
    processor = BaseStateEventProcessor().configure(event_namespace=_Namespace())
    deltas = []
    token = isthmus_upload._current.set(mark) if mark is not None else None
    try:
        async with processor:
            async for delta in processor.enqueue_stream_delta("tok-direct", event):
                deltas.append(delta)
    finally:
        if token is not None:
            isthmus_upload._current.reset(token)
    key = UploadState.get_full_name()
    return [d[key]["seen_rx_state_"] for d in deltas if "seen_rx_state_" in d.get(key, {})][-1]


async def test_enqueue_hook_acts_only_inside_an_upload_request():
    isthmus_upload.install_enqueue_hook()
    router_data = {"pathname": "/", "asPath": "/", "isthmus": make_injection(ALICE, BRIDGE_SECRET)}
    event = Event(name=f"{UploadState.get_full_name()}.whoami", router_data=router_data)
    # Outside an upload request (no mark): the event keeps its own injection.
    assert await run_event(event) == "event alice"
    # Inside one whose header did not verify: anonymous, whatever the event carried.
    assert await run_event(event, isthmus_upload._UploadIdentity(None, "test")) == "event anonymous"
    bob = make_injection({**ALICE, "username": "bob"}, BRIDGE_SECRET)
    assert await run_event(event, isthmus_upload._UploadIdentity(bob)) == "event bob"
    # The event itself is not modified (a copy is enqueued).
    assert event.router_data == router_data


def test_install_enqueue_hook_is_idempotent():
    from reflex_base.event.processor.event_processor import EventProcessor

    isthmus_upload.install_enqueue_hook()
    first = EventProcessor.enqueue
    isthmus_upload.install_enqueue_hook()
    assert EventProcessor.enqueue is first


async def test_middleware_marks_only_upload_posts():
    marks = []

    async def inner(scope, receive, send):
        marks.append((scope.get("method"), scope.get("path"), isthmus_upload._current.get()))

    middleware = UploadIdentityMiddleware(inner, upload_path="/_upload")
    value = header().encode()
    for method, path in [("POST", "/_upload"), ("POST", "/_upload/"), ("GET", "/_upload"), ("POST", "/other")]:
        scope = {"type": "http", "method": method, "path": path, "headers": [(b"x-isthmus-identity", value)]}
        await middleware(scope, None, None)
    assert [m[2] is not None for m in marks] == [True, True, False, False]
    assert marks[0][2].injection == decode_identity_header(value)
    assert isthmus_upload._current.get() is None
    # Lifespan and websocket scopes pass through untouched.
    await middleware({"type": "lifespan"}, None, None)
    assert len(marks) == 5


def test_install_upload_identity_composes_with_existing_transformers():
    def other(asgi):
        return asgi

    fresh = types.SimpleNamespace(api_transformer=None)  # all it touches of an rx.App
    assert install_upload_identity(fresh) is fresh
    assert fresh.api_transformer == [UploadIdentityMiddleware]
    install_upload_identity(fresh)
    assert fresh.api_transformer == [UploadIdentityMiddleware]
    fresh.api_transformer = other
    install_upload_identity(fresh)
    assert fresh.api_transformer == [other, UploadIdentityMiddleware]
    fresh.api_transformer = (other,)
    install_upload_identity(fresh)
    assert fresh.api_transformer == [other, UploadIdentityMiddleware]


def test_default_upload_path_is_reflex_s():
    assert UploadIdentityMiddleware(lambda *a: None).upload_path == "/_upload"
