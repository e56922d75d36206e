"""Fix each session's hourly price at Start (existing sessions take their instance
type's current price, which is what they were being charged)."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_instance_type_prices(apps, schema_editor):  # type: ignore[no-untyped-def]
    InstanceType = apps.get_model("training", "InstanceType")
    TrainingSession = apps.get_model("training", "TrainingSession")
    price = InstanceType.objects.filter(pk=OuterRef("instance_type_id")).values("price_per_hour_micros")[:1]
    TrainingSession.objects.update(price_per_hour_micros=Subquery(price))


class Migration(migrations.Migration):
    dependencies = [("training", "0002_seed_instance_types")]

    operations = [
        migrations.AddField(
            model_name="trainingsession",
            name="price_per_hour_micros",
            field=models.PositiveBigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.RunPython(copy_instance_type_prices, migrations.RunPython.noop),
    ]
