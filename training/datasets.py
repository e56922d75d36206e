"""Dataset zips: safe extraction, full validation, and the worker's local copy.

A dataset is a zip in the Ultralytics HUB format: a ``data.yaml`` at the root of
the zip or inside its one top folder, ``images/`` and ``labels/`` with ``train``
and ``val`` splits (``test`` optional), YOLO label files (``class x y w h``,
normalised to 0..1).

Nothing here trusts the archive. Before a byte is extracted every entry is
checked (no ``..``, no absolute paths, no links, no encryption, limits on the
file count, the total uncompressed size and the compression ratio), and while it
is extracted the bytes really written are counted against the same limits. Every
problem becomes a :class:`Problem`: which file, which line, what to do, in plain
words. Extraction only ever writes below the directory it is given.

Ultralytics is imported lazily: the web process never needs it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import io
import math
import os
import secrets
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image, ImageDraw, ImageFont

from hubsite.models import User
from training.models import Dataset

YAML_SUFFIXES = (".yaml", ".yml")
SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
# The image formats ultralytics trains on (ultralytics.data.utils.IMG_FORMATS), kept here
# so the web process need not import ultralytics; a test checks the two agree.
IMAGE_SUFFIXES = frozenset(
    {"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpeg2000", "jpg", "mpo", "png", "tif", "tiff", "webp"}
)
# Entries that archivers add and nobody means to upload: skipped, never extracted.
JUNK_PARTS = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db"})
# Coordinates may overshoot 0..1 by this much (rounding in exporters); more is an error.
COORD_TOLERANCE = 1e-3
# Compression-ratio checks apply to entries at least this large (tiny files compress oddly).
RATIO_MIN_BYTES = 1024 * 1024
MAX_PROBLEMS = 200
# A label file stops being checked after this many bad lines (one is enough to fix).
MAX_PROBLEMS_PER_FILE = 20
# Box lines per label file (the byte limit DATASET_MAX_LABEL_BYTES comes first in practice).
MAX_LABEL_LINES = 100_000
MAX_CLASS_NAME_LENGTH = 200
ENTRY_ALLOWANCE = 1000
DIRECTORY_BYTES_PER_ENTRY = 1024
SAMPLE_COUNT = 12
SAMPLE_SIDE = 320
CHUNK = 1024 * 1024
Image.MAX_IMAGE_PIXELS = 200_000_000  # refuse decompression bombs in images too (PIL raises beyond 2x this)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset, said so that its owner can fix it."""

    message: str
    file: str = ""
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message}

    def __str__(self) -> str:
        where = self.file + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.message}" if where else self.message


class DatasetError(Exception):
    """The dataset cannot be used; ``problems`` says why (at least one)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems[:3]))
        self.problems = problems


def _fail(message: str, file: str = "", line: int | None = None) -> DatasetError:
    return DatasetError([Problem(message, file, line)])


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


# --- the archive -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    info: zipfile.ZipInfo
    path: PurePosixPath  # normalised, relative, safe


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The entry's relative path, or None when it would land outside the extraction dir."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return None
    parts = [part for part in normalised.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts) or not parts:
        return None
    if any("\x00" in part for part in parts):
        return None
    return PurePosixPath(*parts)


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def _is_junk(path: PurePosixPath) -> bool:
    return any(part in JUNK_PARTS or part.startswith("._") for part in path.parts)


# The zip's end records (PKWARE APPNOTE 4.3.14-4.3.16) and central directory headers (4.3.12).
END_RECORD = struct.Struct("<4s4H2LH")
ZIP64_LOCATOR = struct.Struct("<4sLQL")
ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
DIRECTORY_HEADER = struct.Struct("<4s6H3L5H2L")
MAX_COMMENT = 0xFFFF


@dataclass(frozen=True)
class CentralDirectory:
    declared_entries: int
    start: int  # where it really is (the end record's position less its size: prefixed zips)
    size: int


def read_central_directory(archive: Path) -> CentralDirectory | None:
    """What the zip's end record says about its central directory, read from the last
    64 KiB; None when there is no end record (zipfile then reports the damage)."""
    with open(archive, "rb") as opened:
        file_size = opened.seek(0, os.SEEK_END)
        tail_start = max(0, file_size - END_RECORD.size - MAX_COMMENT)
        opened.seek(tail_start)
        tail = opened.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + END_RECORD.size > len(tail):
            return None
        fields = END_RECORD.unpack_from(tail, at)
        entries, size, end_position = fields[4], fields[5], tail_start + at
        if entries == 0xFFFF or size == 0xFFFFFFFF or fields[6] == 0xFFFFFFFF:
            zip64 = _read_zip64_end_record(opened, end_position)
            if zip64 is not None:
                entries, size, end_position = zip64
    return CentralDirectory(declared_entries=entries, start=max(0, end_position - size), size=size)


def _read_zip64_end_record(opened: IO[bytes], end_position: int) -> tuple[int, int, int] | None:
    """(entries, directory size, record position) from the zip64 end record and its locator
    just before the end record; None when there are none (the 32-bit values then stand)."""
    record_at = end_position - ZIP64_LOCATOR.size - ZIP64_END_RECORD.size
    if record_at < 0:
        return None
    opened.seek(record_at)
    data = opened.read(ZIP64_END_RECORD.size + ZIP64_LOCATOR.size)
    if data[:4] != b"PK\x06\x06" or data[ZIP64_END_RECORD.size : ZIP64_END_RECORD.size + 4] != b"PK\x06\x07":
        return None
    record = ZIP64_END_RECORD.unpack_from(data)
    return record[7], record[8], record_at


def count_directory_entries(archive: Path, directory: CentralDirectory, limit: int) -> int:
    """The entries really in the central directory, counted header by header without
    keeping them; stops at ``limit + 1`` (the end record's count may lie)."""
    count = 0
    with open(archive, "rb") as opened:
        opened.seek(directory.start)
        remaining = directory.size
        while remaining >= DIRECTORY_HEADER.size and count <= limit:
            header = opened.read(DIRECTORY_HEADER.size)
            if len(header) < DIRECTORY_HEADER.size or header[:4] != b"PK\x01\x02":
                break  # damaged: zipfile says so when it opens the archive
            name_length, extra_length, comment_length = DIRECTORY_HEADER.unpack(header)[10:13]
            variable = name_length + extra_length + comment_length
            opened.seek(variable, os.SEEK_CUR)
            remaining -= DIRECTORY_HEADER.size + variable
            count += 1
    return count


def check_directory_size(archive: Path, limits: Limits) -> None:
    """Refuse a zip with too many entries before zipfile builds a ZipInfo for each."""
    directory = read_central_directory(archive)
    if directory is None:
        return
    if directory.declared_entries > limits.max_entries:
        raise _too_many_entries(f"{directory.declared_entries:,}", limits)
    if directory.size > limits.max_directory_bytes:
        raise _fail(
            f"The zip's directory is {human_bytes(directory.size)}, more than the "
            f"{human_bytes(limits.max_directory_bytes)} its file limit allows: its names are too long or it is "
            "damaged. Create the zip again."
        )
    if count_directory_entries(archive, directory, limits.max_entries) > limits.max_entries:
        raise _too_many_entries(f"more than {limits.max_entries:,}", limits)


def _too_many_entries(count: str, limits: Limits) -> DatasetError:
    return _fail(
        f"The zip holds {count} entries (files and folders); at most {limits.max_entries:,} are allowed "
        f"(the limit is {limits.max_files:,} files). Upload a smaller dataset."
    )


def inspect_archive(archive: Path, limits: Limits | None = None) -> list[Member]:
    """Check every entry of the zip before anything is extracted; the entries to extract."""
    limits = limits or Limits.from_settings()
    size = archive.stat().st_size
    if size == 0:
        raise _fail("The file is empty. Upload a zip archive of your dataset.")
    if size > limits.max_upload_bytes:
        raise _fail(upload_too_large_message(limits.max_upload_bytes))
    if not zipfile.is_zipfile(archive):
        with open(archive, "rb") as opened:
            starts_like_a_zip = opened.read(4) == b"PK\x03\x04"
        if starts_like_a_zip:
            raise _fail(
                "The zip file is damaged or incomplete (its end is missing: the upload or the copy was cut off). "
                "Create the zip again and re-upload it."
            )
        raise _fail(
            "This file is not a zip archive. Put data.yaml, images/ and labels/ in a .zip file and upload that."
        )
    check_directory_size(archive, limits)
    try:
        with zipfile.ZipFile(archive) as opened:
            infos = opened.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        raise _fail(
            f"The zip file is damaged or incomplete ({error}). Create the zip again and re-upload it."
        ) from None

    problems: list[Problem] = []
    members: list[Member] = []
    seen: set[PurePosixPath] = set()
    total = 0
    for info in infos:
        path = _safe_member_path(info.filename)
        if path is None:
            problems.append(
                Problem(
                    "This entry points outside the dataset (an absolute path or '..'). "
                    "Zip the dataset folder itself, with relative paths only.",
                    info.filename,
                )
            )
            continue
        if _is_link(info):
            problems.append(
                Problem("This entry is a symbolic link; links are not allowed. Zip the real files instead.", str(path))
            )
            continue
        if info.flag_bits & 0x1:
            problems.append(Problem("This entry is password-protected. Upload a zip without a password.", str(path)))
            continue
        if info.is_dir() or _is_junk(path):
            continue
        if path in seen:
            problems.append(Problem("This file appears twice in the zip. Create the zip again.", str(path)))
            continue
        seen.add(path)
        total += info.file_size
        if info.file_size >= RATIO_MIN_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            problems.append(
                Problem(
                    f"This file is compressed more than {limits.max_ratio} to 1, which looks like a zip bomb. "
                    "Remove it or raise DATASET_MAX_COMPRESSION_RATIO.",
                    str(path),
                )
            )
            continue
        members.append(Member(info, path))

    if len(seen) > limits.max_files:
        problems.insert(
            0,
            Problem(f"The zip holds {len(seen):,} files; the limit is {limits.max_files:,}. Upload a smaller dataset."),
        )
    if total > limits.max_uncompressed_bytes:
        problems.insert(
            0,
            Problem(
                f"The zip unpacks to {human_bytes(total)}; the limit is "
                f"{human_bytes(limits.max_uncompressed_bytes)}. Upload a smaller dataset."
            ),
        )
    elif total >= RATIO_MIN_BYTES and total > limits.max_ratio * size:
        problems.insert(
            0,
            Problem(
                f"The zip unpacks to {human_bytes(total)} from {human_bytes(size)}, more than {limits.max_ratio} "
                "to 1, which looks like a zip bomb."
            ),
        )
    if problems:
        raise DatasetError(problems)
    if not members:
        raise _fail("The zip is empty. Add data.yaml, images/ and labels/ and upload it again.")
    return members


def extract_archive(archive: Path, destination: Path, limits: Limits | None = None) -> int:
    """Extract the checked entries of ``archive`` below ``destination`` (which must exist);
    returns the bytes written.

    Declared sizes are not trusted: the bytes written are counted as they stream."""
    limits = limits or Limits.from_settings()
    members = inspect_archive(archive, limits)
    root = destination.resolve()
    written = 0
    try:
        with zipfile.ZipFile(archive) as opened:
            for member in members:
                target = (root / Path(*member.path.parts)).resolve()
                if not target.is_relative_to(root) or target == root:
                    raise _fail("This entry points outside the dataset.", str(member.path))
                target.parent.mkdir(parents=True, exist_ok=True)
                with opened.open(member.info) as source, open(target, "xb") as sink:
                    file_written = 0
                    while chunk := source.read(CHUNK):
                        file_written += len(chunk)
                        written += len(chunk)
                        if file_written > member.info.file_size or written > limits.max_uncompressed_bytes:
                            raise _fail(
                                "This file unpacks to more than the zip says it holds, or past the size limit: "
                                "the zip is damaged or a zip bomb.",
                                str(member.path),
                            )
                        sink.write(chunk)
    except DatasetError:
        raise
    except FileExistsError as error:
        name = Path(str(error.filename)).name
        raise _fail("Two entries of the zip unpack to the same file. Create the zip again.", name) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as error:
        raise _fail(
            f"The zip file is damaged or incomplete ({error}). Create the zip again and re-upload it."
        ) from None
    return written


# --- data.yaml ---------------------------------------------------------------------------------


@dataclass
class DatasetSpec:
    """What data.yaml says, checked: paths relative to the extraction dir, all inside it."""

    yaml_file: str  # relative to the extraction dir
    root: str  # the dataset root (data.yaml's folder, or its `path:`), relative; "." for the top
    splits: dict[str, list[str]] = field(default_factory=dict)  # split -> folders relative to the top
    names: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def find_data_yaml(top: Path) -> Path:
    """data.yaml at the top, or inside the single top folder (as Ultralytics HUB accepts)."""

    def yamls_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in YAML_SUFFIXES)

    candidates = yamls_in(top)
    if not candidates:
        folders = [p for p in top.iterdir() if p.is_dir()]
        if len(folders) == 1:
            candidates = yamls_in(folders[0])
    if not candidates:
        raise _fail(
            "No data.yaml was found at the root of the zip or in its single top folder. Add a data.yaml with "
            "train:, val: and names: next to the images/ and labels/ folders."
        )
    if len(candidates) > 1:
        preferred = [p for p in candidates if p.name.lower() in ("data.yaml", "data.yml")]
        if len(preferred) != 1:
            names = ", ".join(p.name for p in candidates)
            raise _fail(f"There are several YAML files ({names}) and none is named data.yaml. Keep only one.")
        candidates = preferred
    return candidates[0]


def _relative(path: Path, top: Path) -> str:
    return path.relative_to(top).as_posix() or "."


def _inside(path: Path, top: Path) -> bool:
    return path == top or path.is_relative_to(top)


class NoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader without anchors and aliases: a few bytes of nested aliases
    expand exponentially once turned into text (the "billion laughs"), and a
    data.yaml never needs them."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark if isinstance(event.start_mark, yaml.error.Mark) else None
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (& and *) are not allowed", mark)
        return super().compose_node(parent, index)


NAME_SCALARS = (str, int, float, bool, datetime.date)


def _class_count(value: object, yaml_name: str, limits: Limits) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(f"'nc: {str(value)[:50]}' must be a positive whole number of classes.", yaml_name)
    if value > limits.max_classes:
        raise _too_many_classes(value, yaml_name, limits)
    return value


def _too_many_classes(count: int, yaml_name: str, limits: Limits) -> DatasetError:
    return _fail(
        f"data.yaml declares {count:,} classes; the limit is {limits.max_classes:,} (DATASET_MAX_CLASSES).", yaml_name
    )


def _class_name(value: object, number: int, yaml_name: str) -> str:
    if not isinstance(value, NAME_SCALARS):
        raise _fail(
            f"Class {number} in 'names:' is a {'list' if isinstance(value, list) else 'mapping or other value'}; "
            "each class name must be plain text.",
            yaml_name,
        )
    name = str(value)
    if not name.strip():
        raise _fail(f"Class {number} in 'names:' is empty.", yaml_name)
    if len(name) > MAX_CLASS_NAME_LENGTH:
        raise _fail(f"Class {number} in 'names:' is longer than {MAX_CLASS_NAME_LENGTH} characters.", yaml_name)
    return name


def _parse_names(data: dict[str, Any], yaml_name: str, limits: Limits) -> list[str]:
    names = data.get("names")
    nc = None if data.get("nc") is None else _class_count(data["nc"], yaml_name, limits)
    if names is None:
        if nc is None:
            raise _fail("data.yaml has no 'names:' list. Add the class names, e.g. names: {0: cat, 1: dog}.", yaml_name)
        return [f"class_{i}" for i in range(nc)]
    if not isinstance(names, list | dict):
        raise _fail("'names:' must be a list or a mapping of class number to name.", yaml_name)
    if len(names) > limits.max_classes:
        raise _too_many_classes(len(names), yaml_name, limits)
    if isinstance(names, dict):
        by_number: dict[int, object] = {}
        for key, value in names.items():
            if not isinstance(key, int | str) or isinstance(key, bool) or not str(key).strip().isdecimal():
                raise _fail("The keys of 'names:' must be class numbers 0, 1, 2, ...", yaml_name)
            by_number[int(key)] = value
        if sorted(by_number) != list(range(len(by_number))):
            raise _fail("The class numbers in 'names:' must run 0, 1, 2, ... with no gaps.", yaml_name)
        names = [by_number[i] for i in range(len(by_number))]
    result = [_class_name(value, number, yaml_name) for number, value in enumerate(names)]
    if not result:
        raise _fail("'names:' is empty. List at least one class.", yaml_name)
    if nc is not None and nc != len(result):
        raise _fail(f"'nc: {nc}' does not match the {len(result)} names listed. Remove nc or fix it.", yaml_name)
    return result


def _read_capped(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it holds more than ``limit`` (never reading past it)."""
    with open(path, "rb") as opened:
        data = opened.read(limit + 1)
    return None if len(data) > limit else data


def read_spec(top: Path, limits: Limits | None = None) -> DatasetSpec:
    """Find, parse and check data.yaml under the extraction dir ``top``."""
    limits = limits or Limits.from_settings()
    top = top.resolve()
    yaml_path = find_data_yaml(top)
    yaml_name = _relative(yaml_path, top)
    raw = _read_capped(yaml_path, limits.max_yaml_bytes)
    if raw is None:
        raise _fail(
            f"data.yaml is larger than {human_bytes(limits.max_yaml_bytes)}; it only needs the splits and the "
            "class names.",
            yaml_name,
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _fail("data.yaml is not UTF-8 text. Save it as UTF-8.", yaml_name) from None
    try:
        data = yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise _fail(f"data.yaml is not valid YAML ({problem}). Fix the syntax on this line.", yaml_name, line) from None
    except RecursionError:
        raise _fail("data.yaml is nested too deeply to be a dataset description.", yaml_name) from None
    if not isinstance(data, dict):
        raise _fail("data.yaml must be a mapping with train:, val: and names: keys.", yaml_name)

    spec = DatasetSpec(yaml_file=yaml_name, root=".")
    spec.names = _parse_names(data, yaml_name, limits)

    base = yaml_path.parent
    raw_path = data.get("path")
    if raw_path not in (None, ""):
        if not isinstance(raw_path, str):
            raise _fail("'path:' must be a folder name.", yaml_name)
        if os.path.isabs(raw_path) or raw_path.replace("\\", "/").startswith("/"):
            raise _fail(
                f"'path: {raw_path}' is an absolute path outside the dataset. Use 'path: .' or remove the line.",
                yaml_name,
            )
        candidate = (base / raw_path).resolve()
        if not _inside(candidate, top):
            raise _fail(f"'path: {raw_path}' points outside the dataset. Use 'path: .' or remove the line.", yaml_name)
        if candidate.is_dir():
            base = candidate
        else:
            spec.warnings.append(
                Problem(
                    f"'path: {raw_path}' is not a folder in the zip, so the folder of data.yaml is used instead.",
                    yaml_name,
                )
            )
    spec.root = _relative(base, top)

    problems: list[Problem] = []
    if "val" not in data and "validation" in data:
        data["val"] = data["validation"]
    for split in SPLITS:
        value = data.get(split)
        if value in (None, "", []):
            if split in REQUIRED_SPLITS:
                problems.append(
                    Problem(
                        f"data.yaml has no '{split}:' split. Add e.g. '{split}: images/{split}' "
                        f"and put the {split} images in that folder.",
                        yaml_name,
                    )
                )
            continue
        entries = value if isinstance(value, list) else [value]
        folders: list[str] = []
        for entry in entries:
            if not isinstance(entry, str) or not entry.strip():
                problems.append(Problem(f"'{split}:' must be a folder name or a list of them.", yaml_name))
                continue
            if os.path.isabs(entry) or entry.replace("\\", "/").startswith("/"):
                problems.append(
                    Problem(f"'{split}: {entry}' is an absolute path; use a folder inside the zip.", yaml_name)
                )
                continue
            folder = (base / entry).resolve()
            if not _inside(folder, top):
                problems.append(
                    Problem(f"'{split}: {entry}' points outside the dataset; use a folder inside the zip.", yaml_name)
                )
                continue
            if not folder.exists():
                problems.append(
                    Problem(
                        f"The {split} folder '{entry}' named in data.yaml is not in the zip. Add it or fix the path.",
                        yaml_name,
                    )
                )
                continue
            if not folder.is_dir():
                problems.append(
                    Problem(
                        f"'{split}: {entry}' is a file; only folders of images are supported. Point it at a folder.",
                        yaml_name,
                    )
                )
                continue
            folders.append(_relative(folder, top))
        if folders:
            spec.splits[split] = folders
    if problems:
        raise DatasetError(problems)
    return spec


def training_yaml_text(spec: DatasetSpec, top: Path, *, location: Path | None = None) -> str:
    """A clean data.yaml for ultralytics: absolute paths, only the keys we checked (no
    ``download:``, which ultralytics would execute). ``location`` is where ``top`` will
    be when the file is used (default: where it is now)."""
    base = (location or top).resolve()

    def absolute(relative: str) -> str:
        return os.path.normpath(base / relative)

    data: dict[str, Any] = {"path": absolute(spec.root)}
    for split, folders in spec.splits.items():
        paths = [absolute(folder) for folder in folders]
        data[split] = paths[0] if len(paths) == 1 else paths
    data["names"] = dict(enumerate(spec.names))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1_000_000)


# --- images and labels -------------------------------------------------------------------------


def label_path_for(image: Path) -> Path:
    """Where ultralytics looks for an image's labels: the last /images/ becomes /labels/."""
    text = os.fspath(image)
    marker, replacement = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if marker in text:
        head, tail = text.rsplit(marker, 1)
        text = head + replacement + tail
    return Path(text).with_suffix(".txt")


def labels_folder_for(images_folder: Path) -> Path | None:
    parts = images_folder.parts
    if "images" not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:index], "labels", *parts[index + 1 :])


def iter_images(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower().lstrip(".") in IMAGE_SUFFIXES:
            yield path


@dataclass
class LabelRow:
    class_id: int
    x: float
    y: float
    w: float
    h: float


def parse_label_file(
    path: Path, rel: str, class_count: int, limits: Limits | None = None
) -> tuple[list[LabelRow], list[Problem]]:
    """Parse a detection label file line by line, saying what is wrong with each bad line
    (up to MAX_PROBLEMS_PER_FILE of them)."""
    limits = limits or Limits.from_settings()
    rows: list[LabelRow] = []
    problems: list[Problem] = []
    raw = _read_capped(path, limits.max_label_bytes)
    if raw is None:
        message = f"This label file is larger than {human_bytes(limits.max_label_bytes)} (DATASET_MAX_LABEL_BYTES)."
        return rows, [Problem(message, rel)]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return rows, [Problem("This label file is not UTF-8 text. Save it as plain text.", rel)]
    last_class = class_count - 1
    for number, line in enumerate(io.StringIO(text, newline=None), start=1):
        if number > MAX_LABEL_LINES:
            problems.append(Problem(f"This label file has more than {MAX_LABEL_LINES:,} lines.", rel, number))
            break
        if len(problems) >= MAX_PROBLEMS_PER_FILE:
            problems.append(Problem(f"Checking stopped after {MAX_PROBLEMS_PER_FILE} bad lines in this file.", rel))
            break
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            hint = (
                " It looks like a segmentation polygon; only detection datasets are supported so far."
                if len(fields) > 6 and len(fields) % 2 == 1
                else ""
            )
            problems.append(
                Problem(
                    f"This line has {len(fields)} values; a detection label needs 5: "
                    f"class x_center y_center width height.{hint}",
                    rel,
                    number,
                )
            )
            continue
        try:
            values = [float(value) for value in fields]
        except ValueError:
            bad = next(value for value in fields if not _is_number(value))
            problems.append(
                Problem(f"'{bad}' is not a number. Every value on a label line must be a number.", rel, number)
            )
            continue
        if not all(math.isfinite(value) for value in values):
            problems.append(Problem("This line holds an infinite or NaN value.", rel, number))
            continue
        class_value = values[0]
        if class_value != int(class_value) or not 0 <= class_value <= last_class:
            problems.append(
                Problem(
                    f"Class {fields[0]} is not one of the {class_count} classes in data.yaml "
                    f"(0 to {last_class}). Fix the class number or add the class to names:.",
                    rel,
                    number,
                )
            )
            continue
        coords = values[1:]
        if any(value < -COORD_TOLERANCE or value > 1 + COORD_TOLERANCE for value in coords):
            problems.append(
                Problem(
                    "The box coordinates must be between 0 and 1 (normalised by the image width and height); "
                    f"this line has {' '.join(fields[1:])}.",
                    rel,
                    number,
                )
            )
            continue
        rows.append(LabelRow(int(class_value), *coords))
    return rows, problems


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_image_decodes(path: Path) -> tuple[int, int]:
    """The image's (width, height); raises ValueError with a plain reason if it does not decode."""
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            width, height = image.size
    except Image.DecompressionBombError:
        raise ValueError("it has too many pixels") from None
    except Exception as error:
        raise ValueError(str(error) or type(error).__name__) from None
    if width < 10 or height < 10:
        raise ValueError(f"it is {width}x{height} pixels; images must be at least 10x10")
    return width, height


@dataclass
class SplitReport:
    images: int = 0
    background: int = 0
    instances: int = 0


@dataclass
class Validation:
    """The result of validating an extracted dataset."""

    spec: DatasetSpec
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    splits: dict[str, SplitReport] = field(default_factory=dict)
    instances: list[int] = field(default_factory=list)  # per class
    samples: list[tuple[Path, str, list[LabelRow]]] = field(default_factory=list)
    omitted: int = 0  # problems counted but not kept (beyond MAX_PROBLEMS)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self, *problems: Problem) -> None:
        """Keep the first MAX_PROBLEMS problems and count the rest: memory stays bounded."""
        for problem in problems:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(problem)
            else:
                self.omitted += 1

    def note(self, warning: Problem) -> None:
        if len(self.warnings) < MAX_PROBLEMS:
            self.warnings.append(warning)

    def stats(self) -> dict[str, Any]:
        return {
            "task": Dataset.Task.DETECT.value,
            "splits": {
                name: {"images": r.images, "background": r.background, "instances": r.instances}
                for name, r in self.splits.items()
            },
            "images": sum(r.images for r in self.splits.values()),
            "classes": self.spec.names,
            "instances": dict(zip(self.spec.names, self.instances, strict=True)),
            "layout": {"yaml": self.spec.yaml_file, "root": self.spec.root, "splits": self.spec.splits},
            "warnings": [w.as_dict() for w in self.warnings[:MAX_PROBLEMS]],
        }


def validate_extracted(top: Path) -> Validation:
    """Check data.yaml, every image and every label file below the extraction dir ``top``.

    Raises DatasetError when data.yaml itself is unusable; otherwise returns every
    problem found (an empty ``problems`` list means the dataset is ready)."""
    from ultralytics.data.utils import verify_image_label  # lazy: pulls torch

    top = top.resolve()
    spec = read_spec(top)
    result = Validation(spec=spec, warnings=list(spec.warnings), instances=[0] * len(spec.names))
    claimed_labels: set[Path] = set()
    label_folders: set[Path] = set()
    for split, folders in spec.splits.items():
        report = result.splits.setdefault(split, SplitReport())
        for folder_name in folders:
            folder = top / folder_name
            labels_folder = labels_folder_for(folder)
            if labels_folder is not None and labels_folder.is_dir():
                label_folders.add(labels_folder)
            for image in iter_images(folder):
                rel = _relative(image, top)
                report.images += 1
                label = label_path_for(image)
                claimed_labels.add(label)
                try:
                    check_image_decodes(image)
                except ValueError as error:
                    result.report(
                        Problem(
                            f"This image cannot be decoded ({error}). Re-save it as JPEG or PNG, "
                            "or remove it and its label file.",
                            rel,
                        )
                    )
                    continue
                rows: list[LabelRow] = []
                if label.is_file():
                    rows, problems = parse_label_file(label, _relative(label, top), len(spec.names))
                    if problems:
                        result.report(*problems)
                        continue
                if not rows:
                    report.background += 1
                # Ultralytics' own check of the pair (format, size, duplicates, classes).
                checked = verify_image_label((str(image), str(label), "", False, len(spec.names), 0, 3, False))
                if checked[8]:
                    message = str(checked[9]).split(": ignoring corrupt image/label: ", 1)[-1]
                    result.report(Problem(f"Ultralytics rejects this image or its labels: {message}", rel))
                    continue
                for row in rows:
                    result.instances[row.class_id] += 1
                report.instances += len(rows)
                if len(result.samples) < SAMPLE_COUNT and rows and (split == "val" or len(result.samples) < 8):
                    result.samples.append((image, split, rows))
        if report.images == 0:
            where = ", ".join(folders)
            result.report(Problem(f"The {split} split ({where}) has no images. Add images to it.", spec.yaml_file))

    for labels_folder in sorted(label_folders):
        for label in sorted(labels_folder.rglob("*.txt")):
            if label not in claimed_labels and label.is_file():
                result.note(
                    Problem("This label file has no image with the same name; it is ignored.", _relative(label, top))
                )
    if not any(report.images for report in result.splits.values()):
        result.problems.insert(0, Problem("The dataset holds no images at all."))
    if result.ok:
        result.report(*_ultralytics_check(spec, top))
    return result


def _ultralytics_check(spec: DatasetSpec, top: Path) -> list[Problem]:
    """Run ultralytics' own data.yaml check on a clean copy with absolute paths, downloads off."""
    from ultralytics.data.utils import check_det_dataset

    checked_yaml = top.parent / f"{top.name}.check.yaml"
    checked_yaml.write_text(training_yaml_text(spec, top), encoding="utf-8")
    try:
        check_det_dataset(str(checked_yaml), autodownload=False)
    except Exception as error:
        message = "".join(ch for ch in str(error) if ord(ch) < 0x2000).strip()
        return [Problem(f"Ultralytics cannot use this dataset: {message}", spec.yaml_file)]
    finally:
        checked_yaml.unlink(missing_ok=True)
    return []


# --- sample pictures ---------------------------------------------------------------------------

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
)


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[class_id % len(PALETTE)]


def render_sample(image_path: Path, rows: list[LabelRow], names: list[str]) -> bytes:
    """A JPEG thumbnail of the image with its boxes and class names drawn."""
    with Image.open(image_path) as opened:
        image = opened.convert("RGB")
    image.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE))
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for row in rows:
        colour = class_colour(row.class_id)
        x0, y0 = (row.x - row.w / 2) * width, (row.y - row.h / 2) * height
        x1, y1 = (row.x + row.w / 2) * width, (row.y + row.h / 2) * height
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        draw.text((x0 + 2, max(0, y0 - 11)), names[row.class_id], fill=colour, font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


# --- storage and the worker's local copy -------------------------------------------------------


def archive_key(dataset: Dataset) -> str:
    return f"{dataset.storage_prefix}/archive.zip"


def sample_key(dataset: Dataset, index: int) -> str:
    return f"{dataset.storage_prefix}/samples/{index}.jpg"


def storage_put(key: str, data: bytes | IO[bytes]) -> str:
    """Write ``key`` in default storage, replacing what was there (never a renamed copy)."""
    from django.core.files.base import ContentFile, File

    if default_storage.exists(key):
        default_storage.delete(key)
    content = ContentFile(data) if isinstance(data, bytes) else File(data)
    saved = default_storage.save(key, content)
    if saved != key:  # pragma: no cover - storage renamed it despite the delete
        default_storage.delete(saved)
        raise RuntimeError(f"storage stored {key!r} as {saved!r}")
    return saved


def storage_keys(prefix: str) -> list[str]:
    """Every key below ``prefix`` (recursively)."""
    keys: list[str] = []
    pending = [prefix.rstrip("/")]
    while pending:
        folder = pending.pop()
        try:
            folders, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        lead = f"{folder}/" if folder else ""
        keys.extend(lead + name for name in files)
        pending.extend(lead + name for name in folders)
    return sorted(keys)


def delete_prefix(prefix: str) -> None:
    for key in storage_keys(prefix):
        default_storage.delete(key)


def download_archive(dataset: Dataset, target: Path) -> Path:
    """Copy the dataset's zip from storage to the local file ``target``."""
    if not dataset.archive.name:
        raise _fail("The dataset has no uploaded file.")
    with default_storage.open(dataset.archive.name, "rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, CHUNK)
    return target


CACHE_MARKER = "hubsite-data.yaml"  # present once an entry is complete; its mtime is the entry's last use
CACHE_SIZE_FILE = "hubsite-size"  # the entry's extracted bytes


@contextmanager
def local_copy(dataset: Dataset, cache_root: Path) -> Iterator[Path]:
    """The dataset extracted under ``cache_root/<uid>/`` with a clean data.yaml holding
    absolute paths; yields that data.yaml's path. The entry cannot be evicted while the
    block runs (a shared lock on ``cache_root/<uid>.lock``, honoured by every process).

    Extracted once per dataset uid: into a temporary folder, then renamed into place,
    so a crash never leaves a half copy that looks finished. Same safety checks as
    validation. Raises DatasetError if the archive is unusable. A new entry makes the
    least recently used ones not in use leave the cache while it is over
    DATASET_CACHE_MAX_BYTES."""
    cache_root = Path(cache_root).resolve()
    cache_root.mkdir(parents=True, exist_ok=True)
    lock = _lock(_entry_lock_path(cache_root, str(dataset.uid)), fcntl.LOCK_SH)
    assert lock is not None  # a blocking lock is always acquired
    try:
        data_yaml, created = _cached_or_extracted(dataset, cache_root)
        if created:
            evict_cache(cache_root, settings.DATASET_CACHE_MAX_BYTES)
        yield data_yaml
    finally:
        os.close(lock)


def prepare_local_copy(dataset: Dataset, cache_root: Path) -> Path:
    """:func:`local_copy` without holding the entry: a later eviction may remove it, so
    a process that trains on it should use ``local_copy`` for the whole run."""
    with local_copy(dataset, cache_root) as data_yaml:
        return data_yaml


def _cached_or_extracted(dataset: Dataset, cache_root: Path) -> tuple[Path, bool]:
    final = cache_root / str(dataset.uid)
    data_yaml = final / CACHE_MARKER
    if data_yaml.is_file():
        os.utime(data_yaml)  # used now: the last to be evicted
        return data_yaml, False
    work = Path(tempfile.mkdtemp(prefix=f".{dataset.uid}.", dir=cache_root))
    try:
        archive = download_archive(dataset, work / "archive.zip")
        content = work / "content"
        content.mkdir()
        size = extract_archive(archive, content)
        archive.unlink()
        spec = read_spec(content)
        # Paths are written for the final location, so the copy is ready once renamed.
        text = training_yaml_text(spec, content, location=final / "content")
        (work / CACHE_SIZE_FILE).write_text(str(size), encoding="ascii")
        (work / CACHE_MARKER).write_text(text, encoding="utf-8")
        try:
            work.rename(final)
        except OSError:
            if not data_yaml.is_file():  # not another process winning the race
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return data_yaml, True


def evict_cache(cache_root: Path, max_bytes: int) -> list[str]:
    """Remove the least recently used complete entries that no process holds until the
    cache is within ``max_bytes``, and the leftovers of interrupted extractions and
    evictions; returns the uids removed. One evictor at a time per cache."""
    cache_root = Path(cache_root)
    guard = _lock(cache_root / ".evict.lock", fcntl.LOCK_EX)
    assert guard is not None
    try:
        entries: list[tuple[float, str, int]] = []
        for marker in cache_root.glob(f"*/{CACHE_MARKER}"):
            with contextlib.suppress(FileNotFoundError):
                entries.append((marker.stat().st_mtime, marker.parent.name, _entry_size(marker.parent)))
        total = sum(size for _, _, size in entries)
        removed: list[str] = []
        for _, uid, size in sorted(entries):
            if total <= max_bytes:
                break
            if remove_cached_copy(cache_root, uid):
                total -= size
                removed.append(uid)
        _remove_leftovers(cache_root)
        return removed
    finally:
        os.close(guard)


def remove_cached_copy(cache_root: Path, uid: str) -> bool:
    """Remove the entry of dataset ``uid`` unless a process holds it; True if it is gone."""
    cache_root = Path(cache_root)
    lock_path = _entry_lock_path(cache_root, uid)
    if not lock_path.exists() and not (cache_root / uid).exists():
        return True
    lock = _lock(lock_path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if lock is None:
        return False  # in use, or being extracted
    try:
        entry = cache_root / uid
        if entry.exists():
            doomed = cache_root / f".evicting.{uid}.{secrets.token_hex(4)}"
            entry.rename(doomed)  # one step: no reader ever sees half an entry
            shutil.rmtree(doomed, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        return True
    finally:
        os.close(lock)


def _remove_leftovers(cache_root: Path) -> None:
    """Temporary folders of extractions whose process is gone (their entry's lock is
    free), half-removed entries, and lock files without an entry."""
    for path in cache_root.iterdir():
        name = path.name
        if name.startswith(".evicting."):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(".") and path.is_dir():
            uid = name[1:].split(".", 1)[0]
            lock = _lock(_entry_lock_path(cache_root, uid), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if lock is not None:
                try:
                    shutil.rmtree(path, ignore_errors=True)
                finally:
                    os.close(lock)
        elif name.endswith(".lock") and not name.startswith(".") and not (cache_root / name[: -len(".lock")]).exists():
            remove_cached_copy(cache_root, name[: -len(".lock")])


def _entry_lock_path(cache_root: Path, uid: str) -> Path:
    return cache_root / f"{uid}.lock"


def _entry_size(entry: Path) -> int:
    try:
        return int((entry / CACHE_SIZE_FILE).read_text(encoding="ascii"))
    except (FileNotFoundError, ValueError):
        return sum(path.stat().st_size for path in entry.rglob("*") if path.is_file())


def _lock(path: Path, operation: int) -> int | None:
    """A descriptor of ``path`` holding an flock (``operation``); None if LOCK_NB was given
    and another holds it. Retries when the file was removed and recreated meanwhile (an
    evictor deletes an entry's lock file while holding it)."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, operation)
            current = os.stat(path).st_ino
        except BlockingIOError:
            os.close(descriptor)
            return None
        except FileNotFoundError:
            current = -1
        except BaseException:
            os.close(descriptor)
            raise
        if current == os.fstat(descriptor).st_ino:
            return descriptor
        os.close(descriptor)


# --- services ----------------------------------------------------------------------------------


class DatasetInUseError(Exception):
    """The dataset is still used by models; ``names`` are theirs."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def create_dataset(owner: User, name: str, upload: IO[bytes], *, validate_now: bool = False) -> Dataset:
    """Store the uploaded zip under the new dataset's prefix and queue its validation
    (or, with ``validate_now``, validate it in this process before returning).

    The file goes to storage first; if the row cannot be saved, the file is removed."""
    from hubsite.jobs import send_on_commit
    from training.dataset_tasks import run_validation, validate_dataset

    dataset = Dataset(owner=owner, name=name, task=Dataset.Task.DETECT, status=Dataset.Status.PROCESSING)
    key = storage_put(archive_key(dataset), upload)
    try:
        with transaction.atomic():
            dataset.archive.name = key
            dataset.archive_size = default_storage.size(key)
            dataset.save()
            if not validate_now:
                send_on_commit(validate_dataset, dataset.pk)
    except BaseException:
        delete_prefix(dataset.storage_prefix)
        raise
    if validate_now:
        run_validation(dataset.pk)
        dataset.refresh_from_db()
    return dataset


DEMO_DATASET_NAME = "Shapes (demo)"


def create_demo_dataset(owner: User) -> Dataset:
    """The demo's ready dataset: synthetic shapes (64 train, 16 val images, 128 px), made once."""
    from training.synthetic import write_synthetic_dataset

    existing = Dataset.objects.filter(owner=owner, name=DEMO_DATASET_NAME).first()
    if existing is not None:
        return existing
    with tempfile.TemporaryDirectory(prefix="hubsite-demo-") as work:
        path = write_synthetic_dataset(Path(work) / "shapes.zip", train_images=64, val_images=16, image_size=128)
        with open(path, "rb") as upload:
            return create_dataset(owner, DEMO_DATASET_NAME, upload, validate_now=True)


def rename_dataset(dataset: Dataset, name: str) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(name=name)
    dataset.name = name


def delete_dataset(dataset: Dataset) -> None:
    """Delete the dataset and everything stored under its prefix; refused while a model uses it."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        names = list(locked.yolo_models.values_list("name", flat=True))
        if names:
            raise DatasetInUseError(names)
        prefix, uid = locked.storage_prefix, str(locked.uid)
        locked.delete()
    delete_prefix(prefix)
    # A worker's cache on this machine loses the copy now; other machines' caches evict it in time.
    cache_root = Path(settings.DATASET_CACHE_DIR)
    if cache_root.is_dir():
        remove_cached_copy(cache_root, uid)
