"""A ready dataset as the NDJSON ultralytics' converter reads (``yolo train
data=ul://...`` on a user's own machine, docs/api.md): the first line the dataset
(task, class names, keypoint shape), then one line per image with its split, a file
name of ours, the URL to fetch it from and its labels.

Everything is read from the stored zip in place: its directory is listed once per
archive (cached per process), labels are read member by member, images are streamed
one at a time by their index in that listing. Nothing is extracted to disk, and no
name from the zip reaches a line or a path: an image is its index and its suffix."""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml
from django.core.cache import cache

from training.datasets.archive import extracted_path
from training.datasets.classify import VAL_FOLDERS
from training.datasets.labels import IMAGE_SUFFIXES
from training.datasets.limits import Limits
from training.datasets.ranged import ZipEntry, open_stored, stream_member
from training.datasets.spec import SPLITS, YAML_SUFFIXES, NoAliasLoader
from training.models import Dataset

# The annotation key of each task in the converter's records (the first key is the one it writes).
ANNOTATION_KEYS = {"detect": "boxes", "segment": "segments", "pose": "pose", "obb": "obb"}
LISTING_CACHE_SECONDS = 6 * 60 * 60
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "avif": "image/avif",
    "heic": "image/heic",
    "heif": "image/heif",
    "jp2": "image/jp2",
    "jpeg2000": "image/jp2",
    "mpo": "image/jpeg",
    "dng": "image/x-adobe-dng",
}

ImageUrl = Callable[[int], str]


@dataclass(frozen=True)
class ListedImage:
    split: str  # train, val or test
    image: ZipEntry
    suffix: str  # lower case, one of IMAGE_SUFFIXES
    label: ZipEntry | None = None  # detect, segment, pose, obb: the label file, if any
    class_id: int | None = None  # classify


@dataclass(frozen=True)
class Listing:
    """What a dataset's zip holds for training, in a fixed order."""

    task: str
    names: list[str]
    images: list[ListedImage]
    keypoints: dict[str, Any] = field(default_factory=dict)  # pose: kpt_shape, flip_idx


def archive_version(dataset: Dataset) -> str:
    """Names the stored zip: a new upload is a new version (URLs and caches of the old one lapse)."""
    return hashlib.sha256(f"{dataset.archive.name}:{dataset.archive_size}".encode()).hexdigest()[:16]


def content_type(suffix: str) -> str:
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


def dataset_listing(dataset: Dataset, opened: zipfile.ZipFile | None = None) -> Listing:
    """The dataset's listing, from the cache or read from the zip (``opened``, or the stored one)."""
    key = f"dataset-listing:{dataset.pk}:{archive_version(dataset)}"
    listing = cache.get(key)
    if isinstance(listing, Listing):
        return listing
    if opened is None:
        with open_stored(str(dataset.archive.name)) as stored, zipfile.ZipFile(stored) as reopened:
            listing = read_listing(dataset, reopened)
    else:
        listing = read_listing(dataset, opened)
    cache.set(key, listing, LISTING_CACHE_SECONDS)
    return listing


def read_listing(dataset: Dataset, opened: zipfile.ZipFile) -> Listing:
    tree = _Tree(opened)
    if dataset.task == Dataset.Task.CLASSIFY:
        return _classify_listing(tree)
    return _yaml_listing(dataset, tree)


def ndjson_lines(dataset: Dataset, image_url: ImageUrl) -> Iterator[str]:
    """The dataset's NDJSON, line by line (each ends with a newline); labels are read
    from the stored zip as the lines go."""
    with open_stored(str(dataset.archive.name)) as stored, zipfile.ZipFile(stored) as opened:
        listing = dataset_listing(dataset, opened)
        yield _line(_dataset_record(dataset, listing))
        limit = Limits.from_settings().max_label_bytes
        for index, image in enumerate(listing.images):
            yield _line(
                {
                    "type": "image",
                    "split": image.split,
                    "file": f"{index}.{image.suffix}",
                    "url": image_url(index),
                    "annotations": _annotations(listing.task, image, opened, limit),
                }
            )


def image_bytes(dataset: Dataset, index: int) -> tuple[str, Iterator[bytes]] | None:
    """The content type and the bytes of image ``index`` of the listing; None if there is none."""
    images = dataset_listing(dataset).images
    if not 0 <= index < len(images):
        return None
    image = images[index]
    return content_type(image.suffix), stream_member(str(dataset.archive.name), image.image)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _dataset_record(dataset: Dataset, listing: Listing) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "dataset",
        "task": listing.task,
        "class_names": {str(index): name for index, name in enumerate(listing.names)},
    }
    record.update(listing.keypoints)
    return record


def _annotations(task: str, image: ListedImage, opened: zipfile.ZipFile, limit: int) -> dict[str, Any]:
    if image.class_id is not None:
        return {"classification": [image.class_id]}
    if image.label is None:
        return {}
    with opened.open(opened.getinfo(image.label.filename)) as member:
        raw = member.read(limit + 1)
    rows = _label_rows(raw[:limit])
    return {ANNOTATION_KEYS[task]: rows} if rows else {}


def _label_rows(raw: bytes) -> list[list[float | int]]:
    """Each label line as numbers, the class first as a whole number; lines that do not
    parse are left out (validation refused any in a ready dataset)."""
    rows: list[list[float | int]] = []
    for line in io.StringIO(raw.decode("utf-8-sig", errors="replace"), newline=None):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(value) for value in fields]
        except ValueError:
            continue
        rows.append([int(values[0]), *values[1:]])
    return rows


class _Tree:
    """The files extraction would write, as relative POSIX paths, and their folders."""

    def __init__(self, opened: zipfile.ZipFile) -> None:
        self.entries: dict[str, ZipEntry] = {}
        self.folders: set[str] = {"."}
        for info in opened.infolist():
            path = extracted_path(info)
            if path is None:
                continue
            self.entries[path.as_posix()] = ZipEntry.of(info)
            self.folders.update(parent.as_posix() for parent in path.parents)
        self._opened = opened

    def children(self, folder: str) -> tuple[list[str], list[str]]:
        """(files, folders) directly in ``folder``, sorted, as full relative paths."""
        files = sorted(path for path in self.entries if posixpath.dirname(path) == _bare(folder))
        folders = sorted(path for path in self.folders if path != "." and posixpath.dirname(path) == _bare(folder))
        return files, folders

    def images_below(self, folder: str) -> list[str]:
        """Image files anywhere below ``folder``, in the order validation reads them."""
        lead = "" if folder == "." else folder + "/"
        found = [path for path in self.entries if path.startswith(lead) and _suffix(path) in IMAGE_SUFFIXES]
        return sorted(found, key=lambda path: PurePosixPath(path).parts)

    def read(self, path: str, limit: int) -> bytes:
        with self._opened.open(self._opened.getinfo(self.entries[path].filename)) as member:
            return member.read(limit + 1)[:limit]


def _bare(folder: str) -> str:
    return "" if folder == "." else folder


def _suffix(path: str) -> str:
    return PurePosixPath(path).suffix.lower().lstrip(".")


def _inside(folder: str) -> bool:
    return folder != ".." and not folder.startswith("../") and not folder.startswith("/")


def _classify_listing(tree: _Tree) -> Listing:
    root = "."
    if "train" not in tree.folders:
        _, folders = tree.children(".")
        root = folders[0] if len(folders) == 1 else "."
    joined = posixpath.normpath(posixpath.join(root, "train"))
    _, class_folders = tree.children(joined)
    names = [posixpath.basename(folder) for folder in class_folders]
    splits = {"train": joined}
    val = next((name for name in VAL_FOLDERS if posixpath.normpath(posixpath.join(root, name)) in tree.folders), None)
    if val is not None:
        splits["val"] = posixpath.normpath(posixpath.join(root, val))
    if (test := posixpath.normpath(posixpath.join(root, "test"))) in tree.folders:
        splits["test"] = test
    class_ids = {name: class_id for class_id, name in enumerate(names)}
    images: list[ListedImage] = []
    for split, folder in splits.items():
        by_class: list[list[str]] = [[] for _ in names]
        for path in tree.images_below(folder):
            parts = PurePosixPath(path).relative_to(folder).parts
            if len(parts) > 1 and parts[0] in class_ids:
                by_class[class_ids[parts[0]]].append(path)
        images.extend(
            ListedImage(split, tree.entries[path], _suffix(path), class_id=class_id)
            for class_id, paths in enumerate(by_class)
            for path in paths
        )
    return Listing(task=Dataset.Task.CLASSIFY.value, names=names, images=images)


def _yaml_listing(dataset: Dataset, tree: _Tree) -> Listing:
    yaml_path = _find_yaml(tree)
    data = _load_yaml(tree.read(yaml_path, Limits.from_settings().max_yaml_bytes)) if yaml_path else {}
    base = posixpath.dirname(yaml_path) if yaml_path else "."
    base = base or "."
    raw_path = data.get("path")
    if isinstance(raw_path, str) and raw_path.strip():
        candidate = posixpath.normpath(posixpath.join(base, raw_path.replace("\\", "/")))
        if _inside(candidate) and candidate in tree.folders:
            base = candidate
    if "val" not in data and "validation" in data:
        data["val"] = data["validation"]
    images: list[ListedImage] = []
    for split in SPLITS:
        value = data.get(split)
        for entry in value if isinstance(value, list) else [value]:
            if not isinstance(entry, str) or not entry.strip():
                continue
            folder = posixpath.normpath(posixpath.join(base, entry.replace("\\", "/")))
            if not _inside(folder) or folder not in tree.folders:
                continue
            for path in tree.images_below(folder):
                label = tree.entries.get(_label_path(path))
                images.append(ListedImage(split, tree.entries[path], _suffix(path), label=label))
    names = list(dataset.class_names) or _yaml_names(data)
    keypoints: dict[str, Any] = {}
    if dataset.task == Dataset.Task.POSE:
        keypoints = {key: data[key] for key in ("kpt_shape", "flip_idx") if isinstance(data.get(key), list)}
    return Listing(task=str(dataset.task), names=names, images=images, keypoints=keypoints)


def _find_yaml(tree: _Tree) -> str | None:
    """data.yaml as validation finds it: at the top, or in the single top folder."""
    files, folders = tree.children(".")
    candidates = [path for path in files if _suffix(path) in {suffix.lstrip(".") for suffix in YAML_SUFFIXES}]
    if not candidates and len(folders) == 1:
        inner, _ = tree.children(folders[0])
        candidates = [path for path in inner if _suffix(path) in {suffix.lstrip(".") for suffix in YAML_SUFFIXES}]
    if len(candidates) > 1:
        preferred = [path for path in candidates if posixpath.basename(path).lower() in ("data.yaml", "data.yml")]
        candidates = preferred[:1]
    return candidates[0] if candidates else None


def _load_yaml(raw: bytes) -> dict[str, Any]:
    try:
        data = yaml.load(raw.decode("utf-8-sig"), Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _yaml_names(data: dict[str, Any]) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        return [str(names[key]) for key in sorted(names, key=lambda key: int(str(key)))]
    if isinstance(names, list):
        return [str(name) for name in names]
    return []


def _label_path(image: str) -> str:
    """Where ultralytics looks for an image's labels: the last /images/ becomes /labels/."""
    text = "/" + image
    if "/images/" in text:
        head, tail = text.rsplit("/images/", 1)
        text = f"{head}/labels/{tail}"
    return PurePosixPath(text[1:]).with_suffix(".txt").as_posix()
