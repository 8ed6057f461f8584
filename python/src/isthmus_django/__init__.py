"""Django side of isthmus: the identity endpoint the gateway calls, and system checks.

Add ``"isthmus_django"`` to ``INSTALLED_APPS`` and
``path("_isthmus/", include("isthmus_django.urls"))`` to the root URLconf.
See ``python/README.md`` for the contract with the gateway.
"""

__all__ = ["IDENTITY_SECRET_HEADER", "MIN_SECRET_LENGTH"]

#: Header the gateway sends with the shared identity secret.
IDENTITY_SECRET_HEADER = "X-Isthmus-Secret"

#: Shortest identity secret the system checks accept (``isthmus.E001``).
MIN_SECRET_LENGTH = 32
