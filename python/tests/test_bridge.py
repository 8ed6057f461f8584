"""verify_injection: the signed identity in router_data["isthmus"] (no Reflex, no Django needed)."""

import hashlib
import hmac
import json
import logging
import time

import pytest

from isthmus_reflex import (
    ANONYMOUS,
    BridgeContext,
    Identity,
    make_injection,
    set_bridge_secret,
    sign_payload,
    verify_injection,
)
from isthmus_reflex.bridge import SECRET_ENV, verified_identity
from tests.conftest import BRIDGE_SECRET

NOW = 1_750_000_000

ALICE = {
    "authenticated": True,
    "user_id": "1",
    "username": "alice",
    "email": "a@x.org",
    "first_name": "Alice",
    "last_name": "Liddell",
    "is_staff": False,
    "is_superuser": False,
    "groups": ["editors"],
    "permissions": ["shop.add_product", "shop.view_product"],
    "session": {"cart_id": "3", "theme": '"dark"', "prefs": '{"a": [1, 2]}'},
}


def signed(identity=ALICE, secret=BRIDGE_SECRET, iat=NOW, **kw):
    return {"pathname": "/", "isthmus": make_injection(identity, secret, iat=iat, **kw)}


def raw(payload_obj, secret=BRIDGE_SECRET):
    text = payload_obj if isinstance(payload_obj, str) else json.dumps(payload_obj)
    return {"isthmus": {"payload": text, "sig": sign_payload(text, secret)}}


def good_payload(**overrides):
    return {"v": 1, "iat": NOW, "identity": ALICE, "query": {"page": "2"}, "context": {}, **overrides}


def test_good_injection():
    ctx = verify_injection(signed(query={"page": "2"}, context={"tenant": "acme"}), now=NOW)
    assert ctx.verified
    assert ctx.reason is None
    assert ctx.iat == NOW
    assert ctx.query == {"page": "2"}
    assert ctx.context == {"tenant": "acme"}
    user = ctx.identity
    assert user == Identity(
        authenticated=True,
        user_id="1",
        username="alice",
        email="a@x.org",
        first_name="Alice",
        last_name="Liddell",
        groups=("editors",),
        permissions=frozenset({"shop.add_product", "shop.view_product"}),
        session={"cart_id": 3, "theme": "dark", "prefs": {"a": [1, 2]}},
    )
    assert user.is_authenticated
    assert not user.is_anonymous
    assert user.pk == "1"
    assert user.has_perm("shop.add_product")
    assert not user.has_perm("shop.delete_product")
    assert user.has_perms(["shop.add_product", "shop.view_product"])
    assert user.in_group("editors")
    assert user.in_group("x", "editors")
    assert not user.in_group("admins")


def test_signature_is_hmac_sha256_hex_of_utf8_payload():
    text = json.dumps(good_payload(identity={**ALICE, "username": "zoë"}), ensure_ascii=False)
    sig = hmac.new(BRIDGE_SECRET.encode(), text.encode("utf-8"), hashlib.sha256).hexdigest()
    assert sign_payload(text, BRIDGE_SECRET) == sig
    ctx = verify_injection({"isthmus": {"payload": text, "sig": sig}}, now=NOW)
    assert ctx.verified
    assert ctx.identity.username == "zoë"


def test_uppercase_hex_signature_is_accepted():
    data = signed()
    data["isthmus"]["sig"] = data["isthmus"]["sig"].upper()
    assert verify_injection(data, now=NOW).verified


def test_superuser_has_every_perm():
    ctx = verify_injection(signed({**ALICE, "is_superuser": True, "permissions": []}), now=NOW)
    assert ctx.identity.has_perm("anything.at_all")


def test_anonymous_identity_keeps_only_session():
    anon = {
        "authenticated": False,
        "user_id": None,
        "username": "",
        "email": "",
        "is_staff": False,
        "is_superuser": False,
        "groups": [],
        "permissions": [],
        "session": {"cart_id": "7"},
    }
    ctx = verify_injection(signed(anon), now=NOW)
    assert ctx.verified
    assert ctx.identity == Identity(session={"cart_id": 7})
    assert not ctx.identity.has_perm("x.y")
    assert not ctx.identity.in_group("editors")


# --- the signature is what makes it trusted ----------------------------------------------


def test_forged_identity_is_anonymous():
    """Fails if the signature check is removed: a client-made payload must never be trusted."""
    forged = json.dumps(good_payload(identity={**ALICE, "is_superuser": True}))
    for sig in ("0" * 64, sign_payload(forged, "guessed-secret"), "", "zz"):
        ctx = verify_injection({"isthmus": {"payload": forged, "sig": sig}}, now=NOW)
        assert ctx == BridgeContext(reason="bad signature")
        assert ctx.identity.authenticated is False


def test_tampered_payload_is_anonymous():
    data = signed()
    data["isthmus"]["payload"] = data["isthmus"]["payload"].replace('"is_superuser":false', '"is_superuser":true')
    assert '"is_superuser":true' in data["isthmus"]["payload"]
    ctx = verify_injection(data, now=NOW)
    assert not ctx.verified
    assert ctx.identity == ANONYMOUS
    assert ctx.reason == "bad signature"


def test_wrong_secret_is_anonymous():
    ctx = verify_injection(signed(), secret="another-secret", now=NOW)
    assert ctx.reason == "bad signature"


def test_secret_from_environment_and_explicit(monkeypatch):
    data = signed(secret="explicit-secret-xyz")
    assert verify_injection(data, now=NOW).reason == "bad signature"
    set_bridge_secret("explicit-secret-xyz")
    assert verify_injection(data, now=NOW).verified
    set_bridge_secret(None)
    monkeypatch.setenv("ISTHMUS_BRIDGE_SECRET", "explicit-secret-xyz")
    assert verify_injection(data, now=NOW).verified


def test_no_secret_configured_trusts_nothing(monkeypatch):
    monkeypatch.delenv("ISTHMUS_BRIDGE_SECRET")
    ctx = verify_injection(signed(secret=""), now=NOW)
    assert not ctx.verified
    assert "no bridge secret" in ctx.reason


# --- time window ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "ok"),
    [(0, True), (300, True), (301, False), (10_000, False), (-60, True), (-61, False), (-10_000, False)],
)
def test_iat_window(age, ok):
    ctx = verify_injection(signed(iat=NOW - age), now=NOW)
    assert ctx.verified is ok
    if not ok:
        assert ctx.identity == ANONYMOUS
        assert ctx.reason in ("expired (iat older than 300 s)", "iat in the future")


def test_default_now_is_the_clock():
    assert verify_injection(signed(iat=None)).verified
    assert not verify_injection(signed(iat=NOW - 10 * 365 * 86400)).verified


# --- absent or malformed ----------------------------------------------------------------


@pytest.mark.parametrize(
    "router_data",
    [None, {}, {"pathname": "/"}, {"isthmus": None}, [], "isthmus", 42],
)
def test_missing_is_anonymous(router_data):
    ctx = verify_injection(router_data, now=NOW)
    assert not ctx.verified
    assert ctx.identity == ANONYMOUS
    assert ctx.reason


@pytest.mark.parametrize(
    "injection",
    [
        "a string",
        ["payload", "sig"],
        {"payload": "{}"},
        {"sig": "00"},
        {"payload": 1, "sig": "00"},
        {"payload": {"v": 1}, "sig": "00"},
        {"payload": "{}", "sig": None},
        {"payload": "{}", "sig": "é" * 64},
    ],
)
def test_malformed_injection(injection):
    ctx = verify_injection({"isthmus": injection}, now=NOW)
    assert not ctx.verified
    assert ctx.identity == ANONYMOUS


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "payload is not JSON"),
        ('["v", 1]', "payload is not a JSON object"),
        (good_payload(v=2), "unsupported payload version 2"),
        (good_payload(v="1"), "unsupported payload version '1'"),
        (good_payload(v=True), "unsupported payload version True"),
        ({k: v for k, v in good_payload().items() if k != "v"}, "unsupported payload version None"),
        (good_payload(iat="1750000000"), "iat is not an integer"),
        (good_payload(iat=1750000000.5), "iat is not an integer"),
        (good_payload(iat=None), "iat is not an integer"),
        (good_payload(identity=None), "identity is not an object"),
        (good_payload(identity={**ALICE, "authenticated": "yes"}), "authenticated is not a boolean"),
        (good_payload(identity={**ALICE, "user_id": 1}), "user_id is not a string"),
        (good_payload(identity={**ALICE, "user_id": None}), "authenticated identity without user_id"),
        (good_payload(identity={**ALICE, "username": None}), "username is not a string"),
        (good_payload(identity={**ALICE, "is_staff": 1}), "is_staff is not a boolean"),
        (good_payload(identity={**ALICE, "groups": "editors"}), "groups is not a list of strings"),
        (good_payload(identity={**ALICE, "permissions": [1]}), "permissions is not a list of strings"),
        (good_payload(identity={**ALICE, "session": {"cart_id": 3}}), "session is not an object of strings"),
        (good_payload(identity={**ALICE, "session": {"cart_id": "{oops"}}), "session value is not JSON text"),
        (good_payload(query={"page": 2}), "query is not an object of strings"),
        (good_payload(query=["page"]), "query is not an object of strings"),
        (good_payload(context={"k": None}), "context is not an object of strings"),
    ],
)
def test_garbage_types_even_when_signed(payload, reason):
    ctx = verify_injection(raw(payload), now=NOW)
    assert not ctx.verified
    assert ctx.identity == ANONYMOUS
    assert reason in ctx.reason


def test_missing_query_and_context_default_to_empty():
    payload = {k: v for k, v in good_payload().items() if k not in ("query", "context")}
    ctx = verify_injection(raw(payload), now=NOW)
    assert ctx.verified
    assert ctx.query == {}
    assert ctx.context == {}


def test_unknown_keys_are_ignored():
    ctx = verify_injection(raw(good_payload(extra=1, identity={**ALICE, "future": True})), now=NOW)
    assert ctx.verified


def test_results_do_not_share_mutable_state():
    data = signed()
    first = verify_injection(data, now=NOW)
    first.identity.session["prefs"]["a"].append(99)
    first.query["x"] = "y"
    second = verify_injection(data, now=NOW)
    assert second.identity.session["prefs"] == {"a": [1, 2]}
    assert "x" not in second.query
    anon = verify_injection(None)
    anon.identity.session["k"] = 1
    assert verify_injection(None).identity.session == {}


def test_a_repeated_payload_is_still_checked_for_time_signature_and_secret():
    # The gateway repeats a connection's payload within a second; verified payloads are
    # cached, but only what depends on the payload alone.
    data = signed()
    assert verify_injection(data, now=NOW).verified
    assert verify_injection(data, now=NOW).verified
    assert verify_injection(data, now=NOW + 301).reason == "expired (iat older than 300 s)"
    forged = {**data, "isthmus": {**data["isthmus"], "sig": "0" * 64}}
    assert verify_injection(forged, now=NOW).reason == "bad signature"
    assert verify_injection(data, secret="another-secret-another-secret-0123456789", now=NOW).reason == "bad signature"
    assert verify_injection(data, now=NOW).identity.username == ALICE["username"]


# --- logging ---------------------------------------------------------------------------


def test_warns_once_per_reason(caplog):
    caplog.set_level(logging.DEBUG, logger="isthmus_reflex")
    for _ in range(3):
        verify_injection({}, now=NOW)
        verify_injection(signed(iat=NOW - 1000), now=NOW)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "no identity injected" in warnings[0].getMessage()
    assert "expired" in warnings[1].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4


def test_readme_test_vector():
    """The vector in python/README.md verifies, so the Rust side can test against it."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    lines = {}
    for line in readme.splitlines():
        for key in ("secret:", "payload:", "sig:"):
            if line.startswith(key):
                lines[key] = line[len(key) :].strip()
    assert set(lines) == {"secret:", "payload:", "sig:"}
    assert sign_payload(lines["payload:"], lines["secret:"]) == lines["sig:"]
    data = {"isthmus": {"payload": lines["payload:"], "sig": lines["sig:"]}}
    ctx = verify_injection(data, secret=lines["secret:"], now=1_750_000_000)
    assert ctx.verified
    assert ctx.identity.username == "alice"
    assert ctx.identity.session == {"cart_id": 3}


def test_minimal_anonymous_identity_is_accepted():
    """Only `authenticated` is required; absent fields take the anonymous defaults."""
    ctx = verify_injection(raw(good_payload(identity={"authenticated": False})), now=NOW)
    assert ctx.verified
    assert ctx.identity == ANONYMOUS


def test_gateway_payload_layout():
    """The exact text layout the Rust injector writes (host/src/bridge/inject.rs) verifies."""
    identity_json = json.dumps(ALICE, separators=(",", ":"))
    text = '{"v":1,"iat":' + str(NOW) + ',"identity":' + identity_json + ',"query":{"page":"2"},"context":{"rule":"0"}}'
    sig = hmac.new(b"k", text.encode(), hashlib.sha256).hexdigest()
    ctx = verify_injection({"isthmus": {"payload": text, "sig": sig}}, secret="k", now=NOW)
    assert ctx.verified
    assert ctx.context == {"rule": "0"}
    assert ctx.identity.username == "alice"


def test_cached_results_are_built_like_the_dataclasses_constructors():
    # context_now builds Identity and BridgeContext without their __init__ (speed): the
    # objects must still be whole (every field set) and equal to constructed ones.
    import dataclasses

    for payload in (good_payload(), good_payload(identity={"authenticated": False, "session": {"k": "1"}})):
        data = raw(payload)
        for _ in range(2):  # uncached, then cached
            ctx = verify_injection(data, now=NOW)
            assert ctx.verified
            for obj in (ctx, ctx.identity):
                assert set(vars(obj)) == {f.name for f in dataclasses.fields(obj)}
            rebuilt = BridgeContext(
                identity=Identity(**{f.name: getattr(ctx.identity, f.name) for f in dataclasses.fields(Identity)}),
                query=dict(ctx.query),
                context=dict(ctx.context),
                iat=ctx.iat,
                verified=True,
            )
            assert ctx == rebuilt
            assert hash(ctx.identity) == hash(rebuilt.identity)
            with pytest.raises(dataclasses.FrozenInstanceError):
                ctx.identity.username = "mallory"
    anon = verify_injection(raw(good_payload(identity={"authenticated": False})), now=NOW).identity
    assert anon == ANONYMOUS
    assert anon.is_anonymous
    assert anon.session == {}


def test_verified_identity_is_verify_injections_identity(monkeypatch):
    # identity_of's shortcut (no BridgeContext built) must judge every case the same way.
    monkeypatch.setenv(SECRET_ENV, BRIDGE_SECRET)
    now = int(time.time())
    good = signed(iat=now)
    cases = {
        "good": good,
        "forged": {**good, "isthmus": {**good["isthmus"], "sig": "0" * 64}},
        "expired": signed(iat=now - 1000),
        "future": signed(iat=now + 1000),
        "missing": {"pathname": "/"},
        "not a mapping": None,
        "anonymous": signed({"authenticated": False, "session": {"k": "1"}}, iat=now),
    }
    for name, data in cases.items():
        for _ in range(2):  # uncached, then cached
            assert verified_identity(data) == verify_injection(data).identity, name
    assert verified_identity(cases["good"]).username == "alice"
    assert verified_identity(cases["forged"]) == ANONYMOUS
    first = verified_identity(good)
    first.session["prefs"]["a"].append(99)
    assert verified_identity(good).session["prefs"] == {"a": [1, 2]}
