"""Datasets, the user's YOLO models, instance types, and training sessions.

A *session* is one Start or Resume of a model; a model's training history is the
list of its sessions and the epochs they completed. Status changes go through
conditional UPDATEs in ``training/sessions/transitions.py``, never a read-modify-write here.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q


class Dataset(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        INVALID = "invalid", "Invalid"
        # A dataset that stays on the user's machine: named by a remote training run
        # (docs/api.md, "Remote training"); no archive here, never trained in the cloud.
        ON_MACHINE = "on_machine", "On your machine"

    class Task(models.TextChoices):
        DETECT = "detect", "Detection"
        SEGMENT = "segment", "Segmentation"
        POSE = "pose", "Pose"
        CLASSIFY = "classify", "Classification"
        OBB = "obb", "Oriented boxes"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    task = models.CharField(max_length=16, choices=Task.choices, default=Task.DETECT)
    # The task the owner chose at upload; "" means "detect it from the files" (docs/datasets.md).
    declared_task = models.CharField(max_length=16, choices=Task.choices, blank=True, default="")
    archive = models.FileField(max_length=300, blank=True)
    archive_size = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    # Human-readable problems found by validation: [{"file": ..., "line": ..., "message": ...}]
    errors = models.JSONField(default=list, blank=True)
    # Validation results: images per split, class names, instances per class, samples.
    stats = models.JSONField(default=dict, blank=True)
    class_names = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def storage_prefix(self) -> str:
        """Everything stored for this dataset lives under this prefix."""
        return f"datasets/{self.owner_id}/{self.uid}"


class StartKind(models.TextChoices):
    """Where a model's starting weights come from when they are not the architecture's
    own pretrained weights (blank: pretrained or from scratch, see ``YoloModel.pretrained``)."""

    MODEL = "model", "One of your models"
    UPLOAD = "upload", "Uploaded weights"


class YoloModel(models.Model):
    """The user's YOLO model (an architecture, a dataset and training arguments)."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="yolo_models")
    name = models.CharField(max_length=100)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="yolo_models")
    architecture = models.CharField(max_length=40)  # a model YAML stem shipped by ultralytics, e.g. "yolo11n"
    pretrained = models.BooleanField(default=False)
    # Starting weights other than the architecture's pretrained ones (docs/weights.md): a copy
    # under this model's prefix of another model's weights or of a checked upload, so
    # retraining or deleting where they came from never changes them.
    start_kind = models.CharField(max_length=16, choices=StartKind.choices, blank=True)
    start_weights = models.FileField(max_length=300, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="fine_tuned_models"
    )
    # Where the weights came from, as the user saw it then: the parent's or the file's name...
    start_origin = models.CharField(max_length=255, blank=True)
    # ... and which weights: "best weights, epoch 12", "yolo11n, 3 classes".
    start_description = models.CharField(max_length=200, blank=True)
    # Validated ultralytics training arguments: epochs, imgsz, batch, patience, cache, plus extras.
    train_args = models.JSONField(default=dict, blank=True)
    # The newest resumable checkpoint (last.pt with optimizer) and the best weights so far.
    last_checkpoint = models.FileField(max_length=300, blank=True)
    best_weights = models.FileField(max_length=300, blank=True)
    epochs_completed = models.PositiveIntegerField(default=0)
    # Every completed epoch as [epoch, milliseconds, {figures}], oldest first, the figures
    # those of ``training.task_metrics.series_figures``: written with each EpochRecord, in
    # the same transaction, so a comparison of models reads one row per model.
    epoch_series = models.JSONField(default=list, blank=True, editable=False)
    trained_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.name

    @property
    def storage_prefix(self) -> str:
        return f"models/{self.owner_id}/{self.uid}"

    @property
    def target_epochs(self) -> int:
        return int(self.train_args.get("epochs", 100))

    @property
    def lineage(self) -> str:
        """Where training starts from, in words (the model page adds a link to a parent)."""
        if self.start_kind == StartKind.MODEL:
            return f"Fine-tuned from {self.start_origin} ({self.start_description})"
        if self.start_kind == StartKind.UPLOAD:
            return f"Fine-tuned from the uploaded file {self.start_origin} ({self.start_description})"
        if self.pretrained:
            return f"Pretrained weights ({self.architecture}.pt, official Ultralytics)"
        return "From scratch (no starting weights)"


class InstanceType(models.Model):
    """A kind of training machine. Workers for it consume the queue ``train.<slug>``."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    gpu = models.CharField(max_length=80, help_text="Accelerator, e.g. 'NVIDIA A100 80GB' or 'CPU'.")
    gpu_memory_gb = models.PositiveSmallIntegerField(default=0)
    price_per_hour_micros = models.PositiveBigIntegerField(
        help_text="Price per hour in micro-dollars (1,000,000 = US$1.00)."
    )
    reference_epoch_seconds = models.PositiveIntegerField(
        default=60, help_text="Typical seconds per epoch, for estimates before any session has run here."
    )
    active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["sort_order", "price_per_hour_micros"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue_name(self) -> str:
        return f"train.{self.slug}"


class TrainingSession(models.Model):
    class Mode(models.TextChoices):
        EPOCHS = "epochs", "Epochs"
        TIMED = "timed", "Timed"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        INITIALIZING = "initializing", "Initializing"
        TRAINING = "training", "Training"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    ACTIVE_STATUSES: ClassVar[tuple[str, ...]] = (
        Status.QUEUED,
        Status.INITIALIZING,
        Status.TRAINING,
        Status.STOPPING,
    )
    FINAL_STATUSES: ClassVar[tuple[str, ...]] = (
        Status.STOPPED,
        Status.PAUSED,
        Status.COMPLETED,
        Status.FAILED,
    )

    model = models.ForeignKey(YoloModel, on_delete=models.CASCADE, related_name="sessions")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_sessions")
    instance_type = models.ForeignKey(InstanceType, on_delete=models.PROTECT, related_name="sessions")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.EPOCHS)
    target_epochs = models.PositiveIntegerField()
    time_budget_seconds = models.PositiveIntegerField(null=True, blank=True)
    # The instance type's price when the session was created: every charge, hold and
    # refund of the session uses it, so a later price change never re-prices it.
    price_per_hour_micros = models.PositiveBigIntegerField()
    # Epochs the model had completed when this session started; it trains start_epoch + 1 onward.
    start_epoch = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    status_detail = models.CharField(max_length=200, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    resume_after_top_up = models.BooleanField(default=False)
    # The user's limit on what this session may spend (Epochs mode): an epoch whose hold
    # would pass it does not start and the session stops. None: no limit.
    spending_cap_micros = models.PositiveBigIntegerField(null=True, blank=True)
    resumed_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # The cost estimate when the session was created, as the Start form computes it
    # (training/sessions/estimates.py), for the Billing tab to set beside the final cost.
    # Null for sessions started before estimates were recorded.
    estimated_low_micros = models.PositiveBigIntegerField(null=True, blank=True)
    estimated_high_micros = models.PositiveBigIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker_id = models.CharField(max_length=120, blank=True)
    failure_reason = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    # A run on the user's own hardware reporting through ultralytics' platform callbacks
    # (training/remote/): free, never billed, no worker; its instance type is the
    # inactive "Your hardware" one. ``remote_environment`` is what the client said of
    # its machine: host, GPU, device, ultralytics version (shown only).
    remote = models.BooleanField(default=False)
    remote_environment = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    training_started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(status__in=["queued", "initializing", "training", "stopping"]),
                name="one_active_session_per_model",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} session {self.pk}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.price_per_hour_micros is None:  # a new session: the price is fixed now
            self.price_per_hour_micros = self.instance_type.price_per_hour_micros
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class EpochRecord(models.Model):
    """One completed epoch. Epoch numbers are global to the model (1-based), so the
    history stays continuous across sessions; the unique key forbids duplicates."""

    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="epochs")
    model = models.ForeignKey(YoloModel, on_delete=models.CASCADE, related_name="epochs")
    epoch = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_ms = models.PositiveBigIntegerField()
    # The task's metrics, losses and learning rate under stable names (training/task_metrics.py)
    metrics = models.JSONField(default=dict)

    class Meta:
        ordering: ClassVar = ["epoch"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["model", "epoch"], name="one_record_per_model_epoch"),
        ]

    def __str__(self) -> str:
        return f"{self.model} epoch {self.epoch}"


class RemoteConsoleChunk(models.Model):
    """One batch of console lines a remote run sent; ``chunk_id`` orders them and makes
    a resent chunk a no-op. Only the newest ones are kept (``training.remote.console``)."""

    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="console_chunks")
    chunk_id = models.PositiveBigIntegerField()  # ultralytics starts it at the time in milliseconds
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["chunk_id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["session", "chunk_id"], name="one_console_chunk_per_id"),
        ]

    def __str__(self) -> str:
        return f"session {self.session_id} chunk {self.chunk_id}"


class RemoteUpload(models.Model):
    """A checkpoint a remote run uploads through a signed URL. The file we receive is a
    pickle we did not write: it becomes the model's weights only after the safe reader
    checked it on a light worker and rebuilt it (``training.remote.checks``)."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for the file"
        RECEIVED = "received", "Received"
        CHECKING = "checking", "Checking"
        PROMOTED = "promoted", "Checked; the model's weights"
        REFUSED = "refused", "Refused"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.ForeignKey(TrainingSession, on_delete=models.CASCADE, related_name="remote_uploads")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    file_name = models.CharField(max_length=255, blank=True)  # as the client named it; shown only, never a path
    upload = models.FileField(max_length=300, blank=True)  # the received bytes, until checked
    size = models.BigIntegerField(default=0)
    weights = models.FileField(max_length=300, blank=True)  # the rebuilt checkpoint
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return f"session {self.session_id} upload {self.uid}"


class WeightsUpload(models.Model):
    """A .pt file a user uploaded to start models from. It is checked on a light worker
    (``training.weights.task``); only the checkpoint that check writes is ever trained from."""

    class Status(models.TextChoices):
        PROCESSING = "processing", "Checking"
        READY = "ready", "Ready"
        INVALID = "invalid", "Refused"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="weights_uploads")
    name = models.CharField(max_length=100)
    file_name = models.CharField(max_length=255)  # as uploaded, shown only; never a path
    upload = models.FileField(max_length=300, blank=True)  # the file as uploaded, until it is checked
    size = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    error = models.TextField(blank=True)
    # What the check found, and the checkpoint it wrote.
    task = models.CharField(max_length=16, choices=Dataset.Task.choices, blank=True)
    architecture = models.CharField(max_length=40, blank=True)
    class_names = models.JSONField(default=list, blank=True)
    weights = models.FileField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        verbose_name = "uploaded weights"
        verbose_name_plural = "uploaded weights"

    def __str__(self) -> str:
        return self.name

    @property
    def storage_prefix(self) -> str:
        return f"weights/{self.owner_id}/{self.uid}"


class Export(models.Model):
    class Format(models.TextChoices):
        ONNX = "onnx", "ONNX"
        TORCHSCRIPT = "torchscript", "TorchScript"
        OPENVINO = "openvino", "OpenVINO"
        NCNN = "ncnn", "NCNN"
        COREML = "coreml", "CoreML"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    model = models.ForeignKey(YoloModel, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=16, choices=Format.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    weights_epoch = models.PositiveIntegerField(default=0)
    file = models.FileField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["model", "format"], name="one_export_per_model_format"),
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.format}"


class ModelEvaluation(models.Model):
    """A model's evaluation on its dataset's validation split: computed on a worker when
    a session ends with new weights, or on demand; never billed. One per model: a new
    evaluation replaces the previous one.

    The JSON fields' shapes (``training/evaluation/`` reads and writes them):

    - ``metrics``: the task's overall figures under ``training.task_metrics`` names,
      e.g. ``{"precision": 0.8, "recall": 0.7, "map50": 0.75, "map50_95": 0.5}``.
    - ``per_class``: ``[{"name": "cat", "images": 8, "instances": 11, "precision": ...,
      "recall": ..., "map50": ..., "map50_95": ...}]`` (classify: ``images``, ``top1``).
    - ``curves``: ``{"pr": {"x": [101 recall points], "all": [...], "classes": {name: [...]}},
      "f1": {"x": [101 confidence points], ...}, "precision": ..., "recall": ...}``
      (empty for classify).
    - ``confusion``: ``{"labels": [class names..., "background"], "counts": [[int]]}``,
      rows the predicted class, columns the true class, as ultralytics counts them.
    - ``pictures``: storage keys of the validation pictures, ground truth beside predictions.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Evaluating"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    model = models.OneToOneField(YoloModel, on_delete=models.CASCADE, related_name="evaluation")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    task = models.CharField(max_length=16, choices=Dataset.Task.choices)
    # The model's epochs_completed when these weights were evaluated.
    weights_epoch = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    per_class = models.JSONField(default=list, blank=True)
    curves = models.JSONField(default=dict, blank=True)
    confusion = models.JSONField(default=dict, blank=True)
    pictures = models.JSONField(default=list, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.model} evaluation"


class SavedPrediction(models.Model):
    """A Predict tab result the user chose to keep: the drawn picture (a JPEG under the
    model's storage prefix, named after this row) and what was found on it. The picture
    the prediction ran on is never kept."""

    model = models.ForeignKey(YoloModel, on_delete=models.CASCADE, related_name="saved_predictions")
    image = models.FileField(max_length=300, blank=True)
    source = models.CharField(max_length=200)  # "uploaded picture" or "validation picture <name>"
    conf = models.FloatField()
    iou = models.FloatField()
    inference_ms = models.FloatField()
    # [{"class": "circle", "confidence": 0.93}], best first (classify: the top 5 classes)
    detections = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.model} prediction {self.pk}"
