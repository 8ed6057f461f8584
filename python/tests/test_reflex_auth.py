"""isthmus_reflex.auth: what the login / logout / password helpers put on a Reflex page,
and what their script does in a browser (run in Node with a fake DOM and fetch)."""

import json
import re
import shutil
import subprocess

import pytest

rx = pytest.importorskip("reflex")

from isthmus_reflex import auth  # noqa: E402

PASSWORD = "pw-alice-1-secret"


class LoginState(rx.State):
    error: str = ""

    @rx.event
    def on_login(self, answer: dict):
        self.error = auth.error_text(answer)


def submit_hook(form):
    hooks = [h for h in form._get_all_hooks() if "handleSubmit_" in h]
    assert len(hooks) == 1
    return hooks[0]


def queued_events(js):
    """The names of the ReflexEvents a piece of rendered JS queues."""
    return re.findall(r'ReflexEvent\(\\*"([^"\\]+)\\*"', js)


# --- what the page gets ----------------------------------------------------------------------


def test_login_form_submits_through_a_client_side_script():
    form = auth.login_form(on_done=LoginState.on_login)
    rendered = form.render()
    assert 'id:"isthmus-login"' in rendered["props"]
    hook = submit_hook(form)
    # The chain queues only the client-side _call_script; its callback queues the handler
    # with the script's result (Django's answer), nothing else.
    assert queued_events(hook) == ["_call_script", LoginState.get_full_name() + ".on_login"]
    assert "{answer:_result}" in hook
    # The form data Reflex collects on submit (password included) stays a local of the
    # submit function: the event chain does not use it.
    assert hook.count("form_data") == 1
    assert "password" not in hook.split("addEvents", 1)[1].split("javascript_code", 1)[0]


def test_login_form_default_fields():
    rendered = json.dumps(auth.login_form().render())
    for needle in (
        'name:\\"username\\"',
        'name:\\"password\\"',
        'type:\\"password\\"',
        'autoComplete:\\"current-password\\"',
    ):
        assert needle in rendered


def test_login_form_custom_children_id_and_prefix():
    form = auth.login_form(
        rx.input(name="username"),
        rx.input(name="password", type="password"),
        rx.button("Go", type="submit"),
        form_id="my-login",
        prefix="/auth",
        on_done=LoginState.on_login,
    )
    hook = submit_hook(form)
    assert '\\"/auth/\\"' in hook
    assert 'formId = \\"my-login\\"' in hook
    assert "Go" in json.dumps(form.render())


def test_change_password_form_and_logout_button():
    form = auth.change_password_form(on_done=LoginState.on_login)
    rendered = json.dumps(form.render())
    for name in auth.PASSWORD_FIELDS:
        assert f'name:\\"{name}\\"' in rendered
    hook = submit_hook(form)
    assert 'view = \\"password\\"' in hook
    button = json.dumps(auth.logout_button(on_done=LoginState.on_login, id="logout").render())
    assert 'view = \\\\\\"logout\\\\\\"' in button
    assert LoginState.get_full_name() + ".on_login" in button


def test_event_specs():
    spec = auth.logout(LoginState.on_login)
    assert spec.handler.fn.__qualname__ == "_call_script"
    args = {str(k): v for k, v in spec.args}
    assert "logout" in str(args["javascript_code"])
    assert "on_login" in str(args["callback"])
    assert auth.login().handler.fn.__qualname__ == "_call_script"  # on_done is optional


@pytest.mark.parametrize("prefix", ["//evil.example/", "https://x/", "_isthmus/", "/\\x"])
def test_prefix_must_be_a_local_path(prefix):
    with pytest.raises(ValueError, match="prefix"):
        auth.auth_script("login", prefix=prefix)


def test_unknown_view():
    with pytest.raises(ValueError, match="view"):
        auth.auth_script("delete_everything")


def test_script_values_are_json_literals():
    script = auth.auth_script("login", form_id='x"; alert(1); "', prefix='/a"b/')
    assert 'formId = "x\\"; alert(1); \\""' in script
    assert 'prefix = "/a\\"b/"' in script


# --- reading the answer ------------------------------------------------------------------------


def test_error_text_and_next_path():
    assert auth.error_text({"ok": True}) == ""
    assert auth.error_text({"ok": False, "errors": {"__all__": ["a"], "password": ["b", "c"]}}) == "a b c"
    assert auth.error_text({"ok": False}) == "The request failed."
    assert auth.error_text("junk") == "The request failed."
    assert auth.next_path({"next": "/orders?x=1"}) == "/orders?x=1"
    for bad in ("//evil", "/\\evil", "/\t/evil", "https://evil", None, 3):
        assert auth.next_path({"next": bad}, "/home") == "/home"
    assert auth.next_path(None) == "/"


# --- the script in a (fake) browser ------------------------------------------------------------

NODE = shutil.which("node")

HARNESS = r"""
const scenario = %(scenario)s;
const calls = [];
const passwordInput = {value: "typed"};
const form = {
  querySelectorAll: (selector) => (selector === 'input[type="password"]' ? [passwordInput] : []),
};
globalThis.window = {location: {search: scenario.search || ""}};
globalThis.document = {getElementById: (id) => (id === scenario.formId ? form : null)};
globalThis.FormData = class {
  constructor(f) { this.f = f; }
  get(name) { return name in scenario.fields ? scenario.fields[name] : null; }
};
const reply = (status, body) => ({
  ok: status >= 200 && status < 300,
  status,
  json: async () => { if (typeof body === "string") throw new SyntaxError("not JSON"); return body; },
});
globalThis.fetch = async (url, options) => {
  calls.push({url, options: JSON.parse(JSON.stringify(options || {}))});
  if (scenario.network) throw new TypeError("Failed to fetch");
  if (url.endsWith("csrf")) return reply(scenario.csrfStatus || 200, {csrfToken: "tok-123", header: "X-CSRFToken"});
  return reply(scenario.status, scenario.body);
};
const result = await eval(%(script)s);
console.log(JSON.stringify({result, calls, password_after: passwordInput.value}));
"""


def run_script(script, **scenario):
    if NODE is None:
        pytest.skip("node is not installed")
    scenario.setdefault("formId", "isthmus-login")
    scenario.setdefault("fields", {})
    code = HARNESS % {"scenario": json.dumps(scenario), "script": json.dumps(script)}
    out = subprocess.run(
        [NODE, "--input-type=module", "-e", code], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(out.stdout)


LOGIN_FIELDS = {"username": "alice", "password": PASSWORD}
OK_ANSWER = {"ok": True, "user": {"id": "1", "username": "alice"}, "next": "/orders"}


def test_browser_login_posts_to_django_and_resolves_to_the_answer():
    seen = run_script(
        auth.auth_script("login", form_id="isthmus-login", fields=auth.LOGIN_FIELDS, next_from_query=True),
        fields=LOGIN_FIELDS,
        search="?next=%2Forders",
        status=200,
        body=OK_ANSWER,
    )
    csrf_call, login_call = seen["calls"]
    assert csrf_call["url"] == "/_isthmus/csrf"
    assert csrf_call["options"]["credentials"] == "same-origin"
    assert login_call["url"] == "/_isthmus/login"
    options = login_call["options"]
    assert options["method"] == "POST"
    assert options["credentials"] == "same-origin"
    assert options["cache"] == "no-store"
    assert options["headers"]["X-CSRFToken"] == "tok-123"
    assert options["headers"]["Content-Type"] == "application/json"
    # The password goes to Django, and only there.
    assert json.loads(options["body"]) == {"username": "alice", "password": PASSWORD, "next": "/orders"}
    # What the callback handler (the Reflex backend) gets: Django's answer and the status.
    assert seen["result"] == {**OK_ANSWER, "status": 200}
    assert PASSWORD not in json.dumps(seen["result"])
    # The password input is emptied.
    assert seen["password_after"] == ""


def test_browser_login_failure_answer():
    errors = {"__all__": ["Please enter a correct username and password."]}
    seen = run_script(
        auth.auth_script("login", form_id="isthmus-login", fields=auth.LOGIN_FIELDS),
        fields=LOGIN_FIELDS,
        status=400,
        body={"ok": False, "errors": errors},
    )
    assert seen["result"] == {"ok": False, "errors": errors, "status": 400}
    assert PASSWORD not in json.dumps(seen["result"])
    assert seen["password_after"] == ""


@pytest.mark.parametrize(
    ("scenario", "status", "message"),
    [
        ({"status": 403, "body": "<html>CSRF verification failed</html>"}, 403, "The server answered 403."),
        ({"status": 429, "body": {"detail": "locked"}}, 429, "The server answered 429."),
        ({"csrfStatus": 404}, 404, "The server answered 404."),
        ({"network": True}, 0, "The server could not be reached."),
        ({"formId": "elsewhere"}, 0, "The form #isthmus-login is not on the page."),
    ],
)
def test_browser_failures_always_resolve_to_an_answer(scenario, status, message):
    seen = run_script(
        auth.auth_script("login", form_id="isthmus-login", fields=auth.LOGIN_FIELDS),
        fields=LOGIN_FIELDS,
        **scenario,
    )
    assert seen["result"] == {"ok": False, "status": status, "errors": {"__all__": [message]}}


def test_browser_logout_posts_an_empty_object():
    seen = run_script(auth.auth_script("logout", prefix="/auth/"), formId=None, status=200, body={"ok": True})
    assert [c["url"] for c in seen["calls"]] == ["/auth/csrf", "/auth/logout"]
    assert seen["calls"][1]["options"]["body"] == "{}"
    assert seen["result"] == {"ok": True, "status": 200}


def test_browser_password_change_sends_the_three_fields():
    fields = {"old_password": "a", "new_password1": "b", "new_password2": "b", "other": "x"}
    seen = run_script(
        auth.auth_script("password", form_id="pw", fields=auth.PASSWORD_FIELDS),
        formId="pw",
        fields=fields,
        status=200,
        body={"ok": True},
    )
    assert json.loads(seen["calls"][1]["options"]["body"]) == {
        "old_password": "a",
        "new_password1": "b",
        "new_password2": "b",
    }
