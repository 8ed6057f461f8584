"""Django settings of the shop example, fit for running behind the isthmus gateway.

Everything that differs between machines comes from environment variables:

- ``ISTHMUS_IDENTITY_SECRET`` (required, at least 32 characters): shared with the
  gateway (``[bridge] identity_secret``); read by ``isthmus_django`` from the environment.
- ``ISTHMUS_PUBLIC_ORIGIN`` (default ``http://127.0.0.1:3000``): the gateway's origin as
  the browser sees it; goes into ``CSRF_TRUSTED_ORIGINS`` and ``ALLOWED_HOSTS``, and an
  ``https://`` one makes the session and CSRF cookies ``Secure``.
- ``SHOP_DB_PATH`` (default ``<example>/backend/db.sqlite3``): the SQLite database file.
- ``SHOP_POSTGRES_HOST`` (unset: SQLite): PostgreSQL instead, for processes on several
  machines (the Kubernetes deployment, ``deploy/``); with ``SHOP_POSTGRES_PORT``
  (5432), ``SHOP_POSTGRES_DB``, ``SHOP_POSTGRES_USER`` (both ``shop``) and
  ``SHOP_POSTGRES_PASSWORD``. Needs ``psycopg``.
- ``SHOP_ALLOWED_HOSTS`` (comma-separated, empty): more ``ALLOWED_HOSTS``, e.g. the
  Service name an in-cluster health check sends as ``Host``.
- ``SHOP_STATIC_ROOT`` (default ``<example>/backend/staticfiles``): ``collectstatic``'s
  target, served by the gateway's ``django_static`` mount.
- ``DJANGO_SECRET_KEY`` (default: a development key), ``DJANGO_DEBUG`` (``1`` to enable).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "shop-example-development-key-not-for-production-use"
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"

# The gateway's public origin: what the browser has in its address bar.
ISTHMUS_PUBLIC_ORIGIN = os.environ.get("ISTHMUS_PUBLIC_ORIGIN", "http://127.0.0.1:3000").rstrip("/")
_public_host = urlsplit(ISTHMUS_PUBLIC_ORIGIN).hostname or "127.0.0.1"

_extra_hosts = {h.strip() for h in os.environ.get("SHOP_ALLOWED_HOSTS", "").split(",") if h.strip()}
ALLOWED_HOSTS = sorted({"127.0.0.1", "localhost", "[::1]", _public_host} | _extra_hosts)
CSRF_TRUSTED_ORIGINS = [ISTHMUS_PUBLIC_ORIGIN]

# The gateway writes X-Forwarded-Proto and X-Forwarded-Host (and drops client-sent
# ones), so they can be trusted as long as Django listens on loopback only.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True
# Served over https (the gateway's [listen.tls]): the cookies never travel in the clear.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = ISTHMUS_PUBLIC_ORIGIN.startswith("https://")

# isthmus_django reads ISTHMUS_IDENTITY_SECRET from the environment when the setting is
# unset; keep the secret out of this file.
ISTHMUS_SESSION_KEYS = ["cart_id"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "isthmus_django",
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
]

ROOT_URLCONF = "shopsite.urls"

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

ASGI_APPLICATION = "shopsite.asgi.application"
WSGI_APPLICATION = "shopsite.wsgi.application"

# SQLite, shared by the Django server and the Reflex process (which uses the ORM in its
# event handlers): WAL and IMMEDIATE transactions let the two write without "database is
# locked" errors.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB_PATH") or str(BASE_DIR / "db.sqlite3"),
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}
# SQLite cannot be shared by processes on several machines: a deployment with Django and
# Reflex replicas in their own pods (deploy/kubernetes) uses PostgreSQL.
if os.environ.get("SHOP_POSTGRES_HOST"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["SHOP_POSTGRES_HOST"],
            "PORT": os.environ.get("SHOP_POSTGRES_PORT", "5432"),
            "NAME": os.environ.get("SHOP_POSTGRES_DB", "shop"),
            "USER": os.environ.get("SHOP_POSTGRES_USER", "shop"),
            "PASSWORD": os.environ.get("SHOP_POSTGRES_PASSWORD", ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
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
STATIC_ROOT = os.environ.get("SHOP_STATIC_ROOT") or str(BASE_DIR / "staticfiles")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    # Anyone may read; writing needs the model permission (shop.add_product, …).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.DjangoModelPermissionsOrAnonReadOnly"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
