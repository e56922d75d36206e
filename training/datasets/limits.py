"""The dataset limits (from settings) and the helpers that word and enforce them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

ENTRY_ALLOWANCE = 1000
DIRECTORY_BYTES_PER_ENTRY = 1024


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int
    max_uncompressed_bytes: int
    max_files: int
    max_ratio: int
    max_classes: int = 10_000
    max_yaml_bytes: int = 1024**2
    max_label_bytes: int = 10 * 1024**2

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            max_upload_bytes=settings.DATASET_MAX_UPLOAD_BYTES,
            max_uncompressed_bytes=settings.DATASET_MAX_UNCOMPRESSED_BYTES,
            max_files=settings.DATASET_MAX_FILES,
            max_ratio=settings.DATASET_MAX_COMPRESSION_RATIO,
            max_classes=settings.DATASET_MAX_CLASSES,
            max_yaml_bytes=settings.DATASET_MAX_YAML_BYTES,
            max_label_bytes=settings.DATASET_MAX_LABEL_BYTES,
        )

    @property
    def max_entries(self) -> int:
        """Zip entries allowed: folders and macOS's ``__MACOSX/._*`` copies are entries too."""
        return 2 * self.max_files + ENTRY_ALLOWANCE

    @property
    def max_directory_bytes(self) -> int:
        """The zip's central directory (read whole when the zip is opened) may not exceed this."""
        return self.max_entries * DIRECTORY_BYTES_PER_ENTRY


def upload_too_large_message(limit: int) -> str:
    return f"The file is larger than the {human_bytes(limit)} upload limit. Upload a smaller zip (split the dataset)."


def read_capped(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it holds more than ``limit`` (never reading past it)."""
    with open(path, "rb") as opened:
        data = opened.read(limit + 1)
    return None if len(data) > limit else data
