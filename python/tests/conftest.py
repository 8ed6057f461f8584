import os

# Keep Reflex quiet and offline when the tests import it.
os.environ.setdefault("REFLEX_TELEMETRY_ENABLED", "false")
for _var in ("ISTHMUS_IDENTITY_SECRET", "ISTHMUS_BRIDGE_SECRET"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402

BRIDGE_SECRET = "test-bridge-secret-0123456789abcdefghijklmnop"


@pytest.fixture(autouse=True)
def _fresh_bridge_state(monkeypatch):
    """Each test starts with the bridge secret in the environment and no logged reasons."""
    from isthmus_reflex import bridge

    monkeypatch.setenv("ISTHMUS_BRIDGE_SECRET", BRIDGE_SECRET)
    bridge.set_bridge_secret(None)
    bridge._reset_warnings()
    yield
    bridge.set_bridge_secret(None)


def shared_reflex_app():
    """The test session's one ``rx.App`` (reflex 0.10.1 allows one per RegistrationContext)."""
    import reflex as rx
    from reflex_base.registry import RegistrationContext
    from reflex_base.utils.exceptions import ReflexRuntimeError

    try:
        return RegistrationContext.ensure_context().app
    except ReflexRuntimeError:
        return rx.App()
