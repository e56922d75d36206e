"""The uploaded zip, checked before and while it is extracted.

Nothing here trusts the archive. Before a byte is extracted every entry is
checked (no ``..``, no absolute paths, no links, no encryption, limits on the
file count, the total uncompressed size and the compression ratio), and while it
is extracted the bytes really written are counted against the same limits.
Extraction only ever writes below the directory it is given.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from training.datasets.limits import Limits, human_bytes, upload_too_large_message
from training.datasets.problems import DatasetError, Problem, dataset_error

# Entries that archivers add and nobody means to upload: skipped, never extracted.
JUNK_PARTS = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db"})
# Ultralytics' label and image-list caches (labels/train.cache, train.cache) are pickles that
# it unpickles on the training worker without restriction: never extracted, it rebuilds them.
PICKLED_CACHE_SUFFIX = ".cache"
# Compression-ratio checks apply to entries at least this large (tiny files compress oddly).
RATIO_MIN_BYTES = 1024 * 1024
CHUNK = 1024 * 1024
NOT_A_ZIP_MESSAGE = "This file is not a zip archive. Put data.yaml, images/ and labels/ in a .zip file and upload that."


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
    return path.suffix.lower() == PICKLED_CACHE_SUFFIX or any(
        part in JUNK_PARTS or part.startswith("._") for part in path.parts
    )


def extracted_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """Where extraction writes this entry, relative to its folder; None for entries it
    never writes (folders, junk, links, encrypted or unsafe entries)."""
    path = _safe_member_path(info.filename)
    if path is None or _is_link(info) or info.flag_bits & 0x1 or info.is_dir() or _is_junk(path):
        return None
    return path


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
        raise dataset_error(
            f"The zip's directory is {human_bytes(directory.size)}, more than the "
            f"{human_bytes(limits.max_directory_bytes)} its file limit allows: its names are too long or it is "
            "damaged. Create the zip again."
        )
    if count_directory_entries(archive, directory, limits.max_entries) > limits.max_entries:
        raise _too_many_entries(f"more than {limits.max_entries:,}", limits)


def _too_many_entries(count: str, limits: Limits) -> DatasetError:
    return dataset_error(
        f"The zip holds {count} entries (files and folders); at most {limits.max_entries:,} are allowed "
        f"(the limit is {limits.max_files:,} files). Upload a smaller dataset."
    )


def inspect_archive(archive: Path, limits: Limits | None = None) -> list[Member]:
    """Check every entry of the zip before anything is extracted; the entries to extract."""
    limits = limits or Limits.from_settings()
    size = archive.stat().st_size
    if size == 0:
        raise dataset_error("The file is empty. Upload a zip archive of your dataset.")
    if size > limits.max_upload_bytes:
        raise dataset_error(upload_too_large_message(limits.max_upload_bytes))
    if not zipfile.is_zipfile(archive):
        with open(archive, "rb") as opened:
            starts_like_a_zip = opened.read(4) == b"PK\x03\x04"
        if starts_like_a_zip:
            raise dataset_error(
                "The zip file is damaged or incomplete (its end is missing: the upload or the copy was cut off). "
                "Create the zip again and re-upload it."
            )
        raise dataset_error(NOT_A_ZIP_MESSAGE)
    check_directory_size(archive, limits)
    try:
        with zipfile.ZipFile(archive) as opened:
            infos = opened.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        raise dataset_error(
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
        raise dataset_error("The zip is empty. Add data.yaml, images/ and labels/ and upload it again.")
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
                    raise dataset_error("This entry points outside the dataset.", str(member.path))
                target.parent.mkdir(parents=True, exist_ok=True)
                with opened.open(member.info) as source, open(target, "xb") as sink:
                    file_written = 0
                    while chunk := source.read(CHUNK):
                        file_written += len(chunk)
                        written += len(chunk)
                        if file_written > member.info.file_size or written > limits.max_uncompressed_bytes:
                            raise dataset_error(
                                "This file unpacks to more than the zip says it holds, or past the size limit: "
                                "the zip is damaged or a zip bomb.",
                                str(member.path),
                            )
                        sink.write(chunk)
    except DatasetError:
        raise
    except FileExistsError as error:
        name = Path(str(error.filename)).name
        raise dataset_error("Two entries of the zip unpack to the same file. Create the zip again.", name) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as error:
        raise dataset_error(
            f"The zip file is damaged or incomplete ({error}). Create the zip again and re-upload it."
        ) from None
    return written
