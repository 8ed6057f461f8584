"""Unit tests of app.py in plain CPython: run them with ./test.sh."""

from __future__ import annotations

import json
import unittest

from componentize_py_types import Err
from fakes import ANONYMOUS, FakeEvent, FakeIdentity, FakeRequest
from wit_world.imports import bridging, refusals, users

import app

ANN = FakeIdentity("ann")  # logged in, not staff
STAFF = FakeIdentity("sam", is_staff=True)

CONFIG = {
    "staff_only": ["*____admin_state.*", "state.shop.delete_?"],
    "staff_pages": ["/dashboard"],
    "banned": ["state.legacy.drop_all"],
    "context": {"tenant": "acme", "app": "shop"},
}
ALLOW = bridging.Verdict_Allow([("app", "shop"), ("tenant", "acme")])
LOG_IN = bridging.Verdict_Refuse(refusals.Refusal_LoginRequired("/admin/login/"))

ADMIN_HANDLER = "reflex___state____state.shop___pages____admin_state.purge"


class SetupTest(unittest.TestCase):
    def setup_error(self, config: str) -> str:
        with self.assertRaises(Err) as caught:
            app.WitWorld().setup(config)
        error = caught.exception.value
        self.assertIsInstance(error, str)
        return str(error)

    def test_empty_config(self) -> None:
        app.WitWorld().setup("{}")  # returns None: `ok`
        self.assertEqual(app.CONFIG, app.Config())

    def test_full_config(self) -> None:
        app.WitWorld().setup(json.dumps(CONFIG | {"login_url": "/accounts/login/"}))
        self.assertEqual(
            app.CONFIG,
            app.Config(
                staff_only=("*____admin_state.*", "state.shop.delete_?"),
                staff_pages=("/dashboard",),
                banned=frozenset({"state.legacy.drop_all"}),
                login_url="/accounts/login/",
                context=(("app", "shop"), ("tenant", "acme")),
            ),
        )

    def test_unknown_key_is_refused_by_name(self) -> None:
        self.assertEqual(
            self.setup_error('{"staff_only": [], "staf_pages": ["/x"]}'),
            "unknown config key 'staf_pages' (known: banned, context, login_url, staff_only, staff_pages)",
        )

    def test_bad_values_are_refused(self) -> None:
        cases = {
            '{"staff_only": "state.*"}': "'staff_only' must be a list of non-empty strings",
            '{"banned": [""]}': "'banned' must be a list of non-empty strings",
            '{"staff_pages": ["dashboard"]}': "'staff_pages' must be paths starting with '/'",
            '{"login_url": "login"}': "'login_url' must be a path starting with '/'",
            '{"context": {"tenant": 1}}': "'context' must be a table of strings",
            '"x"': "config must be a table",
        }
        for config, error in cases.items():
            with self.subTest(config=config):
                self.assertEqual(self.setup_error(config), error)

    def test_not_json(self) -> None:
        self.assertTrue(self.setup_error("").startswith("config is not JSON: "))


class ConnectTest(unittest.TestCase):
    def test_everyone_may_connect(self) -> None:
        app.WitWorld().setup(json.dumps(CONFIG))
        handshake = FakeRequest("GET", "/_event/", headers=[("cookie", "sessionid=abc")])
        for who in [ANONYMOUS, ANN, STAFF]:
            with self.subTest(who=who.username()):
                self.assertEqual(app.WitWorld().on_connect(handshake, who), bridging.Verdict_Allow([]))


class EventTest(unittest.TestCase):
    def setUp(self) -> None:
        app.WitWorld().setup(json.dumps(CONFIG))

    def verdict(self, ev: FakeEvent, who: users.Identity = ANONYMOUS) -> bridging.Verdict:
        return app.WitWorld().on_event(ev, who)

    def test_ordinary_events_run_for_everyone_with_the_context(self) -> None:
        for who in [ANONYMOUS, ANN, STAFF]:
            with self.subTest(who=who.username()):
                self.assertEqual(self.verdict(FakeEvent("state.counter_state.increment"), who), ALLOW)

    def test_ordinary_events_do_not_look_at_the_user(self) -> None:
        # A bare users.Identity() raises on any method call.
        self.assertEqual(self.verdict(FakeEvent("state.counter_state.increment"), users.Identity()), ALLOW)

    def test_identity_change_always_runs(self) -> None:
        ev = FakeEvent(ADMIN_HANDLER, kind=bridging.EventKind.IDENTITY_CHANGE, route="/dashboard")
        self.assertEqual(self.verdict(ev, users.Identity()), ALLOW)

    def test_banned_handler_closes_the_socket_even_for_staff(self) -> None:
        for who in [ANONYMOUS, STAFF]:
            with self.subTest(who=who.username()):
                self.assertEqual(
                    self.verdict(FakeEvent("state.legacy.drop_all"), who),
                    bridging.Verdict_Close("banned handler state.legacy.drop_all"),
                )

    def test_staff_only_handlers(self) -> None:
        for name in [ADMIN_HANDLER, "state.shop.delete_x"]:
            with self.subTest(name=name):
                self.assertEqual(self.verdict(FakeEvent(name), ANONYMOUS), LOG_IN)
                self.assertEqual(
                    self.verdict(FakeEvent(name), ANN),
                    bridging.Verdict_Refuse(refusals.Refusal_Forbidden(f"{name} is for staff only")),
                )
                self.assertEqual(self.verdict(FakeEvent(name), STAFF), ALLOW)

    def test_globs_match_the_whole_name(self) -> None:
        for name in ["state.shop.delete_xy", "state.shop.delete_", "xstate.shop.delete_x", "state.admin_state.purge"]:
            with self.subTest(name=name):
                self.assertEqual(self.verdict(FakeEvent(name), ANN), ALLOW)

    def test_staff_pages(self) -> None:
        for route in ["/dashboard", "/dashboard/", "/dashboard/orders/3"]:
            with self.subTest(route=route):
                ev = FakeEvent("state.orders.load", route=route)
                self.assertEqual(self.verdict(ev, ANONYMOUS), LOG_IN)
                self.assertEqual(
                    self.verdict(ev, ANN),
                    bridging.Verdict_Refuse(refusals.Refusal_Forbidden("state.orders.load is for staff only")),
                )
                self.assertEqual(self.verdict(ev, STAFF), ALLOW)
        self.assertEqual(self.verdict(FakeEvent("state.orders.load", route="/dashboards"), ANN), ALLOW)

    def test_uploads_need_a_logged_in_user(self) -> None:
        ev = FakeEvent("state.profile.upload_avatar", kind=bridging.EventKind.UPLOAD)
        self.assertEqual(self.verdict(ev, ANONYMOUS), LOG_IN)
        self.assertEqual(self.verdict(ev, ANN), ALLOW)

    def test_login_url_is_configurable(self) -> None:
        app.WitWorld().setup('{"staff_only": ["*"], "login_url": "/accounts/login/"}')
        self.assertEqual(
            self.verdict(FakeEvent("state.a.b")),
            bridging.Verdict_Refuse(refusals.Refusal_LoginRequired("/accounts/login/")),
        )
        self.assertEqual(self.verdict(FakeEvent("state.a.b"), STAFF), bridging.Verdict_Allow([]))


if __name__ == "__main__":
    unittest.main()
