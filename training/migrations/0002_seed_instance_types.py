from django.db import migrations

# Prices in micro-dollars per hour. "cpu" is the type the one-command demo really
# serves; the GPU types are served once a worker for their queue is running.
INSTANCE_TYPES = [
    ("cpu", "CPU (demo)", "CPU", 0, 200_000, 30, 0),
    ("rtx-4090", "RTX 4090", "NVIDIA GeForce RTX 4090", 24, 690_000, 20, 10),
    ("a100-80gb", "A100 80GB", "NVIDIA A100 80GB", 80, 1_990_000, 12, 20),
    ("h100-80gb", "H100 80GB", "NVIDIA H100 80GB", 80, 2_990_000, 8, 30),
]


def seed(apps, schema_editor):
    InstanceType = apps.get_model("training", "InstanceType")
    for slug, name, gpu, memory, price, reference_seconds, order in INSTANCE_TYPES:
        InstanceType.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "gpu": gpu,
                "gpu_memory_gb": memory,
                "price_per_hour_micros": price,
                "reference_epoch_seconds": reference_seconds,
                "sort_order": order,
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("training", "InstanceType").objects.filter(slug__in=[row[0] for row in INSTANCE_TYPES]).delete()


class Migration(migrations.Migration):
    dependencies = [("training", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
