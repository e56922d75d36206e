"""Reading parts of a stored zip without fetching all of it: a seekable file over
storage that asks S3 for byte ranges (a local file is seekable already), and one
member's bytes streamed from its local header, so serving one image of a large
dataset reads that image and nothing else."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

from django.core.files.storage import default_storage

# Reads from S3 come in ranges at least this large (the zip's directory, small members).
RANGE_BUFFER = 256 * 1024
LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # PKWARE APPNOTE 4.3.7
STREAM_CHUNK = 256 * 1024


class ZipEntry(NamedTuple):
    """What is needed to read one member again: plain values, so a listing caches."""

    filename: str  # as stored in the zip: never shown, never a path on disk
    header_offset: int
    compress_size: int
    file_size: int
    compress_type: int
    crc: int

    @classmethod
    def of(cls, info: zipfile.ZipInfo) -> ZipEntry:
        return cls(info.filename, info.header_offset, info.compress_size, info.file_size, info.compress_type, info.CRC)


class _ObjectRanges(io.RawIOBase):
    """A read-only, seekable view of an S3 object (boto3 ``Object``) by range requests."""

    def __init__(self, obj: Any, size: int) -> None:
        super().__init__()
        self._obj = obj
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size:
            return 0
        view = memoryview(buffer).cast("B")
        end = min(self._size, self._position + len(view)) - 1
        data = self._obj.get(Range=f"bytes={self._position}-{end}")["Body"].read()
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_stored(name: str) -> IO[bytes]:
    """The stored file ``name``, seekable, reading only what is asked for."""
    opened = default_storage.open(name, "rb")
    s3_object = getattr(opened, "obj", None)
    if s3_object is None:
        return opened  # a local file: seekable as it is
    return io.BufferedReader(_ObjectRanges(s3_object, int(opened.size)), buffer_size=RANGE_BUFFER)


def stream_member(name: str, entry: ZipEntry) -> Iterator[bytes]:
    """The uncompressed bytes of ``entry`` of the stored zip ``name``, in chunks; never
    more than the size the zip declares for it."""
    with open_stored(name) as stored:
        if entry.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            yield from _through_zipfile(stored, entry)
            return
        stored.seek(entry.header_offset)
        header = stored.read(LOCAL_HEADER.size)
        if len(header) < LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("no local header where the directory says")
        name_length, extra_length = LOCAL_HEADER.unpack(header)[9:11]
        stored.seek(entry.header_offset + LOCAL_HEADER.size + name_length + extra_length)
        inflate = zlib.decompressobj(-zlib.MAX_WBITS) if entry.compress_type == zipfile.ZIP_DEFLATED else None
        left, written = entry.compress_size, 0
        while left > 0:
            chunk = stored.read(min(STREAM_CHUNK, left))
            if not chunk:
                raise zipfile.BadZipFile("the member ends early")
            left -= len(chunk)
            data = inflate.decompress(chunk, entry.file_size - written + 1) if inflate else chunk
            written += len(data)
            if written > entry.file_size:
                raise zipfile.BadZipFile("the member holds more than the zip declares")
            yield data


def _through_zipfile(stored: IO[bytes], entry: ZipEntry) -> Iterator[bytes]:
    """Other compression methods (bzip2, lzma): through zipfile, which reads the directory."""
    with zipfile.ZipFile(stored) as opened, opened.open(opened.getinfo(entry.filename)) as member:
        while chunk := member.read(STREAM_CHUNK):
            yield chunk
