from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0003_session_price"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="declared_task",
            field=models.CharField(
                blank=True,
                choices=[
                    ("detect", "Detection"),
                    ("segment", "Segmentation"),
                    ("pose", "Pose"),
                    ("classify", "Classification"),
                    ("obb", "Oriented boxes"),
                ],
                default="",
                max_length=16,
            ),
        ),
    ]
