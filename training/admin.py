from __future__ import annotations

from django.contrib import admin

from training.models import Dataset, EpochRecord, Export, InstanceType, TrainingSession, YoloModel


@admin.register(InstanceType)
class InstanceTypeAdmin(admin.ModelAdmin[InstanceType]):
    list_display = ("name", "slug", "gpu", "gpu_memory_gb", "price_per_hour_micros", "active", "sort_order")
    list_editable = ("active", "sort_order")
    prepopulated_fields = {"slug": ("name",)}  # noqa: RUF012 - Django's admin API


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin[Dataset]):
    list_display = ("name", "owner", "task", "status", "created_at")
    list_filter = ("status", "task")
    search_fields = ("name", "owner__email")
    readonly_fields = ("uid", "archive", "archive_size", "errors", "stats", "class_names")


@admin.register(YoloModel)
class YoloModelAdmin(admin.ModelAdmin[YoloModel]):
    list_display = ("name", "owner", "architecture", "epochs_completed", "trained_at")
    search_fields = ("name", "owner__email")
    readonly_fields = ("uid", "last_checkpoint", "best_weights", "epochs_completed", "trained_at")


class EpochInline(admin.TabularInline[EpochRecord, TrainingSession]):
    model = EpochRecord
    extra = 0
    can_delete = False
    fields = ("epoch", "started_at", "finished_at", "duration_ms", "metrics")
    readonly_fields = fields

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(TrainingSession)
class TrainingSessionAdmin(admin.ModelAdmin[TrainingSession]):
    list_display = ("pk", "model", "owner", "instance_type", "mode", "status", "created_at", "heartbeat_at")
    list_filter = ("status", "mode", "instance_type")
    search_fields = ("model__name", "owner__email")
    readonly_fields = (
        "model", "owner", "instance_type", "mode", "target_epochs", "time_budget_seconds", "start_epoch",
        "status", "status_detail", "stop_requested_at", "resumed_from", "attempts", "worker_id",
        "failure_reason", "log_tail", "created_at", "claimed_at", "training_started_at", "heartbeat_at",
        "finished_at",
    )  # fmt: skip
    inlines = (EpochInline,)

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin[Export]):
    list_display = ("model", "format", "status", "created_at", "finished_at")
    readonly_fields = ("model", "format", "status", "weights_epoch", "file", "error", "finished_at")
