"""Settings of the ported tutorial: `startproject`'s defaults with reflex-django's two
lines swapped for isthmus's (``isthmus_django`` instead of ``reflex_django`` in
INSTALLED_APPS, no AsyncStreamingMiddleware), and what a project behind a gateway
needs (``manage.py check`` names anything missing).

From the environment: ``ISTHMUS_IDENTITY_SECRET`` (shared with the gateway, read by
isthmus_django), ``ISTHMUS_PUBLIC_ORIGIN`` (the gateway's origin, default
http://127.0.0.1:3000), ``PORTED_DB_PATH`` and ``PORTED_STATIC_ROOT`` (default: beside
manage.py), ``DJANGO_SECRET_KEY``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "ported-tutorial-development-key-not-for-production-use"
DEBUG = False

# Behind the gateway: the browser's origin is the gateway's, which writes
# X-Forwarded-Proto / X-Forwarded-Host (and drops client-sent ones).
ISTHMUS_PUBLIC_ORIGIN = os.environ.get("ISTHMUS_PUBLIC_ORIGIN", "http://127.0.0.1:3000").rstrip("/")
ALLOWED_HOSTS = sorted({"127.0.0.1", "localhost", urlsplit(ISTHMUS_PUBLIC_ORIGIN).hostname or "127.0.0.1"})
CSRF_TRUSTED_ORIGINS = [ISTHMUS_PUBLIC_ORIGIN]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "isthmus_django",  # was: "reflex_django"
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # (reflex-django's AsyncStreamingMiddleware is not needed: Django serves only Django.)
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "config.asgi.application"

# SQLite, written by the Django server and by the Reflex process (the ORM in its
# handlers): WAL and IMMEDIATE transactions keep the two from "database is locked".
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PORTED_DB_PATH") or str(BASE_DIR / "db.sqlite3"),
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("PORTED_STATIC_ROOT") or str(BASE_DIR / "staticfiles")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The tutorial sends visitors to the admin to log in; so do the handler guards.
LOGIN_URL = "/admin/login/"
