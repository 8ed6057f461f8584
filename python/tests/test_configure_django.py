"""configure_django() in a fresh interpreter, as the Reflex process would call it."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    assert "DJANGO_SETTINGS_MODULE" not in os.environ
    from isthmus_reflex import configure_django
    from django.apps import apps
    assert not apps.ready
    assert configure_django("fresh_settings") == "fresh_settings"
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "fresh_settings" and apps.ready
    assert configure_django("fresh_settings") == "fresh_settings"   # idempotent
    assert configure_django() == "fresh_settings"

    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from django.core.exceptions import SynchronousOnlyOperation

    async def handler():
        # The async ORM works on the event loop ...
        user = await User.objects.acreate(username="eve")
        assert await User.objects.acount() == 1
        assert (await User.objects.aget(pk=user.pk)).username == "eve"
        # ... the sync ORM does not (Django's guard), whatever the handler's kind.
        try:
            User.objects.count()
        except SynchronousOnlyOperation:
            return "guarded"
        return "unguarded"

    print(asyncio.run(handler()))
    """
)


def run(tmp_path, env_extra=None, script=SCRIPT):
    (tmp_path / "fresh_settings.py").write_text(
        "from tests.settings import *  # noqa\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_fresh_process(tmp_path):
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "guarded"


def test_existing_settings_module_wins(tmp_path):
    script = textwrap.dedent(
        """
        import logging, os
        logging.basicConfig(level=logging.WARNING)
        os.environ["DJANGO_SETTINGS_MODULE"] = "fresh_settings"
        from isthmus_reflex import configure_django
        print(configure_django("other.settings"))
        """
    )
    done = run(tmp_path, script=script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fresh_settings"
    assert "keeps it" in done.stderr


def test_needs_a_module(tmp_path):
    done = run(tmp_path, script="from isthmus_reflex import configure_django; configure_django()")
    assert done.returncode != 0
    assert "needs a settings module" in done.stderr


def test_in_process_is_a_no_op():
    from isthmus_reflex import configure_django

    assert configure_django("tests.settings") == os.environ.get("DJANGO_SETTINGS_MODULE", "")


@pytest.mark.parametrize("module", ["isthmus_reflex", "isthmus_reflex.bridge", "isthmus_reflex.decorators"])
def test_importing_needs_neither_reflex_nor_django_setup(tmp_path, module):
    script = f"import sys, {module}; assert 'reflex' not in sys.modules, 'reflex imported'; print('ok')"
    done = run(tmp_path, script=script)
    assert done.returncode == 0, done.stderr
