"""State and UI of reflex-django's tutorial ("Tutorial: your first app": a todo list at
``/``; signed-in users see only their rows), ported to isthmus, plus the account page
of its cookbook ("Login gate (page and handler)").

What changed, line for line (docs/migrating-from-reflex-django.md has the whole map):

- ``class TodoState(AppState)`` → ``class TodoState(DjangoUserMixin, rx.State)``;
- ``self.request.user`` → ``self.django_user``, the identity the gateway signed into the
  event (no database query); ``owner=self.request.user`` → ``owner_id=user.pk``;
- the UI's ``TodoState.is_authenticated`` / ``AccountState.username`` (AppState's
  snapshot vars) → ``UserState.is_authenticated`` / ``UserState.username``;
- ``TodoState.set_new_title``: written out (AppState generated setters; Reflex 0.10.1
  does not by default);
- ``toggle`` carries ``@login_required``, as the cookbook advises for handlers that
  change data (the tutorial returned silently for anonymous users); the gateway's
  bridge policy refuses it too (isthmus.toml);
- the cookbook's ``@page(route="/account", login_required=True)``: a page guard in
  isthmus.toml (the gateway refuses the first load, ``guard_pages`` the page's events),
  and ``@login_required`` on the page function, as in reflex-django (the page shows
  "Loading…" until the visitor is known to be logged in).
"""

from __future__ import annotations

import reflex as rx
from isthmus_reflex import DjangoUserMixin, UserState, login_required

from shop.models import Todo


class TodoState(DjangoUserMixin, rx.State):
    todos: list[dict] = []
    new_title: str = ""
    error: str = ""

    @rx.event
    async def on_load(self):
        user = self.django_user
        if not user.is_authenticated:
            self.todos = []
            return
        self.todos = [
            {"id": t.id, "title": t.title, "done": t.done}
            async for t in Todo.objects.filter(owner_id=user.pk)
        ]

    @rx.event
    def set_new_title(self, value: str):
        self.new_title = value

    @rx.event
    async def add_todo(self):
        self.error = ""
        title = self.new_title.strip()
        if not title:
            self.error = "Type something first."
            return
        if not self.django_user.is_authenticated:
            self.error = "Please log in at /admin/ first."
            return
        await Todo.objects.acreate(owner_id=self.django_user.pk, title=title)
        self.new_title = ""
        await self.on_load()

    @rx.event
    @login_required
    async def toggle(self, todo_id: int):
        todo = await Todo.objects.aget(pk=todo_id, owner_id=self.django_user.pk)
        todo.done = not todo.done
        await todo.asave()
        await self.on_load()


def todo_row(todo: dict) -> rx.Component:
    return rx.hstack(
        rx.checkbox(
            checked=todo["done"],
            on_change=lambda _: TodoState.toggle(todo["id"]),
        ),
        rx.text(
            todo["title"],
            text_decoration=rx.cond(todo["done"], "line-through", "none"),
        ),
        spacing="3",
    )


def index() -> rx.Component:
    return rx.vstack(
        rx.heading("My Todos"),
        rx.cond(
            UserState.is_authenticated,
            rx.vstack(
                rx.hstack(
                    rx.input(
                        placeholder="What needs doing?",
                        value=TodoState.new_title,
                        on_change=TodoState.set_new_title,
                    ),
                    rx.button("Add", on_click=TodoState.add_todo),
                ),
                rx.cond(TodoState.error != "", rx.callout(TodoState.error, color_scheme="red")),
                rx.foreach(TodoState.todos, todo_row),
                spacing="3",
                align="start",
            ),
            rx.text("Please log in at ", rx.link("/admin/", href="/admin/"), " first."),
        ),
        spacing="4",
        padding="2em",
    )


@login_required
def account() -> rx.Component:
    return rx.vstack(
        rx.heading("Your account"),
        rx.text(UserState.username),
    )
