import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from isthmus_django.prefixes import prefix_report


class Command(BaseCommand):
    help = (
        "Print, as JSON, the top-level URL prefixes of ROOT_URLCONF (the paths the isthmus "
        "gateway should send to Django), STATIC_URL/STATIC_ROOT, MEDIA_URL/MEDIA_ROOT, and "
        "what `isthmus init` writes into isthmus.toml: the settings module, the identity "
        "endpoint's path, LOGIN_URL, SESSION_COOKIE_NAME and the ASGI application."
    )
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--urlconf", help="URLconf module to read instead of ROOT_URLCONF.")
        parser.add_argument("--indent", type=int, default=None, help="Pretty-print with this indent.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = prefix_report(options.get("urlconf"))
        self.stdout.write(json.dumps(report, indent=options.get("indent")))
