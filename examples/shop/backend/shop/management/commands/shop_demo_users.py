"""Create (or reset) the example's demo users, one per kind of bridge rule.

    python manage.py shop_demo_users --password secret-pass-123

| username | what |
| --- | --- |
| admin   | superuser (staff) |
| staffer | staff, no group, no permission |
| plain   | an ordinary user |
| clerk   | member of the group ``clerks`` |
| buyer   | holds the permission ``shop.change_product`` |

Idempotent: existing users get their password and flags reset.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the shop example's demo users (admin, staffer, plain, clerk, buyer)."

    def add_arguments(self, parser):
        parser.add_argument("--password", required=True, help="password for every demo user")
        parser.add_argument("--only", nargs="*", help="create only these usernames")

    def handle(self, *args, password: str, only=None, **options):
        User = get_user_model()
        clerks, _ = Group.objects.get_or_create(name="clerks")
        change_product = Permission.objects.get(content_type__app_label="shop", codename="change_product")
        specs = {
            "admin": {"is_staff": True, "is_superuser": True},
            "staffer": {"is_staff": True, "is_superuser": False},
            "plain": {"is_staff": False, "is_superuser": False},
            "clerk": {"is_staff": False, "is_superuser": False},
            "buyer": {"is_staff": False, "is_superuser": False},
        }
        for username, flags in specs.items():
            if only and username not in only:
                continue
            user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@shop.example"})
            for key, value in flags.items():
                setattr(user, key, value)
            user.is_active = True
            user.set_password(password)
            user.save()
            if username == "clerk":
                user.groups.set([clerks])
            if username == "buyer":
                user.user_permissions.set([change_product])
            self.stdout.write(f"{'created' if created else 'updated'} {username}")
