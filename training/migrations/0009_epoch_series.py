"""Every model's epochs as [epoch, milliseconds, {figures}] beside the model, filled
from the epoch records for the models that trained before it was kept."""

from django.db import migrations, models

# training.task_metrics.series_figures as of this migration: later changes to it must
# not change what this migration wrote.
BOX = ("precision", "recall", "map50", "map50_95")
SERIES = {
    "detect": BOX,
    "obb": BOX,
    "segment": (*BOX, *(f"mask_{key}" for key in BOX)),
    "pose": (*BOX, *(f"pose_{key}" for key in BOX)),
    "classify": ("top1", "top5"),
}
MAIN_LOSS = {"segment": "train_seg_loss", "pose": "train_pose_loss", "classify": "train_loss"}


def fill_epoch_series(apps, schema_editor):
    YoloModel = apps.get_model("training", "YoloModel")
    EpochRecord = apps.get_model("training", "EpochRecord")
    for model in YoloModel.objects.filter(epochs_completed__gt=0).select_related("dataset").iterator():
        task = model.dataset.task
        keys = (*SERIES.get(task, BOX), MAIN_LOSS.get(task, "train_box_loss"))
        records = EpochRecord.objects.filter(model=model).order_by("epoch").values_list("epoch", "duration_ms", "metrics")
        model.epoch_series = [
            [epoch, duration_ms, {key: metrics[key] for key in keys if key in metrics}]
            for epoch, duration_ms, metrics in records
        ]
        model.save(update_fields=["epoch_series"])


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0008_saved_predictions'),
    ]

    operations = [
        migrations.AddField(
            model_name='yolomodel',
            name='epoch_series',
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.RunPython(fill_epoch_series, migrations.RunPython.noop),
    ]
