"""Unit tests of app.py in plain CPython: run them with ./test.sh."""

from __future__ import annotations

import json
import unittest

from componentize_py_types import Err
from fakes import ANONYMOUS, FakeIdentity, FakeRequest
from wit_world.imports import refusals, routing, users

import app

PLAIN = FakeIdentity("plain")  # logged in, not staff
CLERK = FakeIdentity("clerk", groups=["clerks"], permissions=["shop.view_product"])  # not staff either
STAFFER = FakeIdentity("staffer", is_staff=True)
ADMIN = FakeIdentity("admin", is_staff=True, is_superuser=True)

LOG_IN = routing.Decision_Refuse(refusals.Refusal_LoginRequired("/admin/login/"))
FORBIDDEN = routing.Decision_Refuse(refusals.Refusal_Forbidden("staff only"))


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
        self.assertEqual(app.CONFIG.areas, ("/reports",))

    def test_full_config(self) -> None:
        config = {"areas": ["/reports", "/staff/"], "upstream": "backend", "login_url": "/accounts/login/"}
        app.WitWorld().setup(json.dumps(config))
        self.assertEqual(app.CONFIG, app.Config(("/reports", "/staff/"), "backend", "/accounts/login/"))

    def test_unknown_key_is_refused_by_name(self) -> None:
        self.assertEqual(
            self.setup_error('{"area": ["/reports"]}'),
            "unknown config key 'area' (known: areas, login_url, upstream)",
        )

    def test_bad_values_are_refused(self) -> None:
        areas_error = "'areas' must be a non-empty list of paths starting with '/' (and not '/' itself)"
        cases = {
            '{"areas": "/reports"}': areas_error,
            '{"areas": ["reports"]}': areas_error,
            '{"areas": []}': areas_error,
            '{"areas": ["/"]}': areas_error,
            '{"upstream": ""}': "'upstream' must be a non-empty string",
            '{"login_url": 3}': "'login_url' must be a path starting with '/'",
            "[]": "config must be a table",
        }
        for config, error in cases.items():
            with self.subTest(config=config):
                self.assertEqual(self.setup_error(config), error)

    def test_not_json(self) -> None:
        self.assertTrue(self.setup_error("{areas").startswith("config is not JSON: "))


class RouteTest(unittest.TestCase):
    def setUp(self) -> None:
        app.WitWorld().setup("{}")

    def route(self, path: str, who: users.Identity = ANONYMOUS, method: str = "GET") -> routing.Decision:
        return app.WitWorld().route(FakeRequest(method, path, headers=[("cookie", "sessionid=abc")]), who)

    def test_reports_anonymous_must_log_in(self) -> None:
        for path in ["/reports", "/reports/", "/reports/stock/", "/reports/stock/2024.csv"]:
            with self.subTest(path=path):
                self.assertEqual(self.route(path), LOG_IN)
        self.assertEqual(self.route("/reports/stock/", method="POST"), LOG_IN)

    def test_reports_forbidden_to_non_staff(self) -> None:
        for who in [PLAIN, CLERK]:
            with self.subTest(who=who.username()):
                self.assertEqual(self.route("/reports/stock/", who), FORBIDDEN)

    def test_reports_open_to_staff(self) -> None:
        for who in [STAFFER, ADMIN]:
            with self.subTest(who=who.username()):
                self.assertEqual(self.route("/reports/stock/", who), to_django())

    def test_everything_else_passes_without_asking_for_the_user(self) -> None:
        # A bare users.Identity() raises on any method call, as the gateway's would trap
        # if the policy had not declared the need: outside the reports, nobody asks.
        for path in ["/", "/reportsx", "/report/stock/", "/admin/", "/api/shop/active/", "/ping", "/_event/", "/x/reports/"]:
            with self.subTest(path=path):
                self.assertEqual(self.route(path, users.Identity()), routing.Decision_Pass())

    def test_configured_areas_upstream_and_login_url(self) -> None:
        app.WitWorld().setup('{"areas": ["/staff/"], "upstream": "backend", "login_url": "/accounts/login/"}')
        self.assertEqual(
            self.route("/staff"), routing.Decision_Refuse(refusals.Refusal_LoginRequired("/accounts/login/"))
        )
        self.assertEqual(self.route("/staff/x", STAFFER), to_django("backend"))
        self.assertEqual(self.route("/reports/stock/", users.Identity()), routing.Decision_Pass())


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
        self.assertTrue(STAFFER.authenticated() and STAFFER.is_staff() and not PLAIN.is_staff())
        self.assertTrue(CLERK.in_group("clerks") and not CLERK.in_group("x"))


if __name__ == "__main__":
    unittest.main()
