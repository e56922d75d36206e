"""Migration 0009 fills ``YoloModel.epoch_series`` from the epoch records of models
that trained before the series was kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from training import task_metrics

BEFORE = [("training", "0008_saved_predictions")]
AFTER = [("training", "0009_epoch_series")]


@pytest.fixture
def latest_schema_after() -> Iterator[None]:
    """Migrating back unapplies what came later (in every app): bring it all back."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("latest_schema_after")
def test_the_migration_fills_each_trained_models_series_from_its_epochs() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("hubsite", "User").objects.create(email="old@example.com")
    Dataset, YoloModel = old.get_model("training", "Dataset"), old.get_model("training", "YoloModel")
    InstanceType, Session = old.get_model("training", "InstanceType"), old.get_model("training", "TrainingSession")
    EpochRecord = old.get_model("training", "EpochRecord")
    segmenter = YoloModel.objects.create(
        owner=user, name="seg", architecture="yolo11n-seg", epochs_completed=2,
        dataset=Dataset.objects.create(owner=user, name="d", task="segment", status="ready"),
    )  # fmt: skip
    untrained = YoloModel.objects.create(owner=user, name="new", architecture="yolo11n", dataset=segmenter.dataset)
    instance = InstanceType.objects.create(slug="old-cpu", name="CPU", gpu="CPU", price_per_hour_micros=1)
    session = Session.objects.create(
        model=segmenter, owner=user, instance_type=instance, target_epochs=2, price_per_hour_micros=1
    )
    now = datetime(2026, 11, 1, tzinfo=UTC)
    metrics = {"map50": 0.5, "mask_map50": 0.4, "train_seg_loss": 1.5, "train_box_loss": 2.0, "lr/pg0": 0.01}
    for epoch in (2, 1):
        EpochRecord.objects.create(
            session=session, model=segmenter, epoch=epoch, started_at=now, finished_at=now,
            duration_ms=1000 * epoch, metrics={**metrics, "map50": 0.5 * epoch},
        )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("training", "YoloModel")

    series = new.objects.get(pk=segmenter.pk).epoch_series
    assert series == [
        [1, 1000, task_metrics.series_figures("segment", {**metrics, "map50": 0.5})],
        [2, 2000, task_metrics.series_figures("segment", {**metrics, "map50": 1.0})],
    ]
    assert series[0][2] == {"map50": 0.5, "mask_map50": 0.4, "train_seg_loss": 1.5}
    assert new.objects.get(pk=untrained.pk).epoch_series == []
