"""Fakes of the resources the gateway lends to a call, for tests in plain CPython.

They subclass the classes that `componentize-py bindings` generates from the WIT (whose
methods only raise NotImplementedError), so a type checker holds them to the contract.
A bare `users.Identity()` is a handy identity that fails if the policy looks at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from wit_world.imports import http, users


class FakeRequest(http.Request):
    """An HTTP request (or a WebSocket handshake) as the gateway lends it."""

    def __init__(
        self,
        method: str = "GET",
        path: str = "/",
        query: str = "",
        headers: Iterable[tuple[str, str]] = (),
        *,
        scheme: str = "https",
        authority: str = "app.example.com",
        client_ip: str = "203.0.113.7",
        traceparent: str | None = None,
    ) -> None:
        self._method = method.upper()
        self._path = path
        self._query = query
        self._headers = [(name.lower(), value) for name, value in headers]
        self._scheme = scheme
        self._authority = authority
        self._client_ip = client_ip
        self._traceparent = traceparent

    def method(self) -> str:
        return self._method

    def scheme(self) -> str:
        return self._scheme

    def authority(self) -> str:
        return self._authority

    def path(self) -> str:
        return self._path

    def query(self) -> str:
        return self._query

    def header(self, name: str) -> str | None:
        values = [v for n, v in self._headers if n == name.lower()]
        if not values:
            return None
        return ("; " if name.lower() == "cookie" else ", ").join(values)

    def headers(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def cookie(self, name: str) -> str | None:
        found = None
        for line in (v for n, v in self._headers if n == "cookie"):
            for part in line.split(";"):
                key, eq, value = part.strip().partition("=")
                if eq and key == name:
                    found = value  # the last of duplicates wins, as in Django
        return found

    def client_ip(self) -> str:
        return self._client_ip

    def traceparent(self) -> str | None:
        return self._traceparent


class FakeIdentity(users.Identity):
    """A Django user; `FakeIdentity()` is an anonymous visitor."""

    def __init__(
        self,
        username: str = "",
        *,
        authenticated: bool | None = None,
        user_id: str | None = None,
        email: str = "",
        first_name: str = "",
        last_name: str = "",
        is_staff: bool = False,
        is_superuser: bool = False,
        groups: Sequence[str] = (),
        permissions: Sequence[str] = (),
        session: Sequence[tuple[str, str]] = (),
    ) -> None:
        # A username makes a logged-in user unless told otherwise.
        self._authenticated = bool(username) if authenticated is None else authenticated
        self._user_id = user_id if user_id is not None or not self._authenticated else "1"
        self._username = username
        self._email = email
        self._first_name = first_name
        self._last_name = last_name
        self._is_staff = is_staff
        self._is_superuser = is_superuser
        self._groups = list(groups)
        self._permissions = list(permissions)
        self._session = list(session)

    def authenticated(self) -> bool:
        return self._authenticated

    def user_id(self) -> str | None:
        return self._user_id

    def username(self) -> str:
        return self._username

    def email(self) -> str:
        return self._email

    def first_name(self) -> str:
        return self._first_name

    def last_name(self) -> str:
        return self._last_name

    def is_staff(self) -> bool:
        return self._is_staff

    def is_superuser(self) -> bool:
        return self._is_superuser

    def groups(self) -> list[str]:
        return list(self._groups)

    def in_group(self, name: str) -> bool:
        return name in self._groups

    def permissions(self) -> list[str]:
        return list(self._permissions)

    def has_permission(self, perm: str) -> bool:
        return perm in self._permissions

    def session(self) -> list[tuple[str, str]]:
        return list(self._session)

    def session_value(self, key: str) -> str | None:
        return next((v for k, v in self._session if k == key), None)


ANONYMOUS = FakeIdentity()
