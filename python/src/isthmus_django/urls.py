"""Include as ``path("_isthmus/", include("isthmus_django.urls"))``."""

from django.urls import path

from . import auth_views, messages_views, session_write, views

app_name = "isthmus"

urlpatterns = [
    path("identity", views.identity, name="identity"),
    # Session writes from Reflex handlers (isthmus_reflex.session posts to it).
    path("session", session_write.session_write, name="session"),
    # JSON auth for pages written in Reflex (isthmus_reflex.auth posts to these).
    path("csrf", auth_views.csrf, name="csrf"),
    path("login", auth_views.login, name="login"),
    path("logout", auth_views.logout, name="logout"),
    path("password", auth_views.password_change, name="password"),
    # Django's pending messages, consumed, for Reflex pages (isthmus_reflex.fetch_messages).
    path("messages", messages_views.pending_messages, name="messages"),
]
