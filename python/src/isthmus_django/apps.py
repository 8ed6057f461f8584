from django.apps import AppConfig


class IsthmusDjangoConfig(AppConfig):
    name = "isthmus_django"
    label = "isthmus_django"
    verbose_name = "isthmus gateway companion"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks

        checks.register_checks()
