"""Staff views of training objects. Users create and change datasets, models and
sessions only through the site's validated flows (upload checks, the catalogue's
architecture and argument checks, the session state machine, billing), so here staff
may rename a dataset or a model and set instance types, and otherwise only look:
editing an owner, a dataset, an architecture, training arguments, a status or an
epoch record would bypass those checks or rewrite history, and deleting from here
would skip the storage clean-up and cascade through the training history."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.admin import ReadOnlyMixin
from training.models import Dataset, EpochRecord, Export, InstanceType, TrainingSession, YoloModel


class RenameOnlyMixin:
    """Only the name is editable, on an existing object; no add, no delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InstanceType)
class InstanceTypeAdmin(admin.ModelAdmin[InstanceType]):
    list_display = ("name", "slug", "gpu", "gpu_memory_gb", "price_per_hour_micros", "active", "sort_order")
    list_editable = ("active", "sort_order")
    prepopulated_fields = {"slug": ("name",)}  # noqa: RUF012 - Django's admin API


DATASET_FIELDS = (
    "name", "uid", "owner", "task", "status", "archive", "archive_size", "errors", "stats", "class_names",
    "created_at", "updated_at",
)  # fmt: skip


@admin.register(Dataset)
class DatasetAdmin(RenameOnlyMixin, admin.ModelAdmin[Dataset]):
    list_display = ("name", "owner", "task", "status", "created_at")
    list_filter = ("status", "task")
    search_fields = ("name", "owner__email")
    fields = DATASET_FIELDS
    readonly_fields = DATASET_FIELDS[1:]


MODEL_FIELDS = (
    "name", "uid", "owner", "dataset", "architecture", "pretrained", "train_args", "last_checkpoint",
    "best_weights", "epochs_completed", "trained_at", "created_at", "updated_at",
)  # fmt: skip


@admin.register(YoloModel)
class YoloModelAdmin(RenameOnlyMixin, admin.ModelAdmin[YoloModel]):
    list_display = ("name", "owner", "architecture", "epochs_completed", "trained_at")
    search_fields = ("name", "owner__email")
    fields = MODEL_FIELDS
    readonly_fields = MODEL_FIELDS[1:]


class EpochInline(ReadOnlyMixin, admin.TabularInline[EpochRecord, TrainingSession]):
    model = EpochRecord
    extra = 0
    can_delete = False
    fields = ("epoch", "started_at", "finished_at", "duration_ms", "metrics")
    readonly_fields = fields


@admin.register(TrainingSession)
class TrainingSessionAdmin(ReadOnlyMixin, admin.ModelAdmin[TrainingSession]):
    list_display = ("pk", "model", "owner", "instance_type", "mode", "status", "created_at", "heartbeat_at")
    list_filter = ("status", "mode", "instance_type")
    search_fields = ("model__name", "owner__email")
    inlines = (EpochInline,)


@admin.register(Export)
class ExportAdmin(ReadOnlyMixin, admin.ModelAdmin[Export]):
    list_display = ("model", "format", "status", "created_at", "finished_at")
