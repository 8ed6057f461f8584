"""Load the real Django user behind an :class:`~isthmus_reflex.bridge.Identity`."""

from __future__ import annotations

from typing import Any

from .bridge import Identity


async def user_for_identity(identity: Identity) -> Any:
    """The user model instance for ``identity`` (async ORM ``aget(pk=...)``), or ``AnonymousUser``.

    A user deleted or deactivated since the gateway resolved the identity, or a
    ``user_id`` that is not a valid primary key, gives ``AnonymousUser``.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser
    from django.core.exceptions import ValidationError

    if not identity.authenticated or identity.user_id is None:
        return AnonymousUser()
    model = get_user_model()
    try:
        user = await model._default_manager.aget(pk=identity.user_id)
    except (model.DoesNotExist, ValueError, TypeError, ValidationError):
        return AnonymousUser()
    if not getattr(user, "is_active", True):
        return AnonymousUser()
    return user
