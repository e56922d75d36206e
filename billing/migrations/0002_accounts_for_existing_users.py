from django.conf import settings
from django.db import migrations


def create_accounts(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Account = apps.get_model("billing", "Account")
    existing = set(Account.objects.values_list("user_id", flat=True))
    Account.objects.bulk_create(
        [Account(user_id=pk) for pk in User.objects.values_list("pk", flat=True) if pk not in existing]
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_ledger")]
    operations = [migrations.RunPython(create_accounts, migrations.RunPython.noop)]
