"""Forms for datasets, models, and starting a session (step 3 of the Train wizard,
also the model page's Start and Resume form)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django import forms
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

from billing.forms import SpendingCapField
from hubsite.models import User
from training import catalogue
from training.datasets import human_bytes, upload_too_large_message
from training.models import Dataset, InstanceType, TrainingSession, YoloModel
from training.sessions import StartRequest
from training.sessions.starting import SESSION_CAP_EPOCHS_ONLY
from training.weights import StartWeights, create_model, has_local_weights, start_options, weights_path

NAME_HELP = "Up to 100 characters."


# Room in an upload request for the form's other fields and the multipart headers.
UPLOAD_REQUEST_OVERHEAD_BYTES = 64 * 1024


class UploadLimitHandler(FileUploadHandler):
    """Refuses an upload request larger than DATASET_MAX_UPLOAD_BYTES (plus room for the
    form's fields) before any of it is read, and stops reading file parts once together
    they pass the limit; nothing reaches the disk. Installed by the upload view before
    the body is read."""

    limit_setting = "DATASET_MAX_UPLOAD_BYTES"

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit: int = getattr(settings, self.limit_setting)
        self.exceeded = False
        self.received = 0  # bytes of every file part of the request, together

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, str],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> tuple[QueryDict, MultiValueDict[str, UploadedFile[Any]]] | None:
        if content_length > self.limit + UPLOAD_REQUEST_OVERHEAD_BYTES:
            self.exceeded = True
            return QueryDict(), MultiValueDict()  # parse nothing: the view refuses the request
        return None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if self.content_length is not None and self.received + self.content_length > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

    @classmethod
    def read_upload(cls, request: HttpRequest) -> UploadLimitHandler:
        """Parse a POST body through a new handler of this class; its ``exceeded`` says
        whether the request was refused for its size (nothing of it was stored)."""
        handler = cls(request)
        request.upload_handlers.insert(0, handler)
        try:
            request.POST  # noqa: B018 - parse the body now, through the limit handler
        except RequestDataTooBig:  # the fields alone pass DATA_UPLOAD_MAX_MEMORY_SIZE
            handler.exceeded = True
        return handler


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="Defaults to the file name.")
    file = forms.FileField(
        label="Dataset zip",
        help_text="Ultralytics HUB format: data.yaml, images/ and labels/ with train and val splits; "
        "for classification, train/ and val/ with one folder of images per class.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    task = forms.ChoiceField(
        choices=[("", "Detect from the files"), *Dataset.Task.choices],
        required=False,
        help_text="Labels of 9 values fit both segmentation and oriented boxes: choose one of them for those.",
    )

    def __init__(self, *args: Any, upload_exceeded: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upload_exceeded = upload_exceeded

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        limit = settings.DATASET_MAX_UPLOAD_BYTES
        upload = cleaned.get("file")
        if self.upload_exceeded or (upload is not None and upload.size is not None and upload.size > limit):
            self.errors.pop("file", None)
            raise forms.ValidationError(upload_too_large_message(limit), code="too_large")
        if upload is not None and not cleaned.get("name"):
            cleaned["name"] = (Path(upload.name or "dataset").stem or "dataset")[:100]
        return cleaned


class RenameForm(forms.Form):
    name = forms.CharField(max_length=100, help_text=NAME_HELP)

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name.")
        return name


class ModelCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text=NAME_HELP)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), help_text="Only ready datasets are listed.")
    architecture = forms.ChoiceField(
        help_text="Only the dataset's task's architectures. Parameters and GFLOPs as ultralytics ships them "
        "(its own class counts; 640 px, classification at 224 px)."
    )
    pretrained = forms.BooleanField(
        required=False,
        help_text="Start from local pretrained weights (offered only when the weights file is on this server).",
    )
    start_from = forms.ChoiceField(
        label="Start from",
        required=False,
        help_text="Fine-tune one of your models or an uploaded .pt: the new model takes its architecture "
        "(the Architecture and Pretrained fields above are then ignored) and starts from a copy of its weights.",
    )
    epochs = forms.IntegerField(initial=100, min_value=1, max_value=catalogue.MAX_EPOCHS)
    imgsz = forms.IntegerField(label="Image size", initial=640, min_value=32, max_value=catalogue.MAX_IMGSZ)
    batch = forms.IntegerField(
        initial=-1, min_value=-1, max_value=1024, help_text="-1 picks the batch size automatically."
    )
    patience = forms.IntegerField(
        initial=100, min_value=0, max_value=catalogue.MAX_EPOCHS, help_text="Stop after this many epochs with no gain."
    )
    cache = forms.ChoiceField(
        choices=catalogue.CACHE_CHOICES, initial="none", help_text="Cache images in RAM or on disk."
    )
    custom_args = forms.CharField(
        label="Custom arguments",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "lr0=0.01\ncos_lr=true\nmosaic=0.5"}),
        help_text="Other ultralytics training arguments, one key=value per line.",
    )

    def __init__(self, *args: Any, owner: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        dataset_field = self.fields["dataset"]
        assert isinstance(dataset_field, forms.ModelChoiceField)
        dataset_field.queryset = Dataset.objects.filter(owner=owner, status=Dataset.Status.READY)
        self.architectures = catalogue.catalogue()
        architecture_field = self.fields["architecture"]
        assert isinstance(architecture_field, forms.ChoiceField)
        # Every architecture is a valid choice, so a mismatch gets its own message in
        # clean(); the list shows only the chosen dataset's task's.
        architecture_field.choices = [(a.name, a.label) for a in self.architectures]
        task = self._dataset_task()
        architecture_field.widget.choices = catalogue.architecture_choices(self.architectures, task)
        if "architecture" not in self.initial:
            self.initial["architecture"] = catalogue.default_architecture(task or Dataset.Task.DETECT)
        self.weights_available = {a.name for a in self.architectures if has_local_weights(a.name)}
        self._init_start_weights()

    def _init_start_weights(self) -> None:
        """Pretrained is the default where this server has the weights; the Start from
        choices are the owner's models with weights and checked uploads."""
        if "pretrained" not in self.initial:
            self.initial["pretrained"] = self.initial["architecture"] in self.weights_available
        installed = ", ".join(sorted(self.weights_available)) or "none yet (an operator installs them)"
        self.fields["pretrained"].help_text = f"Start from official pretrained weights. On this server: {installed}."
        self.start_options = {option.value: option for option in start_options(self.owner)}
        own = [(o.value, o.label) for o in self.start_options.values() if o.parent is not None]
        uploaded = [(o.value, o.label) for o in self.start_options.values() if o.parent is None]
        field = self.fields["start_from"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            ("", "The architecture above (pretrained or from scratch)"),
            *([("Your models", own)] if own else []),
            *([("Uploaded weights", uploaded)] if uploaded else []),
        ]

    def _clean_start_weights(self, cleaned: dict[str, Any]) -> None:
        """A chosen Start from sets the architecture and turns pretrained off; its task
        must be the dataset's."""
        start: StartWeights | None = self.start_options.get(cleaned.get("start_from") or "")
        cleaned["start"] = start
        if start is None:
            return
        dataset: Dataset | None = cleaned.get("dataset")
        if dataset is not None and start.task != dataset.task:
            task = Dataset.Task(start.task).label.lower() if start.task in Dataset.Task.values else start.task
            self.add_error(
                "start_from",
                f"{start.origin} is a {task} model; {dataset.name} is a "
                f"{dataset.get_task_display().lower()} dataset. Choose weights of the same task.",
            )
            return
        cleaned["architecture"] = start.architecture
        cleaned["pretrained"] = False
        self.errors.pop("architecture", None)

    def _dataset_task(self) -> str | None:
        """The task of the dataset being chosen (posted, or given by the wizard's step 1)."""
        chosen = self.data.get(self.add_prefix("dataset")) if self.is_bound else self.initial.get("dataset")
        if isinstance(chosen, Dataset):
            return chosen.task
        if not str(chosen or "").isdigit():
            return None
        ready = Dataset.objects.filter(owner=self.owner, status=Dataset.Status.READY)
        task: str | None = ready.filter(pk=int(str(chosen))).values_list("task", flat=True).first()
        return task

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._clean_start_weights(cleaned)
        dataset: Dataset | None = cleaned.get("dataset")
        architecture = next((a for a in self.architectures if a.name == cleaned.get("architecture")), None)
        if dataset is not None and architecture is not None and architecture.task != dataset.task:
            self.add_error("architecture", catalogue.task_mismatch_message(architecture, dataset))
        if cleaned.get("pretrained") and architecture is not None and architecture.name not in self.weights_available:
            self.add_error(
                "pretrained",
                f"No pretrained weights for {architecture.name} on this server "
                f"(expected {weights_path(architecture.name).name} in the weights folder). "
                "Untick it to train from scratch.",
            )
        base_fields = ("epochs", "imgsz", "batch", "patience", "cache")
        if any(name not in cleaned for name in base_fields):
            return cleaned
        try:
            custom = catalogue.parse_custom_args(cleaned.get("custom_args", ""))
        except catalogue.TrainArgsError as error:
            for key, message in error.errors.items():
                self.add_error("custom_args", f"{key}: {message}")
            return cleaned
        clashing = [key for key in custom if key in base_fields]
        for key in clashing:
            self.add_error("custom_args", f"{key}: set it in its own field above.")
        if clashing:
            return cleaned
        raw = {
            "epochs": cleaned["epochs"],
            "imgsz": cleaned["imgsz"],
            "batch": cleaned["batch"],
            "patience": cleaned["patience"],
            "cache": False if cleaned["cache"] == "none" else cleaned["cache"],
            **custom,
        }
        try:
            cleaned["train_args"] = catalogue.validate_train_args(raw)
        except catalogue.TrainArgsError as error:
            for key, message in error.errors.items():
                if key in base_fields:
                    self.add_error(key, message)
                else:
                    self.add_error("custom_args", f"{key}: {message}")
        return cleaned

    def create_model(self) -> YoloModel:
        """The model this valid form describes (``StartWeightsGone`` when the chosen
        start weights went away since the form was shown)."""
        return create_model(
            self.owner,
            start=self.cleaned_data.get("start"),
            name=self.cleaned_data["name"],
            dataset=self.cleaned_data["dataset"],
            architecture=self.cleaned_data["architecture"],
            pretrained=self.cleaned_data["pretrained"],
            train_args=self.cleaned_data["train_args"],
        )


class WeightsUploadLimitHandler(UploadLimitHandler):
    """The upload guard for weights files: WEIGHTS_MAX_UPLOAD_BYTES."""

    limit_setting = "WEIGHTS_MAX_UPLOAD_BYTES"


class WeightsUploadForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="Defaults to the file name.")
    file = forms.FileField(
        label="Weights (.pt)",
        help_text="An Ultralytics YOLO checkpoint (best.pt, last.pt, yolo11n.pt, ...).",
        widget=forms.ClearableFileInput(attrs={"accept": ".pt"}),
    )

    def __init__(self, *args: Any, upload_exceeded: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upload_exceeded = upload_exceeded

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        limit = settings.WEIGHTS_MAX_UPLOAD_BYTES
        upload = cleaned.get("file")
        if self.upload_exceeded or (upload is not None and upload.size is not None and upload.size > limit):
            self.errors.pop("file", None)
            raise forms.ValidationError(
                f"The file is larger than the {human_bytes(limit)} limit for weights.", code="too_large"
            )
        if upload is not None and not cleaned.get("name"):
            cleaned["name"] = (Path(upload.name or "weights").stem or "weights")[:100]
        return cleaned


MIN_TIMED_SECONDS = 5 * 60
MAX_TIMED_SECONDS = 7 * 24 * 3600


class StartForm(forms.Form):
    BALANCE, PAY_NOW = "balance", "pay_now"

    mode = forms.ChoiceField(
        choices=TrainingSession.Mode.choices, initial=TrainingSession.Mode.EPOCHS, widget=forms.RadioSelect
    )
    epochs = forms.IntegerField(min_value=1, max_value=catalogue.MAX_EPOCHS, required=False)
    days = forms.IntegerField(min_value=0, max_value=7, initial=0, required=False)
    hours = forms.IntegerField(min_value=0, max_value=23, initial=1, required=False)
    minutes = forms.IntegerField(min_value=0, max_value=59, initial=0, required=False)
    instance_type = forms.ModelChoiceField(
        queryset=InstanceType.objects.filter(active=True), empty_label=None, widget=forms.RadioSelect
    )
    payment = forms.ChoiceField(
        choices=[(BALANCE, "Account balance"), (PAY_NOW, "Pay now by card (Timed only)")],
        initial=BALANCE,
        widget=forms.RadioSelect,
    )
    resume_after_top_up = forms.BooleanField(
        required=False, label="If the balance runs out, resume automatically after my next top-up"
    )
    spending_cap = SpendingCapField(
        label="Spending cap for this session (US$)",
        help_text="Epochs mode: training stops before an epoch that would pass it. Leave empty for no cap.",
    )

    def __init__(self, *args: Any, model: YoloModel, resuming: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.resuming = resuming
        self.fields["epochs"].initial = max(model.target_epochs, model.epochs_completed + 1)
        self.fields["instance_type"].initial = InstanceType.objects.filter(active=True).first()

    @property
    def minimum_epochs(self) -> int:
        return self.model.epochs_completed + 1

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        mode = cleaned.get("mode")
        if mode == TrainingSession.Mode.EPOCHS:
            epochs = cleaned.get("epochs")
            if epochs is None:
                self.add_error("epochs", "Enter how many epochs to train.")
            elif epochs < self.minimum_epochs:
                self.add_error(
                    "epochs",
                    f"The model has completed {self.model.epochs_completed} epochs already; "
                    f"the target must be at least {self.minimum_epochs}.",
                )
            if cleaned.get("payment") == self.PAY_NOW:
                self.add_error("payment", "Pay now is for Timed training; Epochs mode bills your balance per epoch.")
        elif mode == TrainingSession.Mode.TIMED:
            if cleaned.get("spending_cap") is not None:
                self.add_error("spending_cap", SESSION_CAP_EPOCHS_ONLY)
            seconds = self.time_budget_seconds(cleaned)
            if not MIN_TIMED_SECONDS <= seconds <= MAX_TIMED_SECONDS:
                self.add_error("hours", "Choose between 5 minutes and 7 days.")
        return cleaned

    @staticmethod
    def time_budget_seconds(cleaned: dict[str, Any]) -> int:
        return (
            (cleaned.get("days") or 0) * 86_400
            + (cleaned.get("hours") or 0) * 3_600
            + (cleaned.get("minutes") or 0) * 60
        )

    def start_request(self) -> StartRequest:
        cleaned = self.cleaned_data
        timed = cleaned["mode"] == TrainingSession.Mode.TIMED
        return StartRequest(
            instance_type=cleaned["instance_type"],
            mode=cleaned["mode"],
            target_epochs=None if timed else cleaned["epochs"],
            time_budget_seconds=self.time_budget_seconds(cleaned) if timed else None,
            resume_after_top_up=bool(cleaned.get("resume_after_top_up")) and not timed,
            spending_cap_micros=None if timed else cleaned.get("spending_cap"),
        )

    @property
    def chosen_spending_cap_micros(self) -> int | None:
        """The session cap typed so far when it is valid (the estimate area shows it), else None."""
        if not self.is_bound:
            return None
        try:
            return self.fields["spending_cap"].clean(self.data.get("spending_cap"))  # type: ignore[no-any-return]
        except forms.ValidationError:
            return None

    @property
    def pays_now(self) -> bool:
        return self.cleaned_data.get("payment") == self.PAY_NOW


class PayNowForm(forms.Form):
    """Pay Now's own page: a Timed session of whole quarter hours, paid by card."""

    instance_type = forms.ModelChoiceField(
        queryset=InstanceType.objects.filter(active=True), to_field_name="slug", empty_label=None
    )
    hours = forms.DecimalField(min_value=Decimal("0.25"), max_value=Decimal(72), decimal_places=2, max_digits=5)
    target_epochs = forms.IntegerField(required=False, min_value=1, max_value=catalogue.MAX_EPOCHS)

    def clean_hours(self) -> Decimal:
        hours: Decimal = self.cleaned_data["hours"]
        if (hours * 4) != (hours * 4).to_integral_value():
            raise forms.ValidationError("Choose whole quarter hours (0.25, 0.5, 0.75, ...).")
        return hours

    def start_request(self) -> StartRequest:
        cleaned = self.cleaned_data
        return StartRequest(
            instance_type=cleaned["instance_type"],
            mode=TrainingSession.Mode.TIMED,
            target_epochs=cleaned["target_epochs"],
            time_budget_seconds=int(cleaned["hours"] * 3600),
        )
