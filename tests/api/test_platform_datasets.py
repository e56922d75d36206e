"""``ul://`` datasets: ultralytics' own client, in a child process pointed at the live
server with a personal key, downloads and converts each task's dataset; the result
holds the same images, labels and class names as the stored zip. And the refusals:
no key, another user's dataset, not ready, bad or expired or borrowed URLs, and no
name from the zip ever in the NDJSON."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from api.keys import create_key
from hubsite.models import User
from tests.api.conftest import KeyClient, key_client
from tests.factories import make_ready_dataset
from training.datasets.synthetic import TASKS
from training.datasets.uri import dataset_uri
from training.models import Dataset

# What yolo train does with data=ul://... (ultralytics.engine.trainer), printed as JSON.
CHILD = """
import json, sys
from pathlib import Path
import ultralytics.data.converter as converter
from ultralytics.data.utils import check_cls_dataset, check_det_dataset, convert_ndjson_to_yolo_if_needed
converter.DATASETS_DIR = Path(sys.argv[3])
data = convert_ndjson_to_yolo_if_needed(sys.argv[1])
checked = check_cls_dataset(data) if sys.argv[2] == "classify" else check_det_dataset(data)
print("RESULT " + json.dumps({"data": str(data), "names": checked["names"], "kpt_shape": checked.get("kpt_shape")}))
"""

Items = Counter[tuple[str, str, Any]]  # (split, image sha256, labels or class name)


def _export_path(dataset: Dataset) -> str:
    return f"/api/datasets/{dataset.owner.email}/{dataset.uid}/export"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rows(text: str) -> tuple[tuple[float, ...], ...]:
    return tuple(sorted(tuple(float(value) for value in line.split()) for line in text.splitlines() if line.split()))


def _zip_items(dataset: Dataset) -> tuple[Items, list[str], Any]:
    """(split, image, labels) of the synthetic zip, its class names and kpt_shape."""
    with default_storage.open(str(dataset.archive.name), "rb") as stored:
        opened = zipfile.ZipFile(io.BytesIO(stored.read()))
    files = {name: opened.read(name) for name in opened.namelist() if not name.endswith("/")}
    items: Items = Counter()
    if dataset.task == "classify":
        names = sorted({PurePosixPath(name).parts[1] for name in files if name.startswith("train/")})
        for name, data in files.items():
            split, class_name, _ = PurePosixPath(name).parts
            items[(split, _sha(data), class_name)] += 1
        return items, names, None
    spec = yaml.safe_load(files["data.yaml"])
    for name, data in files.items():
        parts = PurePosixPath(name).parts
        if parts[0] == "images":
            label = files.get(f"labels/{parts[1]}/{PurePosixPath(name).stem}.txt", b"").decode()
            items[(parts[1], _sha(data), _rows(label))] += 1
    names = spec["names"] if isinstance(spec["names"], list) else [spec["names"][i] for i in sorted(spec["names"])]
    return items, names, spec.get("kpt_shape")


def _converted_items(task: str, data: Path, names: dict[str, str]) -> Items:
    items: Items = Counter()
    if task == "classify":
        for image in data.glob("*/*/*"):
            split, folder = image.parent.parent.name, image.parent.name
            items[(split, _sha(image.read_bytes()), names[str(int(folder))])] += 1
        return items
    root = data.parent
    for image in (root / "images").glob("*/*"):
        label = root / "labels" / image.parent.name / f"{image.stem}.txt"
        items[(image.parent.name, _sha(image.read_bytes()), _rows(label.read_text() if label.exists() else ""))] += 1
    return items


def _run_ultralytics(uri: str, task: str, key: str, server: str, tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST" and not k.startswith("ULTRALYTICS_")}
    env.update(
        ULTRALYTICS_API_KEY=key,
        ULTRALYTICS_PLATFORM_URL=server,
        YOLO_CONFIG_DIR=str(tmp_path / "config"),
        YOLO_AUTOINSTALL="false",
        NO_PROXY="*",
    )
    env.pop("YOLO_OFFLINE", None)
    datasets_dir = tmp_path / "datasets"
    finished = subprocess.run(
        [sys.executable, "-c", CHILD, uri, task, str(datasets_dir)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    line = next(line for line in finished.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]


@pytest.mark.parametrize("task", TASKS)
def test_ultralytics_trains_on_the_same_dataset_through_ul(
    task: str, live_server: LiveServer, transactional_db: None, tmp_path: Path
) -> None:
    owner = User.objects.create_user(email=f"remote-{task}@example.com", password="x-secret-123")
    dataset = make_ready_dataset(owner, tmp_path, train_images=6, val_images=4, task=task)
    _, key = create_key(owner, "laptop", ["read"])

    result = _run_ultralytics(dataset_uri(dataset), task, key, live_server.url, tmp_path)

    expected, names, kpt_shape = _zip_items(dataset)
    assert {int(number): name for number, name in result["names"].items()} == dict(enumerate(names))
    assert _converted_items(task, Path(result["data"]), result["names"]) == expected
    assert sum(expected.values()) == 10
    if task == "pose":
        assert result["kpt_shape"] == kpt_shape == [3, 3]


def test_export_needs_a_live_key(user: User, client: Client, tmp_path: Path) -> None:
    dataset = make_ready_dataset(user, tmp_path, train_images=2, val_images=1)
    for authorization in (None, "Bearer hub_not-a-key", "Basic abc"):
        headers = {"Authorization": authorization} if authorization else {}
        response = client.get(_export_path(dataset), headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"
        assert response.json()["error"] == response.json()["message"]


def test_export_needs_the_read_scope(user: User, tmp_path: Path) -> None:
    dataset = make_ready_dataset(user, tmp_path, train_images=2, val_images=1)
    response = key_client(user, "train").get(_export_path(dataset))
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"


def test_another_users_dataset_is_missing(
    user: User, outsider: User, outsider_api_client: KeyClient, tmp_path: Path
) -> None:
    dataset = make_ready_dataset(user, tmp_path, train_images=2, val_images=1)
    theirs = outsider_api_client.get(_export_path(dataset))
    as_them = outsider_api_client.get(f"/api/datasets/{outsider.email}/{dataset.uid}/export")
    missing = outsider_api_client.get(f"/api/datasets/{outsider.email}/00000000-0000-0000-0000-000000000000/export")
    bad = outsider_api_client.get(f"/api/datasets/{outsider.email}/not-a-uid/export")
    assert [r.status_code for r in (theirs, as_them, missing, bad)] == [404] * 4
    assert theirs.json() == as_them.json() == missing.json() == bad.json()


def test_a_dataset_not_ready_is_a_conflict(user: User, api_client: KeyClient, tmp_path: Path) -> None:
    dataset = make_ready_dataset(user, tmp_path, train_images=2, val_images=1)
    for status in (Dataset.Status.PROCESSING, Dataset.Status.INVALID):
        Dataset.objects.filter(pk=dataset.pk).update(status=status)
        response = api_client.get(_export_path(dataset))
        assert response.status_code == 409
        assert response.json()["code"] == "dataset_not_ready"


def _download_path(api_client: KeyClient, dataset: Dataset) -> str:
    response = api_client.get(_export_path(dataset))
    assert response.status_code == 200, response.content
    url = urlsplit(response.json()["downloadUrl"])
    assert url.scheme == "http"
    assert url.netloc == "testserver"
    return f"{url.path}?{url.query}"


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def _lines(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200
    return [json.loads(line) for line in _body(response).decode().splitlines()]


def test_the_ndjson_and_its_images_need_their_own_signed_urls(
    user: User, api_client: KeyClient, client: Client, tmp_path: Path, settings: SettingsWrapper
) -> None:
    dataset = make_ready_dataset(user, tmp_path / "a", train_images=2, val_images=1)
    other = make_ready_dataset(user, tmp_path / "b", train_images=2, val_images=1)
    path = _download_path(api_client, dataset)
    lines = _lines(client.get(path))  # no key: the signature is the credential
    assert lines[0]["type"] == "dataset"
    assert len(lines) == 4
    image = urlsplit(lines[1]["url"])
    image_path = f"{image.path}?{image.query}"
    assert client.get(image_path).status_code == 200

    ndjson_token = path.split("token=")[1]
    image_token = image_path.split("token=")[1]
    refused = [
        path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"),  # tampered
        path.split("?")[0],  # no token
        path.replace(str(dataset.uid), str(other.uid)),  # another dataset's URL, this one's token
        image_path.replace("/images/0?", "/images/1?"),  # another image, this one's token
        image_path.replace(image_token, ndjson_token),  # the NDJSON's token for an image
        path.replace(ndjson_token, image_token),  # an image's token for the NDJSON
    ]
    for url in refused:
        response = client.get(url)
        assert response.status_code in (403, 404), url
        assert response.json()["code"] in ("bad_signature", "not_found")
        assert not hasattr(response, "streaming_content")

    settings.PLATFORM_DATASET_URL_SECONDS = -1  # every token is now older than allowed
    for url in (path, image_path):
        expired = client.get(url)
        assert expired.status_code == 403
        assert expired.json()["code"] == "url_expired"


def test_a_new_upload_voids_the_old_urls(user: User, api_client: KeyClient, client: Client, tmp_path: Path) -> None:
    dataset = make_ready_dataset(user, tmp_path, train_images=2, val_images=1)
    path = _download_path(api_client, dataset)
    Dataset.objects.filter(pk=dataset.pk).update(archive_size=dataset.archive_size + 1)
    assert client.get(path).status_code == 404


def test_the_ndjson_never_carries_a_name_from_the_zip(user: User, api_client: KeyClient, client: Client) -> None:
    hostile = 'images/train/..%2f..%2fetc<script>"passwd\\nx.jpg'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.yaml", "train: images/train\nval: images/train\nnames: [thing]\n")
        archive.writestr(hostile, b"\xff\xd8 not really a jpeg")
        archive.writestr(hostile.replace("images/", "labels/").replace(".jpg", ".txt"), "0 0.5 0.5 0.2 0.2\n")
    dataset = Dataset.objects.create(owner=user, name="hostile", task="detect", class_names=["thing"], status="ready")
    dataset.archive.name = default_storage.save(f"{dataset.storage_prefix}/archive.zip", ContentFile(buffer.getvalue()))
    dataset.archive_size = len(buffer.getvalue())
    dataset.save()

    response = client.get(_download_path(api_client, dataset))
    lines = _lines(response)
    shown = json.dumps([{k: v for k, v in line.items() if k != "url"} for line in lines])
    shown += " ".join(urlsplit(line["url"]).path for line in lines[1:])
    assert not any(part in shown for part in ("passwd", "script", "etc", "%2f", ".."))
    assert [line["file"] for line in lines[1:]] == ["0.jpg", "1.jpg"]  # train and val name the same folder
    assert lines[1]["annotations"] == {"boxes": [[0, 0.5, 0.5, 0.2, 0.2]]}
    image = urlsplit(lines[1]["url"])
    served = client.get(f"{image.path}?{image.query}")
    assert served["Content-Type"] == "image/jpeg"
    assert _body(served) == b"\xff\xd8 not really a jpeg"


def test_the_dataset_page_shows_how_to_train_on_your_own_gpu(user: User, owner_client: Client, tmp_path: Path) -> None:
    dataset = make_ready_dataset(user, tmp_path, train_images=2, val_images=1, task="segment")
    page = owner_client.get(f"/datasets/{dataset.uid}/").content.decode()
    assert f"data={dataset_uri(dataset)} model=yolo11n-seg.yaml project=shapes-segment" in page
    assert 'href="/account/api-keys/"' in page
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.PROCESSING)
    assert "Train on your own GPU" not in owner_client.get(f"/datasets/{dataset.uid}/").content.decode()
