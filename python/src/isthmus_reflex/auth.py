"""Log in, log out and change the password from Reflex pages, with Django's own auth (needs ``reflex``).

The browser posts the form straight to the JSON views of ``isthmus_django`` (mounted at
``/_isthmus/``): the password never enters Reflex state, an event payload or the Reflex
backend, and the session cookie stays ``HttpOnly`` (Django sets it on the response, the
gateway passes it through). What reaches the backend is only Django's answer, handed to
an event handler of your choice::

    from isthmus_reflex import auth

    class LoginState(rx.State):
        error: str = ""

        @rx.event
        def on_login(self, answer: dict):
            if answer.get("ok"):
                return rx.redirect(auth.next_path(answer))
            self.error = auth.error_text(answer)

    def login_page():
        return rx.vstack(auth.login_form(on_done=LoginState.on_login), rx.text(LoginState.error))

Each helper is an ``rx.call_script`` that runs in the browser, so the event queue waits
for it: it reads the form's fields (``new FormData(form)``; the form is found by its
``id``), fetches the CSRF token from ``<prefix>csrf``, posts the fields as JSON to
``<prefix>login`` (``logout``, ``password``) with ``credentials: "same-origin"`` and
the token in Django's CSRF header, clears the form's password inputs, and resolves to
Django's JSON answer plus ``status`` (the HTTP status)::

    {"ok": true, "user": {"id": "3", "username": "alice", ...}, "next": "/orders" | null, "status": 200}
    {"ok": false, "errors": {"__all__": ["Please enter a correct username and password. ..."]}, "status": 400}

A network failure or an answer that is not the view's JSON (a 403 page from a CSRF
failure, a 429 from a rate limiter, a 502) resolves to ``{"ok": false, "status": <status,
0 without one>, "errors": {"__all__": ["..."]}}``, so the callback always gets an object.

The answer came through the browser: use it for messages and navigation only. Who is
logged in is what ``self.django_user`` says in the next event (the gateway resolves it
from the new session cookie).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import reflex as rx
from reflex.event import EventSpec, EventType

#: Where ``isthmus_django.urls`` is included (``path("_isthmus/", include(...))``).
DEFAULT_PREFIX = "/_isthmus/"
LOGIN_FORM_ID = "isthmus-login"
PASSWORD_FORM_ID = "isthmus-password"
#: The fields each view reads (Django's ``AuthenticationForm`` / ``PasswordChangeForm`` names).
LOGIN_FIELDS = ("username", "password", "next")
PASSWORD_FIELDS = ("old_password", "new_password1", "new_password2")

_VIEWS = ("login", "logout", "password")

# The browser side of every helper: an async function expression evaluated by Reflex's
# _call_script (state.js awaits the Promise before calling the callback). The values
# in %(...)s are JSON literals.
_SCRIPT = """(async () => {
  const prefix = %(prefix)s, view = %(view)s, formId = %(form_id)s, fields = %(fields)s;
  const fail = (status, message) => ({ok: false, status: status, errors: {__all__: [message]}});
  const body = {};
  let form = null;
  if (formId !== null) {
    form = document.getElementById(formId);
    if (!form) return fail(0, "The form #" + formId + " is not on the page.");
    const data = new FormData(form);
    for (const name of fields) {
      const value = data.get(name);
      if (typeof value === "string") body[name] = value;
    }
  }
  if (%(next_from_query)s && !body.next) {
    const next = new URLSearchParams(window.location.search).get("next");
    if (next) body.next = next;
  }
  try {
    const options = {credentials: "same-origin", cache: "no-store", headers: {Accept: "application/json"}};
    const tokenResponse = await fetch(prefix + "csrf", options);
    if (!tokenResponse.ok) return fail(tokenResponse.status, "The server answered " + tokenResponse.status + ".");
    const token = await tokenResponse.json();
    const response = await fetch(prefix + view, {
      ...options,
      method: "POST",
      headers: {...options.headers, "Content-Type": "application/json", [token.header]: token.csrfToken},
      body: JSON.stringify(body),
    });
    let answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    if (answer === null || typeof answer !== "object" || typeof answer.ok !== "boolean") {
      return fail(response.status, "The server answered " + response.status + ".");
    }
    answer.status = response.status;
    return answer;
  } catch (e) {
    return fail(0, "The server could not be reached.");
  } finally {
    if (form) for (const input of form.querySelectorAll('input[type="password"]')) input.value = "";
  }
})()"""


def check_prefix(prefix: str) -> str:
    """``prefix`` as a same-origin path ending in ``/`` (``"/_isthmus"`` -> ``"/_isthmus/"``).

    Raises ValueError for anything else (a URL, or ``//host`` which would leave the origin).
    """
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.startswith(("//", "/\\")):
        msg = f"the isthmus URL prefix must be a path starting with one '/', not {prefix!r}"
        raise ValueError(msg)
    return prefix if prefix.endswith("/") else prefix + "/"


def auth_script(
    view: str,
    *,
    form_id: str | None = None,
    fields: Sequence[str] = (),
    prefix: str = DEFAULT_PREFIX,
    next_from_query: bool = False,
) -> str:
    """The JavaScript the helpers run: post ``fields`` of form ``#form_id`` to ``<prefix><view>``.

    An expression evaluating to a Promise of the answer (see the module's docstring).
    ``next_from_query`` sends the page's ``?next=`` when the form has no ``next`` field.
    """
    if view not in _VIEWS:
        msg = f"view must be one of {_VIEWS}, not {view!r}"
        raise ValueError(msg)
    return _SCRIPT % {
        "prefix": json.dumps(check_prefix(prefix)),
        "view": json.dumps(view),
        "form_id": json.dumps(form_id),
        "fields": json.dumps(list(fields)),
        "next_from_query": "true" if next_from_query else "false",
    }


def login(
    form_id: str = LOGIN_FORM_ID, *, on_done: EventType[Any] | None = None, prefix: str = DEFAULT_PREFIX
) -> EventSpec:
    """Post form ``#form_id``'s ``username``, ``password`` (and ``next``, else the page's
    ``?next=``) to Django's login view; ``on_done`` gets the answer."""
    script = auth_script("login", form_id=form_id, fields=LOGIN_FIELDS, prefix=prefix, next_from_query=True)
    return rx.call_script(script, callback=on_done)


def logout(on_done: EventType[Any] | None = None, *, prefix: str = DEFAULT_PREFIX) -> EventSpec:
    """Log the browser out (Django's ``logout()``); ``on_done`` gets ``{"ok": true, "status": 200}``."""
    return rx.call_script(auth_script("logout", prefix=prefix), callback=on_done)


def change_password(
    form_id: str = PASSWORD_FORM_ID, *, on_done: EventType[Any] | None = None, prefix: str = DEFAULT_PREFIX
) -> EventSpec:
    """Post form ``#form_id``'s ``old_password``, ``new_password1``, ``new_password2`` to
    Django's password change view; ``on_done`` gets the answer."""
    script = auth_script("password", form_id=form_id, fields=PASSWORD_FIELDS, prefix=prefix)
    return rx.call_script(script, callback=on_done)


def _field(form_id: str, name: str, label: str, *, input_type: str, autocomplete: str, **props: Any) -> rx.Component:
    input_id = f"{form_id}-{name}"
    field: rx.Component = rx.vstack(
        rx.el.label(label, html_for=input_id),
        rx.input(
            name=name,
            id=input_id,
            type=input_type,
            auto_complete=autocomplete,
            required=True,
            width="100%",
            **props,
        ),
        spacing="1",
        width="100%",
    )
    return field


def login_form(
    *children: rx.Component,
    on_done: EventType[Any] | None = None,
    form_id: str = LOGIN_FORM_ID,
    prefix: str = DEFAULT_PREFIX,
    username_label: str = "Username",
    password_label: str = "Password",
    submit_label: str = "Log in",
    **props: Any,
) -> rx.Component:
    """An ``rx.form`` that logs in through Django (:func:`login`) on submit.

    Without ``children`` it holds a username and a password input and a submit button;
    your own children need inputs named ``username`` and ``password`` (and optionally
    ``next``). ``props`` go to ``rx.form``.
    """
    if not children:
        children = (
            rx.vstack(
                _field(form_id, "username", username_label, input_type="text", autocomplete="username"),
                _field(form_id, "password", password_label, input_type="password", autocomplete="current-password"),
                rx.button(submit_label, type="submit", id=f"{form_id}-submit"),
                spacing="3",
                width="100%",
            ),
        )
    form = rx.form(*children, id=form_id, on_submit=login(form_id, on_done=on_done, prefix=prefix), **props)
    return cast(rx.Component, form)


def change_password_form(
    *children: rx.Component,
    on_done: EventType[Any] | None = None,
    form_id: str = PASSWORD_FORM_ID,
    prefix: str = DEFAULT_PREFIX,
    old_password_label: str = "Current password",
    new_password_label: str = "New password",
    confirm_label: str = "New password (again)",
    submit_label: str = "Change password",
    **props: Any,
) -> rx.Component:
    """An ``rx.form`` that changes the password through Django (:func:`change_password`) on submit.

    Without ``children`` it holds the three inputs of Django's ``PasswordChangeForm``
    (``old_password``, ``new_password1``, ``new_password2``) and a submit button.
    """
    if not children:
        children = (
            rx.vstack(
                _field(
                    form_id, "old_password", old_password_label, input_type="password", autocomplete="current-password"
                ),
                _field(
                    form_id, "new_password1", new_password_label, input_type="password", autocomplete="new-password"
                ),
                _field(form_id, "new_password2", confirm_label, input_type="password", autocomplete="new-password"),
                rx.button(submit_label, type="submit", id=f"{form_id}-submit"),
                spacing="3",
                width="100%",
            ),
        )
    form = rx.form(*children, id=form_id, on_submit=change_password(form_id, on_done=on_done, prefix=prefix), **props)
    return cast(rx.Component, form)


def logout_button(
    label: str = "Log out",
    *,
    on_done: EventType[Any] | None = None,
    prefix: str = DEFAULT_PREFIX,
    **props: Any,
) -> rx.Component:
    """An ``rx.button`` that logs out (:func:`logout`) on click; ``props`` go to ``rx.button``."""
    return cast(rx.Component, rx.button(label, on_click=logout(on_done, prefix=prefix), **props))


# --- reading an answer in the callback handler ---------------------------------------------


def error_text(answer: Any, *, separator: str = " ") -> str:
    """All of an answer's error messages in one line (``""`` for a successful answer)."""
    if not isinstance(answer, Mapping):
        return "The request failed."
    if answer.get("ok") is True:
        return ""
    errors = answer.get("errors")
    if not isinstance(errors, Mapping):
        return "The request failed."
    messages = [str(m) for ms in errors.values() if isinstance(ms, list) for m in ms]
    return separator.join(messages) or "The request failed."


def next_path(answer: Any, default: str = "/") -> str:
    """The answer's ``next`` when it is a local path, else ``default``.

    Django's login view already checks ``next``; it is checked again here because the
    answer came through the browser.
    """
    candidate = answer.get("next") if isinstance(answer, Mapping) else None
    if (
        isinstance(candidate, str)
        and candidate.startswith("/")
        and not candidate.startswith("//")
        # Browsers drop tabs and newlines from URLs and read "\\" as "/": "/\t/x" is "//x".
        and not any(ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in candidate)
    ):
        return candidate
    return default
