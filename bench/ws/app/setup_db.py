"""Migrate the benchmark's SQLite database, create the user `benchuser` and log it in
once: prints the Django session key (the browser's `sessionid` cookie)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
User = get_user_model()
user, _ = User.objects.get_or_create(username="benchuser", defaults={"email": "bench@example.org"})
user.set_password("bench-" + os.urandom(8).hex())
user.save()
client = Client()
client.force_login(user)
print(client.cookies["sessionid"].value)
