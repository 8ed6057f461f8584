"""Unit tests of app.py in plain CPython: run them with ./test.sh."""

from __future__ import annotations

import json
import unittest

from componentize_py_types import Err
from fakes import ANONYMOUS, FakeIdentity, FakeRequest
from wit_world.imports import refusals, routing, users

import app

ANN = FakeIdentity("ann")  # logged in, not staff
STAFF = FakeIdentity("sam", is_staff=True, groups=["editors"])


def to_django(upstream: str = "django") -> routing.Decision:
    return routing.Decision_Forward(
        routing.Forward(upstream=upstream, path=None, set_headers=[], remove_headers=["x-remote-user"])
    )


class SetupTest(unittest.TestCase):
    def setup_error(self, config: str) -> str:
        with self.assertRaises(Err) as caught:
            app.WitWorld().setup(config)
        error = caught.exception.value
        self.assertIsInstance(error, str)
        return str(error)

    def test_empty_config_asks_for_the_identity(self) -> None:
        self.assertEqual(app.WitWorld().setup("{}"), routing.Needs(identity=True))
        self.assertEqual(app.CONFIG, app.Config())

    def test_full_config(self) -> None:
        config = {"prefixes": ["/api", "/accounts/"], "upstream": "backend", "login_url": "/accounts/login/"}
        app.WitWorld().setup(json.dumps(config))
        self.assertEqual(app.CONFIG, app.Config(("/api", "/accounts/"), "backend", "/accounts/login/"))

    def test_unknown_key_is_refused_by_name(self) -> None:
        self.assertEqual(
            self.setup_error('{"prefixes": [], "prefix": ["/api"]}'),
            "unknown config key 'prefix' (known: login_url, prefixes, upstream)",
        )

    def test_bad_values_are_refused(self) -> None:
        cases = {
            '{"prefixes": "/api"}': "'prefixes' must be a list of paths starting with '/'",
            '{"prefixes": ["api"]}': "'prefixes' must be a list of paths starting with '/'",
            '{"upstream": ""}': "'upstream' must be a non-empty string",
            '{"login_url": 3}': "'login_url' must be a path starting with '/'",
            "[]": "config must be a table",
        }
        for config, error in cases.items():
            with self.subTest(config=config):
                self.assertEqual(self.setup_error(config), error)

    def test_not_json(self) -> None:
        self.assertTrue(self.setup_error("{prefixes").startswith("config is not JSON: "))


class RouteTest(unittest.TestCase):
    def setUp(self) -> None:
        app.WitWorld().setup(json.dumps({"prefixes": ["/api", "/accounts/"]}))

    def route(self, path: str, who: users.Identity = ANONYMOUS, method: str = "GET") -> routing.Decision:
        return app.WitWorld().route(FakeRequest(method, path, headers=[("cookie", "sessionid=abc")]), who)

    def test_healthz_is_answered_by_the_policy(self) -> None:
        self.assertEqual(
            self.route("/healthz", users.Identity()),
            routing.Decision_Reply(
                routing.Reply(status=200, headers=[("content-type", "text/plain; charset=utf-8")], body=b"ok\n")
            ),
        )
        self.assertEqual(self.route("/healthz", method="POST"), routing.Decision_Pass())

    def test_admin_and_prefixes_go_to_django(self) -> None:
        for path in ["/admin", "/admin/", "/admin/shop/product/1/change/", "/api", "/api/v1/x", "/accounts/login/"]:
            with self.subTest(path=path):
                self.assertEqual(self.route(path), to_django())

    def test_prefixes_match_whole_segments(self) -> None:
        for path in ["/apix", "/administrator", "/accountsx", "/", "/shop/cart"]:
            with self.subTest(path=path):
                self.assertEqual(self.route(path), routing.Decision_Pass())

    def test_the_user_is_only_consulted_under_staff(self) -> None:
        # A bare users.Identity() raises on any method call, as the gateway's would trap.
        self.assertEqual(self.route("/admin/", users.Identity()), to_django())
        self.assertEqual(self.route("/shop", users.Identity()), routing.Decision_Pass())

    def test_staff_area_anonymous_must_log_in(self) -> None:
        for path in ["/staff", "/staff/", "/staff/reports/2024"]:
            with self.subTest(path=path):
                self.assertEqual(
                    self.route(path), routing.Decision_Refuse(refusals.Refusal_LoginRequired("/admin/login/"))
                )

    def test_staff_area_forbidden_to_non_staff(self) -> None:
        self.assertEqual(self.route("/staff/reports", ANN), routing.Decision_Refuse(refusals.Refusal_Forbidden("staff only")))

    def test_staff_area_open_to_staff(self) -> None:
        self.assertEqual(self.route("/staff/reports", STAFF), to_django())
        self.assertEqual(self.route("/staffroom", ANONYMOUS), routing.Decision_Pass())

    def test_configured_upstream_and_login_url(self) -> None:
        app.WitWorld().setup('{"upstream": "backend", "login_url": "/accounts/login/"}')
        self.assertEqual(self.route("/admin/"), to_django("backend"))
        self.assertEqual(self.route("/api/x"), routing.Decision_Pass())  # prefixes reset to none
        self.assertEqual(
            self.route("/staff/"), routing.Decision_Refuse(refusals.Refusal_LoginRequired("/accounts/login/"))
        )


class FakesTest(unittest.TestCase):
    """The fakes behave as the WIT says the gateway's resources do."""

    def test_request(self) -> None:
        req = FakeRequest(
            "get", "/a", "x=1", [("Cookie", "a=1; sessionid=old"), ("cookie", "sessionid=new"), ("Accept", "a"), ("accept", "b")]
        )
        self.assertEqual(req.method(), "GET")
        self.assertEqual(req.header("COOKIE"), "a=1; sessionid=old; sessionid=new")
        self.assertEqual(req.header("accept"), "a, b")
        self.assertIsNone(req.header("x-nope"))
        self.assertEqual(req.cookie("sessionid"), "new")
        self.assertIsNone(req.cookie("csrftoken"))
        self.assertEqual(req.headers()[0], ("cookie", "a=1; sessionid=old"))

    def test_identity(self) -> None:
        self.assertFalse(ANONYMOUS.authenticated())
        self.assertIsNone(ANONYMOUS.user_id())
        self.assertTrue(STAFF.authenticated() and STAFF.in_group("editors") and not STAFF.in_group("x"))
        self.assertEqual(FakeIdentity("x", session=[("cart_id", "3")]).session_value("cart_id"), "3")


if __name__ == "__main__":
    unittest.main()
